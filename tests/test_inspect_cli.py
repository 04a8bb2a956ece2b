"""The inspection sub-commands: files written, numbers printed, bad input → exit code 2."""
import numpy as np
from PIL import Image
from typer.testing import CliRunner

import seethrough as see
from seethrough.cli import app

runner = CliRunner()


def test_filters_writes_the_grid(tmp_path):
    r = runner.invoke(app, ["filters", "-m", "lenet-digits", "-l", "conv2", "--filters", "4", "--in-channels", "6", "-o", str(tmp_path)])
    assert r.exit_code == 0, r.output
    # The CLI draws the numbered figure (see tests/test_render_readable.py) of exactly these weights.
    model, _ = see.zoo.load("lenet-digits")
    w = see.filters(model, "conv2", filters=4, channels=6)
    title = "lenet-digits · conv2 · 4 filters × 6 input channels (5×5)"
    assert np.array_equal(np.asarray(Image.open(tmp_path / "filters.png").convert("RGB")), np.asarray(see.render.filter_figure(w, title=title)))
    assert see.render.filter_grid(w).size == ((6 * 6 + 1) * 8, (4 * 6 + 1) * 8)  # 6 channels × 4 filters of 5×5, 1-px gaps, ×8


def test_filters_of_a_relu_is_a_one_line_error():
    r = runner.invoke(app, ["filters", "-m", "lenet-digits", "-l", "relu1"])
    assert r.exit_code == 2 and "filters need a Conv1d/2d/3d or a Linear layer" in r.output


def test_stats_prints_the_same_numbers_as_the_api():
    r = runner.invoke(app, ["stats", "-m", "lenet-digits", "-l", "relu3"])
    assert r.exit_code == 0, r.output
    model, _ = see.zoo.load("lenet-digits")
    s = see.layer_stats(model, see.zoo.digits("all")[0], "relu3", progress=False)["relu3"]
    assert f"sparsity {s.sparsity:6.1%}" in r.output and f"dead {s.dead_fraction:6.1%}" in r.output


def test_topk_and_activations(tmp_path):
    r = runner.invoke(app, ["topk", "-m", "lenet-digits", "-l", "conv1", "--units", "2", "--top", "4", "-o", str(tmp_path / "t")])
    assert r.exit_code == 0, r.output
    model, _ = see.zoo.load("lenet-digits")
    res = see.topk(model, see.zoo.digits("all")[0], "conv1", k=4, progress=False)
    assert f"unit 1: inputs {res.indices[1].tolist()}" in r.output
    img = tmp_path / "digit.png"
    see.zoo.to_image(see.zoo.digits("test")[0][0]).save(img)
    r = runner.invoke(app, ["activations", str(img), "-m", "lenet-digits", "-l", "fc1", "-o", str(tmp_path / "a")])
    assert r.exit_code == 2 and "not channel maps" in r.output


def test_hyperplanes_writes_frames_and_gif(tmp_path):
    r = runner.invoke(app, ["hyperplanes", "--steps", "16", "-o", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [f"step-{s:05d}.png" for s in (1, 4, 7, 10, 16)]
    assert Image.open(tmp_path / "hyperplanes.gif").n_frames == 5
