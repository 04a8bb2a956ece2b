"""Integrated gradients: the completeness gap of every quadrature rule at several step counts, on
lenet-digits (the 360 test digits) and EfficientNet-Lite0 (the eight bundled photos at 112×112),
black baseline, predicted class. The default rule (Gauss–Legendre) was chosen from this table.

    python benchmarks/ig_quadrature.py            # the full table (about 10 minutes on 2 idle cores)
    python benchmarks/ig_quadrature.py --quick    # fewer images and steps, to check that it runs

Each cell is "mean / worst" relative gap |Σ attribution − (f(x) − f(baseline))| / |f(x) − f(baseline)|.
Measured on 2026-12-01 (torch 2.13 CPU), at the default 50 steps: LeNet GL 0.73 % / 17 %,
trapezoid 0.68 % / 44 %, middle 0.61 % / 29 %; EfficientNet GL 3.0 % / 5.3 %, trapezoid 4.6 % / 11 %,
middle 6.8 % / 20 %. No rule is better everywhere (the integrand of a ReLU network is piecewise
constant along the path, so no rule's polynomial exactness helps); Gauss–Legendre has the smallest
gaps on EfficientNet at 32-50 steps and the smallest worst case on both, so it stays the default.
"""
from __future__ import annotations

import argparse
import time

import torch

import seethrough as see
from seethrough.attribution.gradient import IG_RULES, integrated_gradients


def table(name: str, model, x: torch.Tensor, steps: tuple[int, ...]) -> None:
    print(f"\n{name}: {len(x)} images {tuple(x.shape[2:])}, relative gap mean / worst")
    print(f"{'rule':20s}" + "".join(f"{s:>16d}" for s in steps))
    for rule in IG_RULES:
        t = time.perf_counter()
        cells = []
        for s in steps:
            gap = integrated_gradients(model, x, None, steps=s, rule=rule, progress=False).relative_gap
            cells.append(f"{100 * gap.mean().item():6.2f}/{100 * gap.max().item():6.1f} %")
        print(f"{rule:20s}" + "".join(f"{c:>16s}" for c in cells) + f"   ({time.perf_counter() - t:.0f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    quick = parser.parse_args().quick
    steps = (8, 16) if quick else (16, 32, 50, 64, 128)
    lenet, _ = see.zoo.load("lenet-digits")
    digits, _ = see.zoo.digits("test")
    table("lenet-digits", lenet, digits[:32] if quick else digits, steps)
    net, prep = see.zoo.load("efficientnet-lite0")
    names = see.zoo.images()[:2] if quick else see.zoo.images()
    photos = torch.cat([prep(see.zoo.image(n)) for n in names])
    photos = torch.nn.functional.interpolate(photos, size=64 if quick else 112, mode="bilinear", antialias=True)
    table("efficientnet-lite0", net, photos, steps)


if __name__ == "__main__":
    main()
