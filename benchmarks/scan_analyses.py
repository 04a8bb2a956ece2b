"""Network dissection time per unit (seethrough.scan.dissect), on lenet-digits and EfficientNet-Lite0.

Workload: the procedural probe (mosaics of patterns, textures and plain colours with exact masks,
plus 10 % photo crops), two passes on the local engine: pass 1 the exact top-0.5 % threshold of
every unit of every layer (one scan), pass 2 the IoU counts (one scan per layer: the thresholds
differ per layer); the probe images are drawn on the fly (kept in memory up to 64 MB), and that
is timed too. Time per unit = the whole dissection / the units dissected. Printed as a
Markdown table, with each layer's labelled units per category (Bau et al.'s summary).

    python benchmarks/scan_analyses.py              # lenet: 600 probes at 32 px; EfficientNet: 300 at 224 px
    python benchmarks/scan_analyses.py --n 100      # a quick look
"""
from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

RUNS = {
    "lenet-digits": dict(layers=["conv1", "conv2"], size=32, channels=1, n=600),
    "efficientnet-lite0": dict(layers=["blocks.1", "blocks.3", "blocks.5", "blocks.8"], size=224, channels=3, n=300),
}


def dissection_time(name: str, layers: list[str], size: int, channels: int, n: int, resolution: int | None = None):
    """``(seconds, units, dissection)`` of one dissection, drawing the probe included (it is drawn on the fly)."""
    import seethrough as see
    from seethrough.scan.concepts import Probe
    from seethrough.scan.dissect import dissect

    model, _ = see.zoo.load(name)
    probe = Probe(n=n, size=size, channels=channels)
    t0 = time.perf_counter()
    d = dissect(model, layers, probe, resolution=resolution, batch_size=16, progress=False)
    seconds = time.perf_counter() - t0
    return seconds, sum(int(d.iou[l].shape[0]) for l in layers), d


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=None, help="probe images (default: 600 for lenet, 300 for EfficientNet)")
    ap.add_argument("--only", choices=list(RUNS), default=None)
    args = ap.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s)\n")
    print("| model | layers | units | probe | seconds | ms per unit | labelled (colour / pattern / texture) |")
    print("|---|---|---|---|---|---|---|")
    for name, run in RUNS.items():
        if args.only and name != args.only:
            continue
        n = args.n or run["n"]
        seconds, units, d = dissection_time(name, run["layers"], run["size"], run["channels"], n)
        frame = d.summary()
        per = []
        for layer in run["layers"]:
            sub = frame[frame.layer == layer].set_index("category")["units"]
            per.append(f"{layer}: {sub.get('color', 0)}/{sub.get('pattern', 0)}/{sub.get('texture', 0)}")
        print(f"| {name} | {', '.join(run['layers'])} | {units} | {n} × {run['size']} px | {seconds:.1f} | "
              f"{1000 * seconds / units:.0f} | {'; '.join(per)} |")


if __name__ == "__main__":
    main()
