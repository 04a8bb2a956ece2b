"""Per-image cost of a batched forward (and forward + input gradient) against the batch size: the measurement
behind the batch-size rule of seethrough.batching (no probing up to PROBE_FROM items, batches of CPU_BATCH,
probes from 8 up).

Run: ``python benchmarks/batch_sizes.py [--px N] [model ...]`` (default: lenet-digits efficientnet-lite0;
``--px 512``: the photo resized to N×N, batches 1, 2, 4, 8, with the cost per megapixel too). Every
batch size is timed in round-robin rounds (1, 4, 8, 16, 32, 1, 4, ...; lenet-digits up to 256) after a warm-up call at each
shape, channels-last, and the best of the rounds is kept, so a noisy neighbour affects every size alike.
Prints, per model and mode, each size's per-image cost and its ratio to the best size.
"""
from __future__ import annotations

import sys
import time

import torch

import seethrough as see
from seethrough.hooks import hooks
from seethrough.runner import fast

SIZES = {"lenet-digits": (1, 4, 8, 16, 32, 64, 128, 256)}  # small images: past 32 too
DEFAULT_SIZES = (1, 4, 8, 16, 32)


def per_image(model: torch.nn.Module, x1: torch.Tensor, mode: str, sizes=DEFAULT_SIZES, rounds: int = 3) -> dict[int, float]:
    """Best seconds per image at each batch size, channels-last through seethrough.runner.fast."""
    best = {s: float("inf") for s in sizes}
    with hooks(model), fast(model, x1, "forward") as run:
        batches = {s: run.input(x1.repeat(s, 1, 1, 1)) for s in sizes}

        def once(xb: torch.Tensor) -> None:
            if mode == "forward":
                with torch.no_grad():
                    run.model(xb)
            else:
                xg = xb.clone().requires_grad_(True)
                torch.autograd.grad(run.model(xg)[:, 0].sum(), xg)

        for xb in batches.values():
            once(xb)  # the first call at a shape builds its kernels
        for _ in range(rounds):
            for s, xb in batches.items():
                t0 = time.perf_counter()
                once(xb)
                best[s] = min(best[s], (time.perf_counter() - t0) / s)
    return best


def main(argv: list[str]) -> None:
    px = None
    if argv[:1] == ["--px"]:
        px, argv = int(argv[1]), argv[2:]
    for name in argv or ["lenet-digits", "efficientnet-lite0"]:
        model, prep = see.zoo.load(name)
        x1 = see.zoo.digits("test")[0][:1] if name == "lenet-digits" else prep(see.zoo.image("chelsea"))
        sizes = SIZES.get(name, DEFAULT_SIZES)
        if px is not None:  # a larger (or smaller) image: the rule's batch shrinks with the pixels
            x1 = torch.nn.functional.interpolate(x1, size=(px, px), mode="bilinear", align_corners=False)
            sizes = (1, 2, 4, 8)
        for mode in ("forward", "grad"):
            cost = per_image(model, x1, mode, sizes)
            low = min(cost.values())
            mp = x1.shape[-1] * x1.shape[-2] / 1e6
            row = ", ".join(f"{s}: {c * 1e3:.2f} ms, {c * 1e3 / mp:.0f} ms/MP ({c / low:.2f}x)" for s, c in cost.items())
            print(f"{name} {tuple(x1.shape[-2:])} {mode} ({torch.get_num_threads()} threads): {row}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
