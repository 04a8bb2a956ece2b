"""Text pictures: word merging, coloured tokens, and the attention page drawn by Chromium with the network cut off."""
from __future__ import annotations

import re
import shutil

import pytest
import torch

from seethrough import render
from seethrough.text.tokens import _toy_tokenizer, encode, merge_words, word_spans


def test_pieces_merge_into_words_and_sums_stay_additive():
    t = encode(_toy_tokenizer(), ["the cat playing cards", "a dog"])
    assert t.tokens[0] == ["[CLS]", "the", "cat", "play", "##ing", "cards", "[SEP]"]
    assert word_spans(t.tokens[0], t.words[0]) == [("the", [1]), ("cat", [2]), ("playing", [3, 4]), ("cards", [5])]
    scores = torch.tensor([5.0, 1.0, 2.0, 0.25, 0.5, -1.0, 5.0])
    words, s = merge_words(scores, t.tokens[0], t.words[0])
    assert words == ["the", "cat", "playing", "cards"] and s.tolist() == [1.0, 2.0, 0.75, -1.0]
    assert merge_words(scores, t.tokens[0], t.words[0], how="mean")[1][2] == 0.375
    assert t.mask.tolist()[1] == [1, 1, 1, 1, 0, 0, 0] and t.lengths() == [7, 4]


def test_coloured_tokens_scale_by_the_largest_magnitude():
    page = render.tokens_html(["a", "<b>", "c"], torch.tensor([0.5, -1.0, 0.0]))
    alphas = [float(a) for a in re.findall(r"rgba\(\d+,\d+,\d+,([0-9.]+)\)", page)]
    assert alphas == [0.5, 1.0, 0.0]
    assert "&lt;b&gt;" in page and "<b>" not in page  # tokens are escaped
    img = render.tokens_image(["good", "bad"], [1.0, -1.0])
    px = img.load()
    # the first box is red (positive), the second blue (negative): sample inside each box, left of its text
    assert px[12, 16][0] > 200 and px[12, 16][2] < 120
    w = img.size[0]
    blues = [px[x, 16] for x in range(60, w) if px[x, 16][2] > 200 and px[x, 16][0] < 60]
    assert blues
    with pytest.raises(ValueError, match="2 scores for 3 tokens"):
        render.tokens_html(["a", "b", "c"], [1.0, 2.0])


def test_attention_views_check_their_shapes():
    with pytest.raises(ValueError, match="3 tokens for attention over 4 positions"):
        render.head_view(torch.full((1, 1, 4, 4), 0.25), ["a", "b", "c"])
    with pytest.raises(ValueError, match="layer must be in 0..0"):
        render.head_view(torch.full((1, 1, 2, 2), 0.5), ["a", "b"], layer=3)


@pytest.mark.browser
def test_attention_page_draws_offline_in_chromium(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no system Chromium: install it with `apt-get install -y chromium chromium-driver` (make test does)")
    from playwright.sync_api import sync_playwright

    att = torch.zeros(2, 3, 4, 4)
    att[..., 0] = 1.0  # every query attends to token 0 only
    att[1, 2] = torch.eye(4)  # except layer 1, head 2: to itself
    path = tmp_path / "att.html"
    path.write_text(render.attention_html(att, ["[CLS]", "a", "</script>", "[SEP]"]), encoding="utf-8")
    requests, errors = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--headless=new", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.on("request", lambda r: requests.append(r.url))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(path.as_uri())
        lines = page.eval_on_selector_all("#hv line", "ls => ls.map(l => [l.getAttribute('y1'), l.getAttribute('y2')])")
        maps = page.eval_on_selector_all(".grid svg", "s => s.length")
        page.select_option("#layer", "1")
        page.select_option("#head", "2")
        diag = page.eval_on_selector_all("#hv line", "ls => ls.map(l => [l.getAttribute('y1'), l.getAttribute('y2')])")
        browser.close()
    assert errors == []
    assert requests == [path.as_uri()]  # the page itself, nothing else
    assert maps == 6
    assert sorted(lines) == sorted([[str(20 + 20 * i), "20"] for i in range(4)])  # layer 0, head mean: all to token 0
    assert sorted(diag) == sorted([[str(20 + 20 * i), str(20 + 20 * i)] for i in range(4)])
