"""``explore --scan`` in a real browser: the projector draws the stored sample, the unit view the scan's state."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

import seethrough as see
from seethrough.web.app import create_app
from seethrough.web.server import start
from seethrough.web.session import attach_scan, from_zoo

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def scan_url(tmp_path_factory):
    out = tmp_path_factory.mktemp("scan")
    res = see.scan("lenet-digits", see.scan.digits_source(), ["conv2", "relu3"], batch_size=64, out=out,
                   progress=False, options={"reservoir": {"size": 70}})
    server = start(create_app(attach_scan(from_zoo("lenet-digits"), out)))
    yield server.url, res
    server.stop()


def test_projector_and_unit_view_read_the_stored_scan(watched, scan_url):
    url, res = scan_url
    page = watched
    page.goto(url + "#projector")
    expect(page.locator("#proj-scan-label")).to_be_visible()
    expect(page.locator("#proj-layer")).to_have_value("relu3")  # the last layer with a stored sample
    page.select_option("#proj-method", "pca")
    page.click("#proj-run")
    expect(page.locator("#proj-info")).to_contain_text("the stored scan's sample of 70 of 360 examples", timeout=60_000)
    expect(page.locator("#proj-svg circle.point")).to_have_count(70)
    ids = page.locator("#proj-svg circle.point").evaluate_all("els => els.map(e => Number(e.dataset.index))")
    assert ids == res["relu3", "reservoir"].ids.tolist()
    page.locator("#proj-svg circle.point").nth(3).hover()
    expect(page.locator("#proj-thumb")).to_have_attribute("src", f"/api/scan/{ids[3]}.png")
    page.select_option("#proj-layer", "fc3")  # not scanned: the explorer's own data set again
    expect(page.locator("#proj-scan-label")).to_be_hidden()

    page.goto(url + "#activations")
    page.select_option("#layer-select", "conv2")
    expect(page.locator("#grid img.tile")).to_have_count(16)  # conv2's grid, not the first layer's, is up
    page.locator("#grid img.tile[data-channel='3']").click()
    expect(page.locator("#unit-title")).to_have_text("conv2, channel 3")
    expect(page.locator("#unit-examples img.example")).to_have_count(9, timeout=30_000)
    expect(page.locator("#unit-examples-note")).to_contain_text("from the scan of 360 examples")
    state = "dead" if res["conv2", "dead"].dead[3] else "alive"
    expect(page.locator("#unit-scan-state")).to_contain_text(f"over the scan: {state}, active on")
    expect(page.locator("#unit-scan-hist")).to_have_attribute("src", re.compile(r"^data:image/png"))
