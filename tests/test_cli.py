"""The command line: tables, the report, and one-line errors with exit code 2."""
import torch
from PIL import Image
from typer.testing import CliRunner

import seethrough as see
from seethrough.cli import app

runner = CliRunner()


def _png(tmp_path, name="cat.png", img=None):
    path = tmp_path / name
    (img or see.zoo.image("chelsea")).save(path)
    return path


def test_help_lists_subcommands():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for cmd in ("predict", "report", "models", "images", "layers"):
        assert cmd in res.output


def test_predict_prints_a_table(tmp_path):
    res = runner.invoke(app, ["predict", str(_png(tmp_path)), "--top", "3"])
    assert res.exit_code == 0, res.output
    assert "Egyptian cat" in res.output and res.output.count("%") == 3


def test_predict_grayscale_and_rgba_files_are_accepted(tmp_path):
    for mode in ("L", "RGBA", "P"):
        path = _png(tmp_path, f"x_{mode}.png", see.zoo.image("coffee").convert(mode))
        res = runner.invoke(app, ["predict", str(path), "--top", "1"])
        assert res.exit_code == 0, res.output


def _assert_clean_error(res, text):
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and text in lines[0], res.output


def test_bad_input_is_one_line_exit_2(tmp_path):
    _assert_clean_error(runner.invoke(app, ["predict", str(tmp_path / "nope.png")]), "no such image file")
    bad = tmp_path / "bad.jpg"
    bad.write_text("hello")
    _assert_clean_error(runner.invoke(app, ["predict", str(bad)]), "cannot read")
    small = _png(tmp_path, "small.png", Image.new("RGB", (16, 16)))
    _assert_clean_error(runner.invoke(app, ["predict", str(small)]), "at least 32 px")
    _assert_clean_error(runner.invoke(app, ["predict", str(_png(tmp_path)), "-m", "resnet"]), "unknown model 'resnet'")
    _assert_clean_error(runner.invoke(app, ["layers", "-m", "efficientnet-lite"]), "did you mean 'efficientnet-lite0'")


def test_model_specs(tmp_path):
    img = str(_png(tmp_path))
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3))
    # a factory
    res = runner.invoke(app, ["predict", img, "-m", "tests.factories:tiny", "--top", "2"])
    assert res.exit_code == 0, res.output
    # TorchScript
    ts = tmp_path / "net.ts"
    torch.jit.script(net).save(str(ts))
    assert runner.invoke(app, ["predict", img, "-m", str(ts)]).exit_code == 0
    # a state dict needs --arch
    sd = tmp_path / "tiny.pt"
    from tests.factories import tiny

    torch.save(tiny().state_dict(), sd)
    _assert_clean_error(runner.invoke(app, ["predict", img, "-m", str(sd)]), "--arch")
    assert runner.invoke(app, ["predict", img, "-m", str(sd), "--arch", "tests.factories:tiny"]).exit_code == 0
    # a pickled model only with --unsafe-pickle
    pk = tmp_path / "full.pt"
    torch.save(tiny(), pk)
    _assert_clean_error(runner.invoke(app, ["predict", img, "-m", str(pk)]), "--unsafe-pickle")
    assert runner.invoke(app, ["predict", img, "-m", str(pk), "--unsafe-pickle"]).exit_code == 0


def test_report_writes_self_contained_html(tmp_path):
    out = tmp_path / "rep"
    # every section's quick build has its own test; here the CLI, the page and its images
    res = runner.invoke(app, ["report", "--out", str(out), "--quick", "-s", "model-card", "-s", "predictions", "-s", "adversarial"])
    assert res.exit_code == 0, res.output
    page = (out / "index.html").read_text()
    for title in ("Model cards", "Predictions on the bundled photos"):
        assert title in page
    assert "Egyptian cat" in page and "seconds=" in page
    assert "http://" not in page and "https://" not in page  # nothing fetched at view time
    import re

    for src in re.findall(r"src='([^']+)'", page):
        assert (out / src).is_file(), src


def test_report_section_failure_is_shown_not_fatal(tmp_path):
    from seethrough.report import SECTIONS, section

    @section("broken", "Broken", order=500)
    def _broken(ctx):
        raise RuntimeError("boom")

    try:
        res = see.report.write_report(tmp_path, sections=["broken", "model-card"], quick=True, progress=False)
    finally:
        SECTIONS.pop("broken")
    assert res.failures == {"broken": "RuntimeError: boom"}
    page = res.path.read_text()
    assert "This section failed" in page and "Model cards" in page
