"""Fifty concurrent requests per view against a real server on 127.0.0.1: all 200, identical
bodies, one model computation per view, and a second round served from the cache.
(Latency is measured in benchmarks/explorer.py, never asserted here.)"""
from __future__ import annotations

import asyncio

import httpx
import pytest

from seethrough.web.app import create_app
from seethrough.web.server import start

from .conftest import run_async

GROUPS = {
    "page": ("/", None),
    "predictions": ("/api/predictions?input=chelsea", "predictions"),
    "attribution": ("/api/attribution?input=chelsea&method=gradcam", "attribution"),
    "eps step": ("/api/adversarial?input=chelsea&method=fgsm&eps=2", "adversarial"),
}


async def _round(base: str, path: str, n: int = 50) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        return await asyncio.wait_for(asyncio.gather(*(client.get(path) for _ in range(n))), timeout=60)


@pytest.fixture(scope="module")
def server(effnet_session):
    app = create_app(effnet_session)
    running = start(app)
    yield running.url.rstrip("/"), app
    running.stop()


@pytest.mark.parametrize("group", list(GROUPS))
def test_fifty_concurrent_requests_compute_once_and_agree(server, group):
    base, app = server
    path, kind = GROUPS[group]
    assert base.startswith("http://127.0.0.1:")
    cold = run_async(lambda: _round(base, path))
    assert [r.status_code for r in cold] == [200] * 50
    assert len({r.content for r in cold}) == 1
    computed = app.state.cache.stats()["computations"]
    if kind is not None:
        assert computed[kind] == 1
    hits = app.state.cache.stats()["hits"]
    warm = run_async(lambda: _round(base, path))
    assert [r.status_code for r in warm] == [200] * 50 and {r.content for r in warm} == {cold[0].content}
    assert app.state.cache.stats()["computations"] == computed
    if kind is not None:
        assert app.state.cache.stats()["hits"] == hits + 50
