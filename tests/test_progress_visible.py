"""Progress bars people see (issue 19, item 7): the rule of seethrough.progress.visible, the notebook
bar, the overrides, silence with progress=False / --quiet, and a real bar in a pseudo-terminal."""
from __future__ import annotations

import fcntl
import io
import os
import pty
import struct
import subprocess
import sys
import termios
import types
from pathlib import Path

import pytest
import torch
from tqdm.notebook import tqdm as notebook_tqdm
from tqdm.std import tqdm as text_tqdm

import seethrough as see
from seethrough import progress


class _Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.fixture
def clean(monkeypatch):
    """No forced setting, no SEETHROUGH_PROGRESS, no IPython: the rule from its defaults."""
    monkeypatch.delenv(progress.ENV, raising=False)
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    progress.force(None)
    yield monkeypatch
    progress.force(None)


def _fake_ipython(monkeypatch, config: dict) -> None:
    shell = types.SimpleNamespace(config=config)
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))


def test_a_terminal_draws_and_a_pipe_does_not(clean):
    assert progress.visible(True, _Stream(tty=True)) is True
    assert progress.visible(True, _Stream(tty=False)) is False
    assert progress.visible(False, _Stream(tty=True)) is False
    assert progress.visible(True, object()) is False  # no isatty at all: a log, not a person
    closed = io.StringIO()
    closed.close()
    assert progress.visible(True, closed) is False  # isatty on a closed stream raises ValueError


def test_a_jupyter_kernel_draws_the_notebook_widget(clean):
    _fake_ipython(clean, {"IPKernelApp": {"connection_file": "kernel-1.json"}})
    assert progress.in_notebook() is True
    assert progress.visible(True, _Stream(tty=False)) is True  # a kernel's stderr is no TTY
    assert progress.visible(False, _Stream(tty=False)) is False
    real = progress.importlib.util.find_spec
    clean.setattr(progress.importlib.util, "find_spec", lambda name, *a: object() if name == "ipywidgets" else real(name, *a))
    assert progress.bar_class() is notebook_tqdm
    clean.setattr(progress.importlib.util, "find_spec", lambda name, *a: None if name == "ipywidgets" else real(name, *a))
    assert progress.bar_class() is text_tqdm  # no ipywidgets: tqdm's text bar, which a notebook shows too


def test_a_terminal_ipython_or_none_is_no_kernel(clean):
    assert progress.in_notebook() is False and progress.bar_class() is text_tqdm
    _fake_ipython(clean, {"TerminalInteractiveShell": {}})
    assert progress.in_notebook() is False
    clean.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: None))  # imported, no shell
    assert progress.in_notebook() is False


@pytest.mark.parametrize("value, tty, drawn", [("1", False, True), ("on", False, True), ("TRUE", False, True),
                                               ("0", True, False), ("off", True, False), ("", True, True),
                                               ("", False, False), ("maybe", False, False)])
def test_the_environment_forces_it(clean, value, tty, drawn):
    clean.setenv(progress.ENV, value)
    assert progress.visible(True, _Stream(tty)) is drawn
    assert progress.visible(False, _Stream(tty)) is False  # progress=False always wins


def test_force_beats_the_environment_and_hands_back(clean):
    clean.setenv(progress.ENV, "1")
    progress.force(False)
    assert progress.visible(True, _Stream(tty=True)) is False
    progress.force(True)
    assert progress.visible(True, _Stream(tty=False)) is True
    progress.force(None)
    clean.setenv(progress.ENV, "0")
    assert progress.visible(True, _Stream(tty=True)) is False
    with pytest.raises(TypeError, match="True, False or None"):
        progress.force(1)


def _lenet_x():
    model, _ = see.zoo.load("lenet-digits")
    x, y = see.zoo.digits("test")
    return model, x[:1], y[:1]


