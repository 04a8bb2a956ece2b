"""Explorer fixtures: servers on 127.0.0.1 and a free port, and the system Chromium for Playwright.

The browser is Debian's ``chromium`` (``make test`` installs it when missing); Playwright's own
browser download is never used. Without it the browser tests skip, saying why.
"""
from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from seethrough.web.app import create_app
from seethrough.web.server import start
from seethrough.web.session import from_zoo

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
# Chromium's background services try to reach Google; this machine's closed network refuses them.
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]


# A busy 2-core machine computes some views in seconds: wait for text up to 20 s, never sleep.
expect.set_options(timeout=20_000)


def run_async(make_coroutine):
    """``asyncio.run`` in a thread of its own: Playwright's sync API keeps an event loop running
    in the main thread once a browser test has run, and asyncio.run refuses to nest."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make_coroutine())).result()


def local(app, **kwargs):
    """A test client that talks to ``app`` as its own page does: Host 127.0.0.1 and the token."""
    from fastapi.testclient import TestClient

    return TestClient(app, base_url="http://127.0.0.1:8765", headers={"X-Seethrough-Token": app.state.token}, **kwargs)


@pytest.fixture(scope="session")
def lenet_session():
    return from_zoo("lenet-digits")


@pytest.fixture(scope="session")
def effnet_session():
    return from_zoo("efficientnet-lite0")


@pytest.fixture(scope="session")
def lenet_url(lenet_session):
    server = start(create_app(lenet_session))
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def effnet_url(effnet_session):
    server = start(create_app(effnet_session))
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no system Chromium: install it with `apt-get install -y chromium chromium-driver` "
                    "(make test does this); Playwright's browser download is not used")
    return {**browser_type_launch_args, "executable_path": chromium, "args": CHROMIUM_FLAGS}


@pytest.fixture
def watched(page, request):
    """The page, failing the test on any console error or failed request; a screenshot is saved
    afterwards under tests/artifacts/ (and under $SEETHROUGH_SCREENSHOTS for `make screenshots`)."""
    problems: list[str] = []
    allowed = [re.compile(p) for p in getattr(request.node.get_closest_marker("console_allows"), "args", ())]
    page.on("console", lambda m: m.type == "error" and not any(a.search(m.text) for a in allowed)
            and problems.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} {r.failure}"))
    page.on("response", lambda r: r.status >= 400 and not any(a.search(f"{r.status}") for a in allowed)
            and problems.append(f"HTTP {r.status}: {r.url}"))
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    assert not problems, "\n".join(problems)


def snapshot(page, name: str) -> None:
    """A README screenshot, written when $SEETHROUGH_SCREENSHOTS names a folder (make screenshots)."""
    folder = os.environ.get("SEETHROUGH_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)
