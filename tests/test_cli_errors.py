"""Every promised CLI error is one `error:` line and exit code 2, never a traceback (issue 16, item 7).

Most cases run in-process with typer's CliRunner; two run the installed entry point in a
subprocess, where stdout and stderr are really separate streams.
"""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import seethrough as see
from seethrough.cli import app

runner = CliRunner()
CHEAP = ["--method", "saliency"]


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.head = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3))

    def forward(self, x):
        return self.head(self.conv(x))


class _Tuple(_Net):
    def forward(self, x):
        return super().forward(x), x


class _Dict(_Net):
    def forward(self, x):
        return {"logits": super().forward(x)}


class _Gray(_Net):  # a 1-channel model: the CLI feeds it RGB images
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3)


def net() -> torch.nn.Module:
    return _Net()


def tuple_model() -> torch.nn.Module:
    return _Tuple()


def dict_model() -> torch.nn.Module:
    return _Dict()


def gray_model() -> torch.nn.Module:
    return _Gray()


def half_model() -> torch.nn.Module:
    return _Net().half()


def double_model() -> torch.nn.Module:
    return _Net().double()


def channels_last_model() -> torch.nn.Module:
    return _Net().to(memory_format=torch.channels_last)


@pytest.fixture(scope="module")
def img(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "cat.png"
    see.zoo.image("chelsea").save(path)
    return path


def one_line(res, *fragments: str) -> str:
    """The run exited 2 with exactly one non-empty output line, ``error: …``, containing ``fragments``."""
    out = res.output
    assert res.exit_code == 2, (res.exit_code, out, res.exception)
    assert "Traceback" not in out
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), out
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


def test_every_command_goes_through_the_one_error_path():
    for info in app.registered_commands:
        assert getattr(info.callback, "__seethrough_friendly__", False), info.callback
    assert len(app.registered_commands) >= 20


def test_out_paths_that_are_files(tmp_path, img):
    afile = tmp_path / "afile"
    afile.write_text("x")
    one_line(runner.invoke(app, ["report", "--out", str(afile), "-s", "model-card", "--quick"]), "is a file", "folder")
    one_line(runner.invoke(app, ["explain", str(img), "-m", "lenet-digits", *CHEAP, "--out", str(afile / "sub")]),
             "a part of that path is a file", str(afile / "sub"))
    one_line(runner.invoke(app, ["attack", str(img), "-m", "lenet-digits", "--method", "fgsm", "--out", str(afile)]),
             "a file of that name is in the way")
    assert afile.read_text() == "x"  # never overwritten


@pytest.mark.parametrize("args", [
    ["explain", "{img}", "-m", "lenet-digits", *CHEAP],
    ["sanity", "{img}", "-m", "lenet-digits", "--method", "saliency"],
    ["attack", "{img}", "-m", "lenet-digits", "--method", "fgsm"],
    ["faithfulness", "{img}", "-m", "lenet-digits", "--method", "saliency"],
])
def test_huge_target_is_named(args, img):
    args = [a.format(img=img) for a in args]
    one_line(runner.invoke(app, [*args, "--target", "99999999999999999999"]),
             "--target 99999999999999999999 is too large")
    # within int64 but not a class: the library's range check
    one_line(runner.invoke(app, [*args, "--target", str(2**62)]), "out of range", "10 classes")


def test_other_int_options_too(img):
    one_line(runner.invoke(app, ["predict", str(img), "-m", "lenet-digits", "--top", str(10**30)]), "--top")
    one_line(runner.invoke(app, ["filters", "-m", "lenet-digits", "-l", "conv1", f"--filters={-10**30}"]), "--filters")


@pytest.mark.parametrize("factory, shown", [("tuple_model", "returns a tuple of 2"), ("dict_model", "returns a dict with keys ['logits']")])
@pytest.mark.parametrize("command", [["predict"], ["explain", *CHEAP], ["sanity", "--method", "saliency"],
                                     ["activations", "-l", "conv"], ["attack", "--method", "fgsm"]])
def test_model_returning_a_tuple_or_dict(factory, shown, command, img, tmp_path):
    args = [command[0], str(img), *command[1:], "-m", f"tests.test_cli_errors:{factory}"]
    if command[0] != "predict":
        args += ["--out", str(tmp_path / "o")]
    one_line(runner.invoke(app, args), shown, "forward returns the (N, classes) score tensor")
    # a command that never runs the model still works on it
    res = runner.invoke(app, ["layers", "-m", f"tests.test_cli_errors:{factory}"])
    assert res.exit_code == 0 and "conv" in res.output.split()


