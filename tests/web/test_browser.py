"""The explorer in a real browser: every view clicked through, asserting on what is shown.

Waits are on text and attributes (``expect``), never fixed sleeps. lenet-digits carries the
heavy views, efficientnet-lite0 the predictions, the wide activation grid and attribution.
"""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from seethrough.attribution import METHODS, attribute

from .conftest import snapshot

pytestmark = pytest.mark.browser
LOADED = "sel => { const els = [...document.querySelectorAll(sel)]; return els.length > 0 && els.every(e => e.complete && e.naturalWidth > 0); }"


def loaded(page, selector: str) -> bool:
    """Every image matching ``selector`` has decoded (naturalWidth > 0); fails after 10 s."""
    page.wait_for_function(LOADED, arg=selector, timeout=10_000)
    return True


def test_input_view_shows_chelsea_as_egyptian_cat(watched, effnet_url):
    page = watched
    page.goto(effnet_url + "#input")
    page.select_option("#input-select", "chelsea")
    expect(page.locator("#top5 li").first.locator(".label")).to_have_text("Egyptian cat")
    expect(page.locator("#top5 li")).to_have_count(5)
    expect(page.locator("#input-caption")).to_contain_text("3×224×224")
    assert loaded(page, "#input-image")
    snapshot(page, "1-input")


def test_activation_grid_of_head_shows_every_channel_or_the_stated_subset(watched, effnet_url):
    page = watched
    page.goto(effnet_url + "#activations")
    page.select_option("#input-select", "chelsea")
    page.select_option("#layer-select", "head")
    expect(page.locator("#grid-rule")).to_contain_text("256 of 1280 channels with the most energy")
    expect(page.locator("#grid img.tile")).to_have_count(256)
    assert loaded(page, "#grid img.tile")
    snapshot(page, "2-activations")
    page.select_option("#show-select", "all")
    expect(page.locator("#grid-rule")).to_contain_text("all 1280 channels")
    expect(page.locator("#grid img.tile")).to_have_count(1280)
    assert loaded(page, "#grid img.tile")


def test_unit_browser_shows_k_examples_for_a_clicked_channel(watched, lenet_url):
    page = watched
    page.goto(lenet_url + "#activations")
    page.select_option("#layer-select", "conv2")
    expect(page.locator("#grid img.tile")).to_have_count(16)
    page.locator("#grid img.tile[data-channel='3']").click()
    expect(page).to_have_url(lenet_url + "#units")
    expect(page.locator("#unit-title")).to_have_text("conv2, channel 3")
    expect(page.locator("#unit-examples img.example")).to_have_count(9, timeout=30_000)
    expect(page.locator("#unit-examples-note")).to_contain_text("receptive-field crops")
    for pic in ("#unit-filter", "#unit-map", "#unit-max", "#unit-examples img.example"):
        assert loaded(page, pic), pic
    snapshot(page, "3-units")


def test_every_registered_method_renders_an_overlay_with_its_badge(watched, lenet_url, lenet_session):
    """On LeNet every method draws its map and badge, except where the library itself refuses
    the model (CAM needs global pooling + one linear layer): then the page shows that error.
    CAM's overlay is checked on EfficientNet in the next test."""
    page = watched
    page.goto(lenet_url + "#attribution")
    options = page.locator("#method-select option")
    expect(options).to_have_count(len(METHODS))
    assert options.evaluate_all("os => os.map(o => o.value)") == list(METHODS)
    x = lenet_session.input("digit-0")
    for method in METHODS:
        try:
            attribute(lenet_session.model, x, method, 0)
            refused = None
        except ValueError as e:
            refused = str(e)
        page.select_option("#method-select", method)
        if refused:
            expect(page.locator("#attribution .error")).to_have_text(refused, timeout=30_000)
            continue
        expect(page.locator("#attr-overlay")).to_have_attribute("data-method", method, timeout=30_000)
        expect(page.locator("#badge-verdict")).not_to_be_empty()
        assert loaded(page, "#attr-overlay"), method
    assert sum(1 for m in METHODS if m == "cam") == 1


def test_attribution_on_a_photo_with_its_trust_badge(watched, effnet_url):
    page = watched
    page.goto(effnet_url + "#attribution")
    page.select_option("#input-select", "chelsea")
    expect(page.locator("#method-select option")).to_have_count(len(METHODS))
    for method in ("cam", "gradcam"):
        page.select_option("#method-select", method)
        # EfficientNet's trust badge (randomisation cascade, deletion and insertion curves) takes
        # a minute or more on a loaded 2-core machine: a generous wait, not a speed claim
        expect(page.locator("#attr-overlay")).to_have_attribute("data-method", method, timeout=240_000)
        expect(page.locator("#attr-caption")).to_contain_text("class 285 · Egyptian cat")
        expect(page.locator("#badge-rows tr")).to_have_count(3)
        assert loaded(page, "#attr-overlay")
    snapshot(page, "4-attribution")


