"""Latency of the local web explorer under 50 concurrent identical requests, cold and warm.

    python benchmarks/explorer.py                     # EfficientNet-Lite0 on chelsea (about 3-4 minutes on 2 cores)
    python benchmarks/explorer.py --model lenet-digits --threads 1

One real server (uvicorn on 127.0.0.1, a free port) per measurement; the Session (the loaded
model) is reused, the app and its cache are new, so "cold" means an empty cache. Per group
(the page, predictions, one attribution, one ε step) it prints:

- single: the latency of one request alone on a fresh app (the cost of one computation);
- cold-50: 50 requests fired at once by one asyncio client on a fresh app, p50 and max (ms),
  the wall time until the last reply, and cold-50 p50 / single (about 1 when the 49 waiters
  simply get the first request's result, about 50/2 if each computed its own);
- warm-50: the same 50 requests again, now served from the cache;
- computations: model computations counted by the cache in the cold round + the warm round
  (single-flight: expect 1 + 0; the page is static and computes nothing);
- identical: whether all 100 bodies of the group were byte-identical.

Baseline (attribution only): a naive LRU cache written below, which looks up and on a miss
computes, with no per-key lock (no single-flight), called from N threads at once. It keeps the
server's one-at-a-time model lock (Grad-CAM hooks the shared model, so concurrent runs would
mix their captures), so its computations are real and run one after another, like the server's.
Client and server share one process (the server runs in a thread), so warm latencies include
the client's share of the GIL: read them as an upper bound. Nothing is asserted: latency is
measured, never tested.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import platform
import statistics
import threading
import time
import warnings
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import httpx
import torch

from seethrough.web import server, views
from seethrough.web.app import create_app
from seethrough.web.session import from_zoo

warnings.filterwarnings("ignore")
N = 50


async def fire(url: str, n: int) -> tuple[list[float], list[bytes], list[int], float]:
    """n concurrent GETs of url: per-request seconds, bodies, status codes, wall seconds."""
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=n)) as client:
        async def one():
            t0 = time.perf_counter()
            r = await client.get(url)
            return time.perf_counter() - t0, r.content, r.status_code

        t0 = time.perf_counter()
        out = await asyncio.gather(*(one() for _ in range(n)))
        wall = time.perf_counter() - t0
    return [o[0] for o in out], [o[1] for o in out], [o[2] for o in out], wall


def with_server(session, fn):
    """Run fn(base_url, app) against a fresh app (empty cache) served on a free local port."""
    app = create_app(session)
    running = server.start(app)
    try:
        return fn(running.url.rstrip("/"), app)
    finally:
        running.stop()


def computed(app) -> int:
    return sum(app.state.cache.stats()["computations"].values())


class NaiveLRU:
    """BASELINE ONLY, not the explorer's cache: a plain LRU that looks up and, on a miss, computes
    and stores. No per-key lock, so every request that misses before the first result is stored
    computes it again. Model computations pass one lock, as in the server (workers=1)."""

    def __init__(self, size: int = 128):
        self.items, self.size, self.computations = OrderedDict(), size, 0
        self.guard, self.model = threading.Lock(), threading.Lock()

    def get(self, key, compute):
        with self.guard:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        with self.model:
            value = compute()
        with self.guard:
            self.computations += 1
            self.items[key] = value
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return value


def naive_baseline(session, input_id: str, method: str, n: int):
    cache, start = NaiveLRU(), threading.Barrier(n)

    def body():
        return json.dumps(views.attribution(session, input_id, method)).encode()

    def request():
        start.wait()
        t0 = time.perf_counter()
        b = cache.get((input_id, method), body)
        return time.perf_counter() - t0, b

    t0 = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        out = list(pool.map(lambda _: request(), range(n)))
    return cache.computations, time.perf_counter() - t0, [o[0] for o in out], len({o[1] for o in out})


def ms(s: float) -> str:
    return f"{s * 1e3:.0f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--model", default="efficientnet-lite0", help="a zoo model, e.g. lenet-digits")
    parser.add_argument("--input", default=None, help="bundled input (default chelsea, else the first)")
    parser.add_argument("--naive", type=int, default=None,
                        help="threads for the naive baseline (default 50, or 10 when 50 would take over 3 minutes)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    session = from_zoo(args.model)
    load = time.perf_counter() - t0
    inp = args.input or ("chelsea" if "chelsea" in session.inputs else next(iter(session.inputs)))
    print(f"# seethrough explorer latency · {datetime.datetime.now():%Y-%m-%d %H:%M} · {platform.node()} · "
          f"{platform.processor() or platform.machine()} · torch {torch.__version__} · "
          f"{torch.get_num_threads()} threads · {args.model} on {inp} · session loaded in {load:.1f} s\n")

    groups = {
        "page /": "/",
        "predictions": f"/api/predictions?input={inp}",
        "attribution gradcam": f"/api/attribution?input={inp}&method=gradcam",
        "adversarial fgsm ε=2": f"/api/adversarial?input={inp}&method=fgsm&eps=2",
    }
    # Warm-up, untimed: first-call costs (thread pools, allocator, lazy imports) stay out of "single".
    with_server(session, lambda base, app: [httpx.get(base + p, timeout=600) for p in groups.values()])

    header = ["group", "single ms", "cold-50 p50 ms", "cold-50 max ms", "cold-50 wall ms", "p50/single",
              "warm-50 p50 ms", "warm-50 max ms", "computations cold+warm", "identical", "status"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    cold_wall = {}
    for name, path in groups.items():
        def single(base, app):
            t0 = time.perf_counter()
            r = httpx.get(base + path, timeout=600)
            return time.perf_counter() - t0, r.content

        single_s, single_body = with_server(session, single)

        def rounds(base, app):
            cold = asyncio.run(fire(base + path, N))
            c_cold = computed(app)
            warm = asyncio.run(fire(base + path, N))
            return cold, warm, c_cold, computed(app) - c_cold

        (ct, cb, cs, cw), (wt, wb, ws, _), c_cold, c_warm = with_server(session, rounds)
        cold_wall[name] = cw
        p50 = statistics.median(ct)
        codes = sorted(set(cs + ws))
        print(f"| {name} | {ms(single_s)} | {ms(p50)} | {ms(max(ct))} | {ms(cw)} | {p50 / single_s:.2f} | "
              f"{ms(statistics.median(wt))} | {ms(max(wt))} | {c_cold} + {c_warm} | "
              f"{'yes' if len(set(cb + wb)) == 1 else f'no ({len(set(cb + wb))} distinct)'}"
              f"{'' if single_body in cb else ', differs from single'} | {','.join(map(str, codes))} |")

    # The naive baseline, attribution only.
    t0 = time.perf_counter()
    json.dumps(views.attribution(session, inp, "gradcam"))
    single_attr = time.perf_counter() - t0
    n = args.naive or (N if N * single_attr <= 180 else 10)
    note = "" if n == N else (f" (not {N}: {N} × {single_attr:.1f} s would take over 3 minutes on this machine; "
                              f"the naive cost grows with the threads that miss, so scale by {N}/{n})")
    computations, wall, lat, distinct = naive_baseline(session, inp, "gradcam", n)
    server_wall = cold_wall["attribution gradcam"]
    print(f"\nbaseline: naive LRU, no single-flight, {n} threads calling views.attribution(session, {inp!r}, "
          f"'gradcam') at once{note}")
    print(f"  one attribution alone, direct call: {ms(single_attr)} ms")
    print(f"  naive LRU: {computations} computations for {n} requests, wall {ms(wall)} ms, "
          f"p50 {ms(statistics.median(lat))} ms, max {ms(max(lat))} ms, {distinct} distinct bodies")
    print(f"  single-flight server, cold-{N} over HTTP: 1 computation, wall {ms(server_wall)} ms")
    print(f"  naive wall / single-flight wall: {wall / server_wall:.1f}× (for {n} vs {N} requests)")


if __name__ == "__main__":
    main()
