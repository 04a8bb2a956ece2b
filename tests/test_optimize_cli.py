"""`seethrough visualize`, `dream`, `invert`: files written, objectives reported, one-line errors."""
from PIL import Image
from typer.testing import CliRunner

import seethrough as see
from seethrough.cli import app

runner = CliRunner()


def _photo(tmp_path):
    path = tmp_path / "coffee.png"
    see.zoo.image("coffee").resize((64, 48)).save(path)
    return path


def test_visualize_writes_a_gallery_and_reports_the_rise(tmp_path):
    out = tmp_path / "v"
    res = runner.invoke(app, ["visualize", "logit:3", "logit:8", "-m", "lenet-digits", "--param", "pixel",
                              "--no-transforms", "--steps", "25", "--tv", "0.1", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert Image.open(out / "visualize.png").size[0] > 100
    lines = [ln for ln in res.output.splitlines() if ln.startswith("logit:")]
    assert len(lines) == 2 and "model predicts 3" in lines[0] and "model predicts 8" in lines[1], res.output
    first, last = (float(v) for v in lines[0].split("objective ")[1].split(";")[0].split(" → "))
    assert last > first


def test_dream_and_invert_write_images(tmp_path):
    photo = _photo(tmp_path)
    res = runner.invoke(app, ["dream", str(photo), "-m", "tests.factories:tiny", "-l", "0", "--steps", "2",
                              "--octaves", "2", "-o", str(tmp_path / "d")])
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "d" / "dream.png").size == (224, 224)
    res = runner.invoke(app, ["invert", str(photo), "-m", "lenet-digits", "-l", "relu1", "-l", "fc3", "--steps", "20",
                              "-o", str(tmp_path / "i")])
    assert res.exit_code == 0, res.output
    assert "relu1: distance" in res.output and "SSIM" in res.output and (tmp_path / "i" / "invert.png").exists()


def test_bad_input_is_one_line_exit_2(tmp_path):
    for args, text in [(["visualize", "logit3", "-m", "lenet-digits"], "cannot parse objective"),
                       (["visualize", "channel:conv1:9", "-m", "lenet-digits", "--steps", "1"], "channel 9 is out of range"),
                       (["visualize", "neuron:fc1:1:0:0", "-m", "lenet-digits", "--steps", "1"], "no spatial extent"),
                       (["visualize", "logit:1", "-m", "lenet-digits", "--param", "fft"], "unknown parameterization"),
                       (["invert", str(_photo(tmp_path)), "-m", "lenet-digits", "-l", "conv7"], "unknown layer 'conv7'")]:
        res = runner.invoke(app, args)
        lines = [ln for ln in res.output.splitlines() if ln.strip()]
        assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:") and text in lines[0], (args, res.output)