def test_model_that_fails_on_the_cli_input(img):
    one_line(runner.invoke(app, ["predict", str(img), "-m", "tests.test_cli_errors:gray_model"]),
             "fails on a (1, 3, 224, 224) float32 image", "RuntimeError")


def _ts(tmp_path: Path) -> Path:
    path = tmp_path / "net.ts"
    torch.jit.script(_Net()).save(str(path))
    return path


def _rewrite_member(src: Path, dst: Path, suffix: str, edit) -> Path:
    """Copy a zip, passing the member ending in ``suffix`` through ``edit`` (with a valid CRC)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            zout.writestr(item, edit(data) if item.filename.endswith(suffix) else data)
    return dst


def test_corrupt_torchscript_with_and_without_unsafe_pickle(tmp_path, img):
    ts = _ts(tmp_path)
    data = bytearray(ts.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 16):
        data[i] ^= 0x5A
    bad = tmp_path / "bad.ts"
    bad.write_bytes(bytes(data))
    for extra in ([], ["--unsafe-pickle"]):
        one_line(runner.invoke(app, ["predict", str(img), "-m", str(bad), *extra]), "bad.ts")
    # an archive whose CRCs are fine but whose code is garbage: TorchScript itself refuses it
    code = _rewrite_member(ts, tmp_path / "badcode.ts", "tests/test_cli_errors.py",
                           lambda b: b"def forward(self, x):\n  return !!\n")
    for extra in ([], ["--unsafe-pickle"]):
        one_line(runner.invoke(app, ["predict", str(img), "-m", str(code), *extra]),
                 "badcode.ts is a TorchScript archive that cannot be loaded")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(ts.read_bytes()[: len(data) // 2])
    one_line(runner.invoke(app, ["predict", str(img), "-m", str(truncated), "--unsafe-pickle"]), "truncated.pt")


def test_corrupt_data_pkl_is_not_sent_to_unsafe_pickle(tmp_path, img):
    sd = tmp_path / "sd.pt"
    torch.save(_Net().state_dict(), sd)
    bad = _rewrite_member(sd, tmp_path / "bad.pt", "data.pkl", lambda b: b[:10] + b"\x00garbage\xff" + b[20:])
    line = one_line(runner.invoke(app, ["predict", str(img), "-m", str(bad)]), "bad.pt", "corrupt")
    assert "--unsafe-pickle" not in line  # unpickling garbage with code execution on would not help
    one_line(runner.invoke(app, ["predict", str(img), "-m", str(bad), "--unsafe-pickle"]), "bad.pt", "corrupt")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"hello world")
    for extra in ([], ["--unsafe-pickle"]):
        one_line(runner.invoke(app, ["predict", str(img), "-m", str(junk), *extra]), "junk.pth", "corrupt")


def test_pickled_model_that_cannot_be_unpickled(tmp_path, img):
    full = tmp_path / "full.pt"
    torch.save(_Net(), full)
    line = one_line(runner.invoke(app, ["predict", str(img), "-m", str(full)]), "--unsafe-pickle", "tests.test_cli_errors._Net")
    assert "arbitrary code" in line
    ok = runner.invoke(app, ["predict", str(img), "-m", str(full), "--unsafe-pickle"])
    assert ok.exit_code == 0, ok.output
    # the pickle names a module that does not exist (same length, so the pickle stays well formed)
    gone = _rewrite_member(full, tmp_path / "gone.pt", "data.pkl",
                           lambda b: b.replace(b"tests.test_cli_errors", b"tests.test_cli_errorz"))
    one_line(runner.invoke(app, ["predict", str(img), "-m", str(gone)]), "--unsafe-pickle")
    one_line(runner.invoke(app, ["predict", str(img), "-m", str(gone), "--unsafe-pickle"]),
             "cannot be unpickled even with --unsafe-pickle", "ModuleNotFoundError", "tests.test_cli_errorz")


def test_model_paths_that_are_not_files(tmp_path, img):
    one_line(runner.invoke(app, ["predict", str(img), "-m", str(tmp_path)]), "is a folder")
    one_line(runner.invoke(app, ["predict", str(img), "-m", str(tmp_path / "none.pt")]), "no such model file")
    one_line(runner.invoke(app, ["predict", str(tmp_path), "-m", "lenet-digits"]), "is a directory")


def test_cache_pointing_at_a_file(tmp_path, img, monkeypatch):
    afile = tmp_path / "cache-file"
    afile.write_text("x")
    monkeypatch.setenv("SEETHROUGH_CACHE", str(afile))
    import seethrough.zoo.lenet as dg

    monkeypatch.setattr(dg, "train_lenet", lambda **kw: pytest.fail("must fail before training"))
    one_line(runner.invoke(app, ["predict", str(img), "-m", "lenet-digits"]), f"SEETHROUGH_CACHE={afile} is a file")
    one_line(runner.invoke(app, ["tcav", "--samples", "10", "--random-sets", "2"]), "SEETHROUGH_CACHE")


@pytest.mark.parametrize("factory, dtype", [("half_model", "float16"), ("double_model", "float64"),
                                            ("channels_last_model", None)])
def test_other_dtypes_and_channels_last_models_run_in_float32(factory, dtype, img):
    """The CLI feeds float32, channels-first images: other float weights are converted (one warning
    line), a channels-last model just runs; the probabilities are those of the float32 model."""
    res = runner.invoke(app, ["predict", str(img), "-m", f"tests.test_cli_errors:{factory}", "--top", "3"])
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output
    warnings = [ln for ln in res.output.splitlines() if ln.startswith("warning:")]
    assert warnings == ([f"warning: tests.test_cli_errors:{factory} has {dtype} weights; the command line runs it in "
                         "float32"] if dtype else [])
    reference = getattr(sys.modules[__name__], factory)().float()
    x = see.zoo.Preprocess(resize=256, crop=224)(img)
    (preds,) = see.predict(reference, x, k=3)
    for p in preds:
        assert f"{p.probability:.2%}" in res.output


@pytest.mark.parametrize("exc", [ValueError("bad value\nsecond line"), TypeError("bad type"), OverflowError("too big"),
                                 PermissionError(13, "Permission denied", "/root/secret.png"),
                                 KeyError("unknown layer 'x'; closest: conv")])
def test_library_errors_become_one_line(exc, img, monkeypatch):
    def boom(*args, **kwargs):
        raise exc

    monkeypatch.setattr(sys.modules["seethrough.predict"], "predict", boom)
    line = one_line(runner.invoke(app, ["predict", str(img), "-m", "lenet-digits"]))
    assert line == "error: " + {ValueError: "bad value", TypeError: "bad type", OverflowError: "too big",
                                PermissionError: "permission denied: '/root/secret.png'",
                                KeyError: "unknown layer 'x'; closest: conv"}[type(exc)]


@pytest.mark.parametrize("exc", [RuntimeError("a bug"), AttributeError("a bug"), KeyError("fc9"), ZeroDivisionError()])
def test_genuine_bugs_are_not_swallowed(exc, img, monkeypatch):
    def boom(*args, **kwargs):
        raise exc

    monkeypatch.setattr(sys.modules["seethrough.predict"], "predict", boom)
    res = runner.invoke(app, ["predict", str(img), "-m", "lenet-digits"])
    assert res.exit_code == 1 and res.exception is exc and "error:" not in res.output


def test_traceback_on_request(img, monkeypatch):
    monkeypatch.setenv("SEETHROUGH_TRACEBACK", "1")
    res = runner.invoke(app, ["predict", str(img), "-m", "resnet"])
    assert res.exit_code == 2 and "Traceback" in res.output and res.output.rstrip().splitlines()[-1].startswith("error:")


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    entry = Path(sys.executable).with_name("seethrough")
    cmd = [str(entry)] if entry.exists() else [sys.executable, "-c", "from seethrough.cli import main; main()"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


@pytest.mark.slow  # fresh interpreters importing torch
def test_in_a_real_process(tmp_path, img):
    afile = tmp_path / "afile"
    afile.write_text("x")
    ts = _ts(tmp_path)
    bad = tmp_path / "bad.ts"
    bad.write_bytes(ts.read_bytes()[:-40] + bytes(40))  # the zip directory is gone
    for args, env in ([["report", "--out", str(afile), "--quick", "-s", "model-card"], None],
                      [["predict", str(img), "-m", str(bad), "--unsafe-pickle"], None]):
        proc = _cli(*args, env=env)
        assert proc.returncode == 2, proc
        assert proc.stdout == "" and "Traceback" not in proc.stderr, proc
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
