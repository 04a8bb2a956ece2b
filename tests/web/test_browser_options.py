"""In a real browser: the chosen method's options are drawn from its spec and reach the map."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

import seethrough as see
from seethrough import render
from seethrough.web.views import data_url

pytestmark = pytest.mark.browser


def test_method_controls_come_from_the_spec_and_change_the_map(watched, lenet_url, lenet_session):
    page = watched
    page.goto(lenet_url + "#attribution")
    page.select_option("#input-select", "digit-3")
    page.fill("#target-input", "3")
    page.select_option("#method-select", "integrated-gradients")
    steps = page.locator("#method-options [data-option='steps']")
    expect(steps).to_have_value("50")
    expect(page.locator("#attr-overlay")).to_have_attribute("data-method", "integrated-gradients", timeout=60_000)
    steps.fill("4")
    steps.dispatch_event("change")
    x = lenet_session.input("digit-3")
    want = data_url(render.overlay(x, see.attribute(lenet_session.model, x, "integrated-gradients", 3, steps=4)))
    page.wait_for_function("want => document.querySelector('#attr-overlay').src === want", arg=want, timeout=60_000)
    page.select_option("#method-select", "saliency")  # another method: its own controls, no steps
    expect(page.locator("#method-options [data-option='steps']")).to_have_count(0)
    expect(page.locator("#method-options [data-option='abs']")).to_have_count(1)