def test_projector_draws_the_stated_sample_size(watched, lenet_url):
    page = watched
    page.goto(lenet_url + "#projector")
    page.select_option("#proj-layer", "fc2")
    page.select_option("#proj-method", "tsne")
    page.fill("#proj-n", "150")
    page.click("#proj-run")
    expect(page.locator("#proj-info")).to_contain_text("150 of 360 samples", timeout=60_000)
    expect(page.locator("#proj-svg circle.point")).to_have_count(150)
    expect(page.locator("#proj-neighbors li")).to_have_count(5)
    page.locator("#proj-svg circle.point").nth(7).hover()
    expect(page.locator("#proj-hover")).to_contain_text("sample #")
    expect(page.locator("#proj-thumb")).to_have_js_property("complete", True)
    assert loaded(page, "#proj-thumb")
    snapshot(page, "5-projector")


def test_epsilon_slider_flips_the_label_at_the_recorded_value(watched, effnet_url):
    page = watched
    page.goto(effnet_url + "#adversarial")
    page.select_option("#input-select", "chelsea")
    expect(page.locator("#adv-label")).to_have_text("Egyptian cat")
    marker = page.locator("#flip-marker")
    expect(marker).to_have_attribute("data-index", __import__("re").compile(r"^\d+$"), timeout=240_000)  # 16 PGD attacks
    flip = marker.get_attribute("data-index")
    page.locator("#eps-slider").fill(flip)  # by fill()
    expect(page.locator("#adv-label")).to_have_attribute("data-eps", marker.get_attribute("data-eps"))
    expect(page.locator("#adv-label")).not_to_have_text("Egyptian cat")
    assert loaded(page, "#adv-image") and loaded(page, "#adv-pert")
    snapshot(page, "6-adversarial")
    page.locator("#eps-slider").focus()
    page.keyboard.press("Home")  # by keyboard: back to ε = 0, the clean label
    expect(page.locator("#adv-label")).to_have_text("Egyptian cat")
    for _ in range(int(flip)):
        page.keyboard.press("ArrowRight")
    expect(page.locator("#adv-label")).not_to_have_text("Egyptian cat")


@pytest.mark.console_allows("415", "Unsupported Media Type")
def test_invalid_upload_shows_the_error_and_a_valid_one_becomes_the_input(watched, lenet_url, tmp_path):
    page = watched
    page.goto(lenet_url + "#input")
    expect(page.locator("#top5 li")).to_have_count(5)
    fake = tmp_path / "digit.png"
    fake.write_text("this is text, not a picture")
    page.set_input_files("#upload", str(fake))
    expect(page.locator("#upload-error")).to_contain_text("not a PNG, JPEG or WebP")
    from PIL import Image

    real = tmp_path / "seven.png"
    Image.new("L", (8, 8), 255).save(real)
    page.set_input_files("#upload", str(real))
    expect(page.locator("#input-select")).to_have_value(__import__("re").compile(r"^u[0-9a-f]{16}$"))
    expect(page.locator("#upload-error")).to_be_empty()
    expect(page.locator("#top5 li")).to_have_count(5)


def test_two_pages_share_a_computation_and_neither_cancels_the_other(browser, lenet_session):
    """Two pages ask for the same attribution while the model is busy; page A then switches to
    another method and page B fires two change events. Each page shows what it asked for,
    never "cancelled": A's switch and B's own older request only withdraw their own tickets."""
    from seethrough.web.app import create_app
    from seethrough.web.server import start

    app = create_app(lenet_session)
    server = start(app)
    contexts = [browser.new_context(), browser.new_context()]
    problems: list[str] = []
    try:
        page_a, page_b = (c.new_page() for c in contexts)
        for page in (page_a, page_b):
            page.on("console", lambda m: m.type == "error" and problems.append(m.text))
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(server.url + "#attribution")
            expect(page.locator("#attr-overlay")).to_have_attribute("data-method", list(METHODS)[0])
        first, other = "integrated-gradients", "grad-x-input"
        model = app.state.cache._model
        model.acquire()  # the model is busy elsewhere: both requests wait, and share one computation
        try:
            for page in (page_a, page_b):
                page.select_option("#method-select", first)
                expect(page.locator("#attribution .progress .status")).to_have_attribute("data-state", "queued")
            assert app.state.jobs.stats()["pending"] == 1  # one computation for both pages
            page_a.select_option("#method-select", other)
            page_b.evaluate("""() => { const s = document.querySelector('#method-select');
                s.dispatchEvent(new Event('change')); s.dispatchEvent(new Event('change')); }""")
        finally:
            model.release()
        expect(page_b.locator("#attr-overlay")).to_have_attribute("data-method", first, timeout=60_000)
        expect(page_a.locator("#attr-overlay")).to_have_attribute("data-method", other, timeout=60_000)
        for page in (page_a, page_b):
            expect(page.locator("#attribution .progress")).to_be_empty()
            expect(page.locator("#badge-verdict")).not_to_be_empty()
            assert loaded(page, "#attr-overlay")
    finally:
        for c in contexts:
            c.close()
        server.stop()
    assert not problems, problems
