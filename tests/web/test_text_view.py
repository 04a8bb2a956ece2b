"""The explorer's text view (minilm-l6-topics, and minilm-l6 with a pair): the API returns explain_text's own
numbers, the attention grid's pictures for a layer and head, the probe curves as a job, and one clear 4xx line
for bad input; the model is left as found; an image session is unchanged and refuses the text views."""
from __future__ import annotations

import base64
import re
import time

import pytest
import torch
from playwright.sync_api import expect

import seethrough as see
from seethrough import render
from seethrough.testing import untouched
from seethrough.text import attention_maps
from seethrough.text.explain import explain_text
from seethrough.web.app import create_app
from seethrough.web.server import start
from seethrough.web.session import from_zoo
from seethrough.web.textviews import methods
from seethrough.web.views import png
from seethrough.zoo.text import similarity as text_similarity

from .conftest import local, snapshot

SENTENCE = "The striker scored a late goal."
PAIR = "A footballer kicked the ball into the net."


@pytest.fixture(scope="module")
def topics():
    s = from_zoo("minilm-l6-topics")
    return s, local(create_app(s))


@pytest.fixture(scope="module")
def similarity():
    s = from_zoo("minilm-l6")
    return s, local(create_app(s))


def _png(data_url: str) -> bytes:
    assert data_url.startswith("data:image/png;base64,")
    return base64.b64decode(data_url.split(",", 1)[1])


def test_info_offers_attention_and_every_token_method_of_the_registry(topics, lenet_session):
    s, client = topics
    text = client.get("/api/info").json()["text"]
    assert text["task"] == "topics" and text["labels"] == ["sports", "food", "weather", "technology"]
    token_methods = [m for m, spec in see.attribution.METHODS.items() if "tokens" in spec.kinds]
    assert text["methods"] == ["rollout", "flow", *token_methods] == methods() and text["max_tokens"] == 512
    assert "integrated-gradients" in text["methods"] and "guided-gradcam" not in text["methods"]
    assert local(create_app(lenet_session)).get("/api/info").json()["text"] is None  # an image model: no text view