def test_progress_false_prints_nothing_even_when_asked(clean, capsys):
    """SEETHROUGH_PROGRESS=1 draws the sanity and t-SNE bars on a captured (non-TTY) stderr;
    progress=False in the same calls prints not one character."""
    clean.setenv(progress.ENV, "1")
    model, x, y = _lenet_x()
    feats = torch.randn(40, 5, generator=torch.Generator().manual_seed(0))
    see.sanity.randomization(model, x, "saliency", y, progress=False)
    from seethrough.embed.project import project

    project(feats, "tsne", perplexity=5, pca=None, progress=False)
    assert capsys.readouterr().err == ""
    see.sanity.randomization(model, x, "saliency", y)
    project(feats, "tsne", perplexity=5, pca=None)
    err = capsys.readouterr().err
    # tqdm's counter "done/total [": 5 parameterised layers of lenet-digits; openTSNE's 250 + 500 iterations
    assert "randomising (cascading)" in err and "/5 [" in err and "t-SNE" in err and "/750 [" in err


def test_the_default_is_silent_off_a_terminal(clean, capsys):
    """No TTY, no kernel, no override (pytest's captured stderr, like a CI log): no bar."""
    model, x, y = _lenet_x()
    see.sanity.randomization(model, x, "saliency", y)
    assert capsys.readouterr().err == ""


def _digit_png(tmp_path: Path) -> Path:
    from PIL import Image

    x, _ = see.zoo.digits("test")
    path = tmp_path / "digit.png"
    Image.fromarray((x[0, 0] * 255).round().byte().numpy(), mode="L").save(path)
    return path


def test_cli_quiet_silences_even_a_forced_bar(clean, tmp_path):
    from typer.testing import CliRunner

    from seethrough.cli import app

    clean.setenv(progress.ENV, "1")
    args = ["sanity", str(_digit_png(tmp_path)), "-m", "lenet-digits", "--method", "saliency", "-o", str(tmp_path / "o")]
    loud = CliRunner().invoke(app, args)
    quiet = CliRunner().invoke(app, ["--quiet", *args])
    assert loud.exit_code == 0 and quiet.exit_code == 0, (loud.output, quiet.output)
    assert "randomising (cascading)" in loud.stderr and "sanity:" in loud.stderr
    assert quiet.stderr == ""
    again = CliRunner().invoke(app, args)  # --quiet does not stick to the next invocation
    assert "randomising" in again.stderr


def _run_in_pty(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run a command with stdin, stdout and stderr on a pseudo-terminal: what a person in a terminal sees."""
    master, slave = pty.openpty()
    # A fresh pty is 0 columns wide, and tqdm draws nothing in 0 columns: give it a terminal's 24 x 100.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=300), b"".join(chunks).decode("utf-8", "replace")


def _sanity_in_pty(tmp_path: Path, *before: str) -> str:
    exe = Path(sys.executable).with_name("seethrough")
    env = {k: v for k, v in os.environ.items() if k != progress.ENV}
    env.update(OMP_NUM_THREADS="1")
    args = ["sanity", str(_digit_png(tmp_path)), "-m", "lenet-digits", "--method", "saliency", "-o", str(tmp_path / "o")]
    rc, out = _run_in_pty([str(exe), *before, *args], env)
    assert rc == 0, out
    assert "saliency: " in out  # the command's own output, bar or not
    return out


def test_a_cli_command_in_a_terminal_draws_a_bar(tmp_path):
    """`seethrough sanity` in a pseudo-terminal, with no override: the bars are drawn (tqdm's
    "done/total [" counter; the final count may be erased with the bar)."""
    out = _sanity_in_pty(tmp_path)
    assert "randomising (cascading)" in out and "/5 [" in out, out  # lenet-digits: 5 parameterised layers
    assert "sanity: " in out and "/1 [" in out, out  # the outer bar over the methods


@pytest.mark.slow  # a second CLI process (about 9 s on 2 shared cores)
def test_quiet_in_a_terminal_draws_none(tmp_path):
    out = _sanity_in_pty(tmp_path, "--quiet")
    assert "randomising" not in out and "/5 [" not in out, out
