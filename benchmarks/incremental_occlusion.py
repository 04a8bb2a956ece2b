"""Incremental occlusion (Krypton, Nakandala et al. 2019) against dense occlusion, per window/stride.

    python benchmarks/incremental_occlusion.py            # the table in docs/perturbation.md (a few minutes)
    python benchmarks/incremental_occlusion.py --full     # also window 16 / stride 8 at 224 px
    python benchmarks/incremental_occlusion.py --quick    # smaller, to check that it runs

One process, torch's default thread count (or OMP_NUM_THREADS), one warm-up call per method and row, then the median of
``--repeats`` calls; the same batch size for dense and incremental (``--batch``: 128 patches on lenet, where per-batch
costs dominate, 16 on EfficientNet). Columns: time per call,
the speed-up, the *MAC ratio* (dense multiply-adds / incremental multiply-adds of the conv and linear layers,
counted on the same calls: what the update boxes save in arithmetic; time can differ from it, as the
two paths run different kernels), the exact mode's
largest difference from dense (float32), and the approximate mode per projection τ (``--tau``) with its
speed-up and its error: the largest |Δ drop| over the largest |drop|, and the mean |Δ| / mean |drop|.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import datetime, timezone

import torch
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

import seethrough as see
from seethrough.attribution.occlusion import occlusion_drops


class MacCount(TorchFunctionMode):
    """Multiply-adds of every conv2d and linear call made inside the block."""

    def __init__(self):
        super().__init__()
        self.macs = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is F.conv2d:
            w = args[1]
            self.macs += out.numel() * w.shape[1] * w.shape[2] * w.shape[3]
        elif func is F.linear:
            self.macs += out.numel() * args[1].shape[1]
        return out


def timed(fn, repeats: int) -> tuple[float, float, float]:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times), max(times)


def row(name: str, model, x: torch.Tensor, window: int, stride: int, taus: list[float], repeats: int, batch: int) -> str:
    kw = dict(window=window, stride=stride, progress=False, batch_size=batch)
    run = {"dense": lambda: occlusion_drops(model, x, None, **kw),
           "exact": lambda: occlusion_drops(model, x, None, incremental=True, **kw)}
    for tau in taus:
        run[tau] = lambda tau=tau: occlusion_drops(model, x, None, incremental="approximate", projection=tau, **kw)
    drops, macs = {}, {}
    for k, f in run.items():  # the first call of each is also its warm-up
        with MacCount() as c:
            drops[k] = f().drops
        macs[k] = c.macs
    t = {k: timed(f, repeats) for k, f in run.items()}
    ms = {k: 1000 * v[0] for k, v in t.items()}
    err = (drops["exact"] - drops["dense"]).abs().max().item()
    cells = []
    for tau in taus:
        d = (drops[tau] - drops["dense"]).abs()
        rel_max = d.max().item() / drops["dense"].abs().max().item()
        rel_mean = d.mean().item() / drops["dense"].abs().mean().item()
        cells.append(f"{ms['dense'] / ms[tau]:.2f}×, {100 * rel_max:.0f} % / {100 * rel_mean:.0f} %")
    n = drops["dense"].shape[1] * x.shape[0]
    spread = " / ".join(f"{1000 * t[k][1]:.0f}–{1000 * t[k][2]:.0f}" for k in ("dense", "exact"))
    return (f"| {name} | {window}/{stride} | {n} | {ms['dense']:.0f} | {ms['exact']:.0f} | "
            f"**{ms['dense'] / ms['exact']:.2f}×** | {macs['dense'] / macs['exact']:.2f}× | {err:.1e} | "
            + " | ".join(cells) + f" | {spread} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--full", action="store_true", help="add window 16 / stride 8 at 224 px (729 patches)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, nargs=2, default=[128, 16], metavar=("LENET", "EFFICIENTNET"))
    parser.add_argument("--tau", type=float, nargs="+", default=[0.5, 0.75])
    a = parser.parse_args()
    load = os.getloadavg()
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}, batch {a.batch[0]} (lenet) / {a.batch[1]}, "
          f"median of {a.repeats} after a warm-up\n")
    print("| model | window/stride | patches | dense ms | incremental ms | speed-up | MAC ratio | max \\|Δ\\| | "
          + " | ".join(f"τ = {t}: speed-up, error max / mean" for t in a.tau) + " | min–max ms (dense / incr.) |")
    print("|---" * (9 + len(a.tau)) + "|")
    lenet, _ = see.zoo.load("lenet-digits")
    digits, _ = see.zoo.digits("test")
    for w, s in ((8, 4), (4, 2)):
        print(row("lenet-digits 32 px, 4 digits", lenet, digits[:4], w, s, a.tau, a.repeats, a.batch[0]), flush=True)
    net, prep = see.zoo.load("efficientnet-lite0")
    size = 96 if a.quick else 224
    photo = F.interpolate(prep(see.zoo.image("chelsea")), size=size, mode="bilinear", antialias=True)
    for w, s in ((32, 16), (16, 8)) if a.full else ((32, 16),):
        print(row(f"efficientnet-lite0 {size} px, chelsea", net, photo, w, s, a.tau, a.repeats, a.batch[1]), flush=True)


if __name__ == "__main__":
    main()