@pytest.mark.parametrize("method", ["rollout", "flow", "integrated-gradients", "occlusion"])
def test_tokens_and_scores_are_explain_texts_own_numbers(topics, method):
    s, client = topics
    with untouched(s.model):
        r = client.get("/api/text_tokens", params={"text": SENTENCE, "method": method})
        assert r.status_code == 200, r.text
        got = r.json()
        e = explain_text(s.model, s.preprocess(SENTENCE), method)
    assert got["tokens"] == e.tokens and got["words"] == e.words == ["the", "striker", "scored", "a", "late", "goal", "."]
    # the same computation: the same numbers (float32 gradients summed in another thread may differ in the last bits)
    torch.testing.assert_close(torch.tensor(got["scores"], dtype=torch.float64), e.scores, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(torch.tensor(got["word_scores"], dtype=torch.float64), e.word_scores, rtol=1e-5, atol=1e-7)
    assert len(got["scores"]) == 9 and len(got["word_scores"]) == 7
    assert got["target"] == e.target == 0 and got["explains"] == "topic 0 · sports"
    assert got["words_html"].count("<span") == 7 and got["tokens_html"].count("<span") == 9


def test_an_explicit_target_explains_that_topic(topics):
    s, client = topics
    got = client.get("/api/text_tokens", params={"text": SENTENCE, "method": "grad-x-input", "target": 2}).json()
    e = explain_text(s.model, s.preprocess(SENTENCE), "grad-x-input", 2)
    assert got["target"] == 2 and got["explains"] == "topic 2 · weather"
    torch.testing.assert_close(torch.tensor(got["word_scores"], dtype=torch.float64), e.word_scores, rtol=1e-5, atol=1e-7)


def test_a_pair_explains_minilm_similarity(similarity):
    s, client = similarity
    with untouched(s.model):
        got = client.get("/api/text_tokens", params={"text": SENTENCE, "pair": PAIR, "method": "occlusion"}).json()
        e = explain_text(text_similarity(PAIR, s.model), s.preprocess(SENTENCE), "occlusion")
    assert got["explains"] == f"the cosine similarity with {PAIR!r}" and got["target"] == e.target == 0  # its one column
    torch.testing.assert_close(torch.tensor(got["word_scores"], dtype=torch.float64), e.word_scores, rtol=1e-5, atol=1e-7)
    other = client.get("/api/text_tokens", params={"text": SENTENCE, "pair": "The soup was too salty.",
                                                   "method": "occlusion"}).json()
    assert other["word_scores"] != got["word_scores"]  # the pair is part of the question, and of the cache key
    for params, why in [({"text": SENTENCE, "method": "occlusion"}, "give a pair sentence"),
                        ({"text": SENTENCE, "pair": " ", "method": "occlusion"}, "give a pair sentence"),
                        ({"text": SENTENCE, "pair": PAIR, "method": "occlusion", "target": 1}, "give no target")]:
        r = client.get("/api/text_tokens", params=params)
        assert r.status_code == 400 and why in r.json()["detail"]


def test_attention_grid_returns_the_head_view_of_a_layer_and_head(topics):
    s, client = topics
    t = s.preprocess(SENTENCE)
    with untouched(s.model):
        r = client.get("/api/text_attention", params={"text": SENTENCE, "layer": 2, "head": 3}).json()
        mean = client.get("/api/text_attention", params={"text": SENTENCE, "layer": 2}).json()
        att = attention_maps(s.model, t)[0]
    assert (r["layers"], r["heads"], r["layer"], r["head"], mean["head"]) == (6, 12, 2, 3, -1)
    assert r["tokens"] == t.tokens[0] and _png(r["image"])[:8] == b"\x89PNG\r\n\x1a\n"
    # the same picture as drawing the library's head view directly; the layer's mean is another picture
    assert _png(r["image"]) == png(render.figure_to_image(render.head_view(att, t.tokens[0], 2, 3))) != _png(mean["image"])


@pytest.mark.slow  # two 6 × 12 matplotlib grids: about 10 s on a busy core
def test_model_view_is_the_librarys_grid_of_every_layer_and_head(topics):
    s, client = topics
    t = s.preprocess(SENTENCE)
    with untouched(s.model):
        grid = client.get("/api/text_model_view", params={"text": SENTENCE}).json()
        att = attention_maps(s.model, t)[0]
    assert (grid["layers"], grid["heads"], grid["tokens"]) == (6, 12, t.tokens[0])
    assert _png(grid["image"]) == png(render.figure_to_image(render.model_view(att, t.tokens[0])))


@pytest.mark.parametrize("path, params, status, why", [
    ("text_tokens", {"text": "", "method": "rollout"}, 400, "needs the parameter 'text'"),
    ("text_tokens", {"text": "   ", "method": "rollout"}, 400, "text is empty"),
    # 600 words are 602 tokens: refused, not truncated (the library's choice, tokens.encode)
    ("text_tokens", {"text": "a " * 600, "method": "rollout"}, 400, "602 tokens but the model reads at most 512"),
    ("text_attention", {"text": "a " * 600}, 400, "refused, not truncated"),
    ("text_tokens", {"text": SENTENCE, "method": "nope"}, 400, "unknown method 'nope' for token inputs"),
    ("text_tokens", {"text": SENTENCE, "method": "guided-gradcam"}, 400, "unknown method 'guided-gradcam' for token inputs"),
    ("text_tokens", {"text": SENTENCE, "method": "gradcam"}, 400, "needs layer="),  # a token method that raises
    ("text_tokens", {"text": SENTENCE, "method": "rollout", "target": 9}, 400, "target must be a class from 0 to 3"),
    ("text_tokens", {"text": SENTENCE, "method": "rollout", "pair": PAIR}, 400, "drop the pair"),
    ("text_attention", {"text": SENTENCE, "layer": 6}, 400, "layer must be from 0 to 5"),
    ("text_attention", {"text": SENTENCE, "head": 12}, 400, "head from 0 to 11"),
    ("text_tokens", {"text": "x" * 9000, "method": "rollout"}, 400, "at most 8192 are allowed"),
])
def test_bad_text_input_is_one_line_4xx_and_the_model_is_untouched(topics, path, params, status, why):
    s, client = topics
    with untouched(s.model):
        r = client.get(f"/api/{path}", params=params)
    detail = r.json()["detail"]
    assert r.status_code == status and why in detail and "\n" not in detail and "Traceback" not in detail


@pytest.mark.parametrize("path, params", [("text_tokens", {"text": SENTENCE, "method": "rollout"}),
                                          ("text_attention", {"text": SENTENCE}), ("text_probe", {})])
def test_text_views_on_an_image_session_are_one_line_400(lenet_session, path, params):
    client = local(create_app(lenet_session))
    with untouched(lenet_session.model):
        r = client.get(f"/api/{path}", params=params)
    assert r.status_code == 400 and r.json()["detail"].startswith("lenet-digits is an image model: the text view needs")
    assert client.get("/api/predictions", params={"input": "digit-3"}).json()["top"][0]["label"] == "3"


@pytest.mark.slow
def test_probe_curves_run_once_as_a_job_and_equal_the_library_probe(topics):
    s, client = topics
    with untouched(s.model):
        job = client.post("/api/jobs/text_probe").json()
        while job["state"] in ("queued", "running"):
            time.sleep(0.2)
            job = client.get(f"/api/jobs/{job['id']}").json()
        assert job["state"] == "done", job
        got = client.get("/api/text_probe").json()
        direct = see.text.probe(s.model, n_samples=300)
    assert got["n"] == 300 and got["tasks"] == list(see.text.TASKS)
    assert got["accuracy"] == {k: v.tolist() for k, v in direct.accuracy.items()}
    assert got["control"] == {k: v.tolist() for k, v in direct.control.items()}
    assert _png(got["image"])[:4] == b"\x89PNG"
    assert client.get("/api/stats").json()["computations"]["text_probe"] == 1  # once per session, then the cache


@pytest.fixture(scope="module")
def topics_url(topics):
    server = start(create_app(topics[0]))  # outlives the page's last requests (the watched fixture checks them)
    yield server.url
    server.stop()


@pytest.mark.browser
def test_browser_types_a_sentence_and_sees_coloured_words(watched, topics, topics_url):
    s = topics[0]
    # computed before the page asks for anything: the server's computations share this model (one at a time)
    e = explain_text(s.model, s.preprocess("The chef baked fresh bread."), "integrated-gradients")
    page = watched
    page.goto(topics_url)
    expect(page.locator("#text")).to_be_visible()
    expect(page.locator("nav a[href='#input']")).to_be_hidden()  # a text model has the text view only
    page.fill("#text-input", "The chef baked fresh bread.")
    page.select_option("#text-method", "integrated-gradients")
    page.click("#text-run")
    expect(page.locator("#text-caption")).to_contain_text("integrated-gradients: each word's score for topic 1 · food")
    words = page.locator("#text-words span")
    assert e.words == ["the", "chef", "baked", "fresh", "bread", "."]
    expect(words).to_have_count(6)
    assert words.all_inner_texts() == e.words
    shown = [float(t) for t in words.evaluate_all("els => els.map(e => e.title)")]
    assert shown == pytest.approx(e.word_scores.tolist(), rel=1e-3)  # the hover value, printed to 4 digits
    assert all("rgba(" in st for st in words.evaluate_all("els => els.map(e => e.getAttribute('style'))"))
    expect(page.locator("#att-head-view")).to_have_attribute("src", re.compile("^data:image/png"))
    expect(page.locator("#att-model-view")).to_have_attribute("src", re.compile("^data:image/png"), timeout=60_000)
    snapshot(page, "7-text")


def test_explore_refuses_images_or_a_scan_for_a_text_model_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from seethrough.cli import app

    for extra in (["--images", str(tmp_path)], ["--scan", str(tmp_path)]):
        r = CliRunner().invoke(app, ["explore", "--model", "minilm-l6-topics", "--no-browser", *extra])
        line = r.output.strip()
        assert r.exit_code == 2 and "\n" not in line, r.output
        assert line == ("error: minilm-l6-topics is a text model: its explorer reads sentences typed in the page; "
                        "--images and --scan are for image models")


@pytest.mark.slow  # a subprocess that loads MiniLM
def test_explore_serves_the_text_view_of_minilm_l6_from_the_command_line():
    import json
    import urllib.parse
    import urllib.request

    from .test_cli_explore import _serve

    proc, out = _serve("--model", "minilm-l6", "--port", "0", "--threads", "1")
    try:
        port = re.search(r"http://\S+", out).group(0).rsplit(":", 1)[1].strip("/")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/info", timeout=30) as r:
            info = json.load(r)
        assert info["model"] == "minilm-l6" and info["text"]["task"] == "similarity" and info["inputs"] == []
        q = urllib.parse.urlencode({"text": SENTENCE, "pair": PAIR, "method": "rollout"})
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/text_tokens?{q}", timeout=60) as r:
            got = json.load(r)
        assert got["words"] == ["the", "striker", "scored", "a", "late", "goal", "."]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
