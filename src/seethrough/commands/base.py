"""What every CLI command shares: the ``app``, the model options, :func:`load` and the one error
path :func:`friendly` (see :mod:`seethrough.cli`).

It lives here, below both ``seethrough.cli`` and the family modules in ``seethrough.commands``,
so that the families import it and ``cli`` imports the families - one direction; when it sat in
``cli`` the two imported each other (issue 19). ``seethrough.cli`` re-exports every name.
"""
from __future__ import annotations

import functools
import os
import re
import traceback
import warnings
from typing import Any, Optional

import typer

app = typer.Typer(
    help="seethrough: open the black box of trained PyTorch networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ModelOpt = typer.Option("efficientnet-lite0", "--model", "-m",
                        help="zoo name, package.module:factory, TorchScript file, or state dict (with --arch)")
ArchOpt = typer.Option(None, "--arch", help="package.module:factory building the architecture of a state dict")
UnsafeOpt = typer.Option(False, "--unsafe-pickle", help="allow unpickling a full model file (runs code from the file)")
ShaOpt = typer.Option(None, "--sha256", help="expected SHA-256 of the --model file (64 hex digits); a file that differs is refused")

_INT64 = 2**63
_EXPECTED = (ValueError, TypeError, OverflowError, OSError)


def _option_name(fn, key: str) -> str:
    """The command-line spelling of parameter ``key`` of command ``fn`` (``n_filters`` → ``--filters``)."""
    import inspect

    param = inspect.signature(fn).parameters.get(key)
    decls = [d for d in getattr(getattr(param, "default", None), "param_decls", None) or () if d.startswith("--")]
    return max(decls, key=len) if decls else "--" + key.replace("_", "-")


def _check_ints(fn, kwargs: dict[str, Any]) -> None:
    """Integer options beyond int64 are refused by name, before torch raises a bare OverflowError."""
    for key, value in kwargs.items():
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, int) and not isinstance(v, bool) and not -_INT64 <= v < _INT64:
                raise ValueError(f"{_option_name(fn, key)} {v} is too {'large' if v > 0 else 'small'}: give a whole "
                                 f"number from {-_INT64} to {_INT64 - 1}")


def _os_message(e: OSError) -> str:
    name = e.filename if e.filename2 is None else f"{e.filename} → {e.filename2}"
    if name is None:
        return str(e)
    if isinstance(e, NotADirectoryError):
        return f"cannot use {str(name)!r}: a part of that path is a file, not a folder"
    if isinstance(e, FileExistsError):
        return f"cannot create the folder {str(name)!r}: a file of that name is in the way"
    if isinstance(e, IsADirectoryError):
        return f"{str(name)!r} is a folder; a file is needed here"
    if isinstance(e, PermissionError):
        return f"permission denied: {str(name)!r}"
    if isinstance(e, FileNotFoundError):
        return f"no such file or folder: {str(name)!r}"
    return f"{e.strerror or type(e).__name__}: {str(name)!r}"


def error_line(e: BaseException) -> str:
    """The one line shown for an expected error (ANSI colours and later lines dropped).

    >>> error_line(NotADirectoryError(20, "Not a directory", "out.png/sub"))
    "cannot use 'out.png/sub': a part of that path is a file, not a folder"
    """
    if isinstance(e, OSError) and e.filename is not None:
        text = _os_message(e)
    elif isinstance(e, KeyError) and e.args:
        text = str(e.args[0])
    else:
        text = str(e) or type(e).__name__
    text = re.sub(r"\x1b\[[0-9;]*m", "", text).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    typer.echo(f"warning: {error_line(message if isinstance(message, Warning) else Warning(message))}", err=True)


def friendly(fn):
    """Bad input → one line on stderr and exit code 2, never a traceback (see the module docstring).

    ``KeyError`` counts as expected only when it carries a sentence (our lookups say what was
    wrong); a bare missing key is a bug and keeps its traceback. Warnings print as one line.

    >>> @friendly
    ... def cmd(n: int = 0):
    ...     raise ValueError("n must be positive")
    >>> try:
    ...     cmd()
    ... except typer.Exit as e:
    ...     e.exit_code
    2
    """
    if getattr(fn, "__seethrough_friendly__", False):
        return fn

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            for quiet in (DeprecationWarning, PendingDeprecationWarning):  # torch's notes to developers, not to users
                warnings.simplefilter("ignore", quiet)
            try:
                _check_ints(fn, kwargs)
                return fn(*args, **kwargs)
            except KeyboardInterrupt:
                typer.echo("error: interrupted", err=True)
                raise typer.Exit(130) from None
            except (*_EXPECTED, KeyError) as e:
                if isinstance(e, KeyError) and not (e.args and isinstance(e.args[0], str) and " " in e.args[0]):
                    raise
                if os.environ.get("SEETHROUGH_TRACEBACK"):
                    traceback.print_exc()
                typer.echo(f"error: {error_line(e)}", err=True)
                raise typer.Exit(2) from None

    wrapper.__seethrough_friendly__ = True
    return wrapper


def load(model: str, arch: Optional[str], unsafe_pickle: bool, sha256: Optional[str] = None, probe: bool = True):
    """Resolve --model/--arch/--unsafe-pickle/--sha256 into a LoadedModel (model, preprocess, labels, name).

    ``probe`` runs a user's model once on a blank input (commands that never call the model pass False).

    >>> load("lenet-digits", None, False).labels[:3]
    ['0', '1', '2']
    """
    from ..loading import load_model

    return load_model(model, arch=arch, unsafe_pickle=unsafe_pickle, sha256=sha256, probe=probe)
