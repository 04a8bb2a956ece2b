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

from .options import (  # noqa: E402,F401 - the shared conventions, re-exported for the family modules
    SHAPE, Command, QuietOpt, TargetOpt, command_class, shape_options, conventions, feeds_model, flatten_layers, layer_option,
    no_input, one_layer, out_dir, out_option, renamed, seed_option, target_option, top_option,
)

MODEL_HELP = ("zoo name, module:factory (found from the current folder), path/to/file.py:factory, TorchScript file, "
              "or state dict (with --arch)")
ModelOpt = typer.Option("efficientnet-lite0", "--model", "-m", help=MODEL_HELP)


def model_option(default: Optional[str]) -> Any:
    """``-m/--model`` with another default (every command spells and explains it the same way)."""
    return typer.Option(default, "--model", "-m", help=MODEL_HELP)


ArchOpt = typer.Option(None, "--arch", help="module:factory or path/to/file.py:factory building the architecture of a state dict")
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
    The running command's ``--input-size/--channels/--mean/--std/--labels/--device`` (see
    :mod:`seethrough.commands.options`) are applied here, so no command body repeats them.

    >>> load("lenet-digits", None, False).labels[:3]
    ['0', '1', '2']
    """
    from ..loading import load_model

    return load_model(model, arch=arch, unsafe_pickle=unsafe_pickle, sha256=sha256, probe=probe, **shape_options())


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def image_folder(folder: Any, preprocess, option: str, labels: Optional[list[str]] = None):
    """The images under ``folder`` (recursive, sorted), preprocessed: ``(x, y or None, class names or None, files)``.

    Sub-folders are the classes: a sub-folder named by a number is that class index, one named by a
    ``--labels`` name is that name's index, others are numbered in sorted order (then ``y`` indexes
    the returned names, not the model's outputs). Images directly in ``folder`` give ``y = None``.
    Anything else (no folder, no images) is one ``ValueError`` naming ``option``.
    """
    from pathlib import Path

    import torch

    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{option} must be a folder of images (sub-folders = classes), got {str(folder)!r}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"{option}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found under {folder}")
    x = torch.cat([preprocess(p) for p in files])
    groups = [p.parent.relative_to(folder).as_posix() for p in files]
    if len(set(groups)) == 1:  # one folder of images: no classes
        return x, None, None, files
    names = sorted(set(groups))
    if all(g.isdigit() for g in names):
        return x, torch.tensor([int(g) for g in groups]), None, files
    if labels is not None and all(g in labels for g in names):
        return x, torch.tensor([labels.index(g) for g in groups]), None, files
    return x, torch.tensor([names.index(g) for g in groups]), names, files
