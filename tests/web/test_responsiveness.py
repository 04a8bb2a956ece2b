"""Cheap requests never wait behind heavy ones: a load test against a real server on 127.0.0.1.

The model is saturated by t-SNE projection jobs and 48 heavy GETs (distinct keys, so each one
waits for the model in a thread of its own: more than the 40 threads a sync endpoint would
share). While it stays saturated, the page, /api/info, job polling, job submission, cancel
and a small upload are each requested in turn; the p95 latency of each must stay under
0.2 s. Before the cheap endpoints were taken off the shared thread pool, /api/info waited for
the heavy requests ahead of it (seconds). The bound is generous against the ~10 ms these
requests take on an idle machine; the numbers are printed so a run states what it measured.
"""
from __future__ import annotations

import asyncio
import io
import math
import time

import httpx
import pytest
from PIL import Image

from seethrough.web.app import create_app
from seethrough.web.server import start

from .conftest import run_async

BOUND = 0.2
ROUNDS = 40
HEAVY_GETS = 48


def _p95(values: list[float]) -> float:
    return sorted(values)[math.ceil(0.95 * len(values)) - 1]


def _png(shade: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (16, 16), shade).save(buf, "PNG")
    return buf.getvalue()


async def _scenario(base: str, app) -> tuple[dict[str, list[float]], list[int], list[int]]:
    cache = app.state.cache
    limits = httpx.Limits(max_connections=HEAVY_GETS + 16, max_keepalive_connections=HEAVY_GETS + 16)
    headers = {"X-Seethrough-Token": app.state.token}
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits, headers=headers) as client:
        jobs = []
        for seed in range(12):  # each a few seconds of t-SNE (12: a quiet fast machine finishes 6 before the rounds end) on the model's penultimate layer
            r = await client.post("/api/jobs/projection", params={"input": "digit-0", "layer": "fc1", "method": "tsne",
                                                                 "n": 360, "seed": seed})
            jobs.append(r.json()["id"])
        heavy = [asyncio.create_task(client.get("/api/activations", params={"input": f"digit-{i % 10}", "layer": "conv1",
                                                                            "show": "random", "seed": i}))
                 for i in range(HEAVY_GETS)]
        deadline = time.monotonic() + 60
        while cache.stats()["running"] == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        busy_before = cache.stats()["running"]

        times: dict[str, list[float]] = {k: [] for k in ("page", "info", "poll", "submit", "cancel", "upload")}
        busy = []

        async def timed(group: str, request) -> httpx.Response:
            t0 = time.perf_counter()
            r = await request
            times[group].append(time.perf_counter() - t0)
            assert r.status_code == 200, (group, r.status_code, r.text)
            return r

        for k in range(ROUNDS):
            await timed("page", client.get("/"))
            await timed("info", client.get("/api/info"))
            await timed("poll", client.get(f"/api/jobs/{jobs[-1]}"))
            ticket = (await timed("submit", client.post("/api/jobs/projection", params={
                "input": "digit-0", "layer": "fc1", "method": "tsne", "n": 360, "seed": 5}))).json()
            await timed("cancel", client.delete(f"/api/jobs/{ticket['id']}"))  # the job goes on for jobs[-1]
            await timed("upload", client.post("/api/upload", files={"file": ("d.png", _png(k), "image/png")}))
            busy.append(cache.stats()["running"])
        pending_after = app.state.jobs.stats()["pending"]
        for ticket in jobs:  # let the model go: the computations stop at their next report
            await client.delete(f"/api/jobs/{ticket}")
        codes = [r.status_code for r in await asyncio.gather(*heavy)]
    return times, [busy_before, *busy, pending_after], codes


@pytest.mark.slow
def test_cheap_requests_stay_fast_while_the_model_is_saturated(lenet_session):
    app = create_app(lenet_session)
    server = start(app)
    try:
        times, busy, codes = run_async(lambda: _scenario(server.url.rstrip("/"), app))
    finally:
        server.stop()
    report = {group: (round(_p95(v), 3), round(max(v), 3)) for group, v in times.items()}
    print("p95 / max latency (s) while the model was saturated:", report)
    # the window was saturated: the model was computing when it began and at half of the samples at least
    # (a fast machine may finish the queued jobs before the last rounds, so none need be pending then)
    assert busy[0] == 1 and sum(b == 1 for b in busy[1:-1]) >= 0.5 * ROUNDS, busy
    assert codes == [200] * HEAVY_GETS  # the heavy requests were served, only later
    slow = {group: p95 for group, (p95, _) in report.items() if p95 >= BOUND}
    assert not slow, f"p95 over {BOUND} s while the model was busy: {slow}"
