"""see.scan throughput (local, Dask with 2 workers, a hand-written loop) and peak memory at 1×, 4×, 16× the data.

Workload: lenet-digits on Fashion-MNIST (Debian's dataset-fashion-mnist, resized to 32 px),
layers conv2 and relu3, all five accumulators (top-9, moments, histograms, dead units, a
1000-example reservoir). The hand-written loop reads the same memory-mapped batches, runs the
model inside ``see.hooks`` and keeps only a running per-unit sum: the floor any scan pays.
Dask runs on a LocalCluster of 2 worker processes with one torch thread each; its start-up
(spawning workers that import torch) is timed apart from the scan. Peak memory: each scan in a
fresh process, the peak RSS during the scan (VmHWM, reset just before it) minus the RSS before it.

    python benchmarks/scan.py              # 10,000 test images; memory at 3,750 / 15,000 / 60,000
    python benchmarks/scan.py --n 2000     # a quick look
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

LAYERS = ["conv2", "relu3"]
BATCH = 64


def _data(split: str, n: int):
    import seethrough as see

    return see.scan.fashion_mnist(split, n=min(n, 60000 if split == "train" else 10000))


def plain_loop(model, src) -> float:
    import torch

    import seethrough as see

    t0 = time.perf_counter()
    total = None
    with torch.no_grad(), see.hooks(model, capture=LAYERS, detach=True) as rec:
        for s in range(0, len(src), BATCH):
            rec.clear()
            model(src.read(range(s, min(s + BATCH, len(src)))).x)
            sums = [rec[n].flatten(2).sum((0, 2)) if rec[n].dim() == 4 else rec[n].sum(0) for n in LAYERS]
            total = sums if total is None else [a + b for a, b in zip(total, sums)]
    return time.perf_counter() - t0


def throughput(n: int) -> dict:
    import torch

    import seethrough as see

    torch.set_num_threads(1)
    model = see.zoo.load("lenet-digits")[0]
    src = _data("test", n)
    out = {"images": len(src)}
    out["plain_s"] = plain_loop(model, src)
    t0 = time.perf_counter()
    local = see.scan(model, src, LAYERS, batch_size=BATCH, progress=False)
    out["local_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    see.scan(model, src, LAYERS, ["moments"], batch_size=BATCH, progress=False)
    out["local_moments_only_s"] = time.perf_counter() - t0
    from seethrough.scan.dask_backend import _client

    t0 = time.perf_counter()
    client, cluster, _ = _client(None, 2)
    client.run(lambda: __import__("seethrough"))  # workers import torch and seethrough once
    out["dask_startup_s"] = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        dask = see.scan(model, src, LAYERS, batch_size=BATCH, engine="dask", address=client, progress=False)
        out["dask_s"] = time.perf_counter() - t0
    finally:
        client.close()
        cluster.close()
    out["identical_topk"] = all((local[l, "topk"].ids == dask[l, "topk"].ids).all() for l in LAYERS)
    for k in ("plain", "local", "dask"):
        out[f"{k}_img_per_s"] = len(src) / out[f"{k}_s"]
    out["local_over_plain"] = out["local_s"] / out["plain_s"]
    out["dask_over_local"] = out["dask_s"] / out["local_s"]
    out["dask_with_startup_over_local"] = (out["dask_s"] + out["dask_startup_s"]) / out["local_s"]
    return out


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_peak() -> None:
    """Reset the kernel's peak-RSS mark (VmHWM), so the peak is the scan's, not the model loading's."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _peak() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


def memory_child(n: int) -> None:
    """Run in a fresh process: print the peak RSS growth of one local scan over ``n`` images."""
    import torch

    import seethrough as see

    torch.set_num_threads(1)
    model = see.zoo.load("lenet-digits")[0]
    src = _data("train", n)
    see.scan(model, _data("train", 256), LAYERS, batch_size=BATCH, progress=False)  # warm: allocator, first batches
    before = _rss()
    _reset_peak()
    t0 = time.perf_counter()
    res = see.scan(model, src, LAYERS, batch_size=BATCH, progress=False)
    peak = _peak()
    print(json.dumps({"images": res.n_seen, "rss_before_mib": before / 2**20, "peak_mib": peak / 2**20,
                      "growth_mib": (peak - before) / 2**20, "seconds": time.perf_counter() - t0}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10000, help="test images for the throughput runs (at most 10,000)")
    ap.add_argument("--base", type=int, default=3750, help="images at 1× for the memory runs (16× ≤ 60,000)")
    ap.add_argument("--json", default=None, help="also write the numbers here")
    ap.add_argument("--memory-child", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return
    print(f"# see.scan on {platform.processor() or platform.machine()}, {os.cpu_count()} cores, one torch thread per process")
    tp = throughput(args.n)
    print(f"throughput over {tp['images']:,} Fashion-MNIST images (lenet-digits, {', '.join(LAYERS)}, all accumulators):")
    for k, what in (("plain", "hand-written loop (forward + per-unit sums)"), ("local", "see.scan local"),
                    ("dask", "see.scan Dask, 2 workers")):
        print(f"  {what:45s} {tp[f'{k}_s']:7.2f} s  {tp[f'{k}_img_per_s']:8.0f} img/s")
    print(f"  local scan / plain loop            {tp['local_over_plain']:.2f}×  (moments only: "
          f"{tp['local_moments_only_s'] / tp['plain_s']:.2f}×)")
    print(f"  Dask scan / local scan             {tp['dask_over_local']:.2f}×  (+ cluster start-up {tp['dask_startup_s']:.1f} s: "
          f"{tp['dask_with_startup_over_local']:.2f}×)   top-k identical: {tp['identical_topk']}")
    mem = []
    for mult in (1, 4, 16):
        out = subprocess.run([sys.executable, __file__, "--memory-child", str(args.base * mult)], check=True,
                             capture_output=True, text=True).stdout
        mem.append({"multiple": mult, **json.loads(out.strip().splitlines()[-1])})
        m = mem[-1]
        print(f"memory {mult:2d}× ({m['images']:6,} images): peak RSS {m['peak_mib']:6.0f} MiB, growth during the scan "
              f"{m['growth_mib']:5.1f} MiB, {m['seconds']:.1f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"throughput": tp, "memory": mem}, f, indent=1)


if __name__ == "__main__":
    main()
