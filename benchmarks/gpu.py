"""The benchmark's ratios on a GPU (issue 21 item 6): seethrough's many-pass methods against the dense limit on
a CUDA device, EfficientNet-Lite0 on one photo, printed as a README-ready markdown table.

    python benchmarks/gpu.py                        # on a machine with CUDA (a few minutes at most)
    python benchmarks/gpu.py --quick                # 64 px, few samples: checks the script (seconds)
    python benchmarks/gpu.py --device cpu --quick   # the same code on the CPU: checks the script without a GPU
    python benchmarks/gpu.py --json gpu.json        # every number, also the limit grid

Without CUDA (and ``--device cuda``, the default) it exits at once with one line saying so.

*The limit* of a row = its passes × the best per-image cost of a batched forward (``torch.no_grad``), or of
a forward + ``torch.autograd.grad`` w.r.t. the input, of the same model on the same device, over batch sizes
1–256 **and** memory layouts (contiguous; channels-last model copy and input), after a warm-up, measured at
the start and at the end of the run (the lower per cell is kept). Single-pass rows compare with one
forward + input gradient of the same single image (batch 1, the better layout). Every timing is bracketed by
``torch.cuda.synchronize()``: CUDA runs asynchronously, an unsynchronised clock times the launch. Ours: a
warm-up call, then ``--repeats`` calls, median and min–max. The matmul / cuDNN TF32 settings are torch's
defaults and are printed in the header.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F

import seethrough as see

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bench import _pass  # noqa: E402  (the one forward / forward + input-gradient pass of every benchmark)

warnings.filterwarnings("ignore")
MODEL = "efficientnet-lite0"
SIZES = (1, 8, 32, 64, 128, 256)


@dataclass
class Row:
    name: str
    group: str  # 'many-pass' or 'single-pass'
    work: str
    passes: int
    mode: str  # 'forward' or 'grad': which per-image cost the limit multiplies
    call: Callable[[], Any]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device, repeats: int) -> list[float]:
    """Seconds of ``repeats`` calls after one warm-up, each bracketed by a device synchronisation."""
    fn()
    sync(device)
    out = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t0)
    return out



def per_image_grid(models: dict[str, nn.Module], x: torch.Tensor, mode: str, sizes, repeats: int) -> dict:
    """{(layout, batch): best seconds per image} of one pass ``mode`` over a batch of copies of ``x``."""
    grid = {}
    for layout, model in models.items():
        for b in sizes:
            xb = x.expand(b, *x.shape[1:]).clone()
            if layout == "channels-last":
                xb = xb.contiguous(memory_format=torch.channels_last)
            try:
                grid[(layout, b)] = min(timed(lambda: _pass(model, xb, mode), x.device, repeats)) / b
            except torch.OutOfMemoryError:
                torch.cuda.empty_cache()
    return grid


def best(grid: dict, batch: int | None = None) -> tuple[float, str, int]:
    cells = {k: v for k, v in grid.items() if batch is None or k[1] == batch}
    (layout, b), v = min(cells.items(), key=lambda kv: kv[1])
    return v, layout, b


def rows_for(model: nn.Module, x: torch.Tensor, target: int, a: torch.Tensor, quick: bool) -> list[Row]:
    size = x.shape[-1]
    win, stride = (16, 8) if quick else (32, 16)
    n_lime, n_shap, n_rise, n_sg, n_ig, steps = (16, 16, 32, 4, 4, 8) if quick else (300, 300, 500, 50, 50, 64)
    n_occ = len(see.attribution.perturbation.occlusion_windows((size, size), win, stride)[1])
    layers = see.sanity.parameterised_layers(model, x)[::-1][: 4 if quick else None]

    def at(method: str, **o) -> Callable[[], Any]:  # many-pass methods take progress=, single-pass ones do not
        return lambda: see.attribute(model, x, method, target=target, **o)

    return [
        Row("occlusion", "many-pass", f"window {win}, stride {stride}", n_occ + 1, "forward",
            at("occlusion", window=win, stride=stride, progress=False)),
        Row("lime", "many-pass", f"{n_lime} samples", n_lime + 1, "forward", at("lime", n_samples=n_lime, progress=False)),
        Row("kernel-shap", "many-pass", f"{n_shap} samples", n_shap + 1, "forward", at("kernel-shap", n_samples=n_shap, progress=False)),
        Row("rise", "many-pass", f"{n_rise} masks", n_rise + 1, "forward", at("rise", n_samples=n_rise, progress=False)),
        Row("smoothgrad", "many-pass", f"{n_sg} samples", n_sg, "grad", at("smoothgrad", n_samples=n_sg, progress=False)),
        Row("integrated-gradients", "many-pass", f"{n_ig} steps", n_ig, "grad", at("integrated-gradients", steps=n_ig, progress=False)),
        Row("sanity cascade", "many-pass", f"saliency, {len(layers)} layers", len(layers) + 1, "grad",
            lambda: see.sanity.randomization(model, x, "saliency", target, metrics=("spearman_abs",), layers=layers,
                                             progress=False)),
        Row("deletion", "many-pass", f"{steps} steps", steps + 1, "forward",
            lambda: see.metrics.deletion(model, x, a, target, steps=steps, n_random=0, progress=False)),
        Row("insertion", "many-pass", f"{steps} steps", steps + 1, "forward",
            lambda: see.metrics.insertion(model, x, a, target, steps=steps, n_random=0, progress=False)),
        Row("saliency", "single-pass", "", 1, "grad", at("saliency")),
        Row("gradcam", "single-pass", "layer head", 1, "grad", at("gradcam", layer="head")),
    ]


def markdown(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="the device to measure on (default cuda; cpu checks the script)")
    p.add_argument("--quick", action="store_true", help="64 px, few samples: checks that everything runs")
    p.add_argument("--size", type=int, default=None, help="image side in pixels (default 224; --quick: 64)")
    p.add_argument("--repeats", type=int, default=3, help="timed calls after the warm-up (median and min–max)")
    p.add_argument("--photo", default="chelsea")
    p.add_argument("--only", default=None, help="comma-separated row names to run (default: every row)")
    p.add_argument("--json", default=None, help="write every number to this file")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: benchmarks/gpu.py measures the ratios on a GPU; run it on a machine with "
                         "CUDA (or pass --device cpu --quick to check the script)")
    size = args.size or (64 if args.quick else 224)
    model, prep = see.zoo.load(MODEL)
    model = model.to(device)
    for p in model.parameters():  # the limit's input gradients must not fill .grad
        p.requires_grad_(False)
    x = prep(see.zoo.image(args.photo))
    if size != x.shape[-1]:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True).clamp(0, 1)
    x = x.to(device)
    with torch.no_grad():
        target = int(model(x).argmax())
    a = see.attribute(model, x, "saliency", target=target)
    rows = rows_for(model, x, target, a, args.quick)
    if args.only:
        keep = {s.strip() for s in args.only.split(",")}
        rows = [r for r in rows if r.name in keep]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    tf32 = (f"TF32 matmul {torch.backends.cuda.matmul.allow_tf32}, cuDNN {torch.backends.cudnn.allow_tf32}"
            if device.type == "cuda" else f"{torch.get_num_threads()} threads")
    head = (f"seethrough GPU benchmark · {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC · {name} · "
            f"torch {torch.__version__} · {tf32} · {'QUICK' if args.quick else 'full'} run · {MODEL} on {args.photo} "
            f"{size}×{size}, target {target} · ours: median of {args.repeats} after a warm-up")
    print("#", head, "\n", flush=True)

    sizes = (1, 8, 32) if args.quick else SIZES
    models = {"contiguous": model, "channels-last": _channels_last(model)}
    grids = {m: per_image_grid(models, x, m, sizes, args.repeats) for m in ("forward", "grad")}
    results = {}
    for r in rows:
        t = timed(r.call, device, args.repeats)
        results[r.name] = t
        print(f"{r.name}: median {1e3 * statistics.median(t):.1f} ms", flush=True)
    again = {m: per_image_grid(models, x, m, sizes, args.repeats) for m in ("forward", "grad")}
    limit = {m: {k: min(grids[m].get(k, float("inf")), again[m].get(k, float("inf"))) for k in grids[m]}
             for m in grids}
    fwd, grad, grad1 = best(limit["forward"]), best(limit["grad"]), best(limit["grad"], batch=1)
    table_rows, records = [], []
    for r in rows:
        t = results[r.name]
        med = statistics.median(t)
        bound = r.passes * (fwd[0] if r.mode == "forward" else grad[0]) if r.group == "many-pass" else grad1[0]
        ratio = med / bound
        table_rows.append([r.name, r.work or "—", r.passes, f"{1e3 * med:.1f} ({1e3 * min(t):.1f}–{1e3 * max(t):.1f})",
                           f"{1e3 * bound:.2f}", f"{ratio:.2f}×"])
        records.append({"name": r.name, "group": r.group, "work": r.work, "passes": r.passes, "mode": r.mode,
                        "seconds": t, "limit_seconds": bound, "ratio": ratio})
    table = markdown(["method", "work", "passes", f"ours on {device.type}, ms (min–max)", "limit, ms", "ours / limit"],
                     table_rows)
    print(f"\nlimit per image on {name}: forward {1e3 * fwd[0]:.3f} ms ({fwd[1]}, batch {fwd[2]}), forward + input "
          f"gradient {1e3 * grad[0]:.3f} ms ({grad[1]}, batch {grad[2]}); one forward + input gradient at batch 1: "
          f"{1e3 * grad1[0]:.3f} ms ({grad1[1]})")
    print("\n" + table)
    out = {"header": head, "limit": {m: {f"{l}/b{b}": v for (l, b), v in g.items()} for m, g in limit.items()},
           "rows": records, "table": table}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


def _channels_last(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model).to(memory_format=torch.channels_last)


if __name__ == "__main__":
    main(sys.argv[1:])
