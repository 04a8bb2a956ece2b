"""The text commands: what they write, and one `error:` line with exit code 2 for every bad input."""
from __future__ import annotations

import csv

import pytest
from typer.testing import CliRunner

from seethrough.cli import app

runner = CliRunner()


def one_line(res, *fragments: str) -> str:
    out = res.output
    assert res.exit_code == 2, (res.exit_code, out, res.exception)
    assert "Traceback" not in out
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), out
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


@pytest.mark.parametrize("args, fragment", [
    (["attention", ""], "text is empty"),
    (["attention", "word " * 600], "has 602 tokens but the model reads at most 512"),
    (["attention", "hi", "-m", "lenet-digits"], "lenet-digits is not a text model"),
    (["explain-text", "hi", "-m", "efficientnet-lite0", "--method", "rollout"], "efficientnet-lite0 is not a text model"),
    (["explain-text", "hi", "-m", "minilm-l6", "--method", "rollout"], "give --pair"),
    (["explain-text", "hi", "--method", "nonsense"], "unknown method(s) nonsense"),
    (["explain-text", "   ", "--method", "rollout"], "text is empty"),
    (["attention", "the cat", "--layer", "9"], "--layer must be in 0..5"),
    (["bias", "--words", "nurse,hairdresser"], "'hairdresser' in the --words list is not one token"),
    (["bias", "--words", "nurse,\U0001f701"], "not in the vocabulary"),
    (["bias", "--direction", "up"], "--direction must be pca or difference"),
    (["probe", "--samples", "5"], "too few sentences"),
    (["probe", "--samples", "40", "--tasks", "syntax"], "unknown task(s) syntax"),
])
def test_bad_input_is_one_line(args, fragment):
    one_line(runner.invoke(app, args), fragment)


def test_attention_writes_the_views_and_a_self_contained_page(tmp_path):
    res = runner.invoke(app, ["attention", "The cat sat on the mat.", "--layer", "2", "--head", "3", "-o", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "6 layers × 12 heads over 9 tokens" in res.output
    for name in ("head-view.png", "model-view.png", "rollout.png", "flow.png", "attention.html"):
        assert (tmp_path / name).stat().st_size > 1000, name
    page = (tmp_path / "attention.html").read_text(encoding="utf-8")
    assert "<script src" not in page and "[CLS]" in page


def test_explain_text_with_attention_methods_and_a_pair(tmp_path):
    res = runner.invoke(app, ["explain-text", "A man plays the guitar.", "--pair", "Someone is playing music.",
                              "--method", "rollout,flow", "-o", str(tmp_path)])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(open(tmp_path / "words.csv", encoding="utf-8")))
    assert [r["word"] for r in rows if r["method"] == "rollout"] == ["a", "man", "plays", "the", "guitar", "."]
    assert (tmp_path / "rollout.png").exists() and "similarity to" in (tmp_path / "explain.html").read_text(encoding="utf-8")


@pytest.mark.slow
def test_probe_and_bias_write_their_figures(tmp_path):
    res = runner.invoke(app, ["probe", "--samples", "60", "--tasks", "tense,length", "-o", str(tmp_path / "p")])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(open(tmp_path / "p" / "probe.csv", encoding="utf-8")))
    assert len(rows) == 2 * 7 and {r["task"] for r in rows} == {"tense", "length"}
    res = runner.invoke(app, ["bias", "--words", "nurse,carpenter", "-o", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    assert "WEAT 6" in res.output and (tmp_path / "b" / "bias.png").stat().st_size > 1000


def test_an_image_command_given_a_text_model_is_one_line(tmp_path):
    from PIL import Image

    img = tmp_path / "x.png"
    Image.new("RGB", (40, 40), (9, 9, 9)).save(img)
    one_line(runner.invoke(app, ["predict", str(img), "-m", "minilm-l6-topics"]), "read sentences, not a",
             "image commands need an image model")
