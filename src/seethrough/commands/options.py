"""The command-line conventions every sub-command shares (issue 19): one spelling, one meaning.

- ``-l/--layer``: :func:`layer_option`; repeatable and comma-separated alike (``-l a,b -l c`` is
  ``[a, b, c]``, never a dropped value); a command that takes one layer refuses two (:func:`one_layer`).
- ``-o/--out``: :func:`out_option`; always a folder, the files a command writes are named in its help.
- ``-t/--target``, ``--seed``, ``--top`` (how many items to show): :func:`target_option`, :func:`seed_option`,
  :func:`top_option`; an old spelling (``--k``, ``--n``) still works for one release with a one-line warning.
- Added to every command by :func:`conventions` (so a new command gets them too): ``--quiet``, and on
  every command that feeds a model an input, ``--input-size``, ``--channels``, ``--mean``, ``--std``,
  ``--labels`` and ``--device``. Their values reach :func:`seethrough.commands.base.load` through a
  context variable set for the one call, so command bodies keep calling ``load(model, arch, ...)``.
- An image argument (a parameter named ``image``, or ``start`` for ``--from``) that is not a file but
  a bundled photo's name (``seethrough explain chelsea``) is that photo.

(The chosen method's own options, ``--steps 128``, are :mod:`seethrough.commands.entry_options`.)
"""
from __future__ import annotations

import contextvars
import functools
import inspect
from pathlib import Path
from typing import Any, Callable, Optional

import click
import typer
from typer.core import TyperCommand

#: the model-shape options of the command being run (set by :func:`conventions`, read by ``load``)
SHAPE: contextvars.ContextVar[dict] = contextvars.ContextVar("seethrough_shape", default={})
_USED: contextvars.ContextVar[list] = contextvars.ContextVar("seethrough_shape_used", default=[])


def shape_options() -> dict:
    """The running command's ``--input-size/--channels/--mean/--std/--labels/--device`` (those given), marked as used."""
    _USED.get().append(True)
    return dict(SHAPE.get())
SHAPE_NAMES = ("input_size", "channels", "mean", "std", "labels", "device")


def flatten_layers(values: Optional[list[str]]) -> Optional[list[str]]:
    """``-l a,b -l c`` → ``["a", "b", "c"]`` (the callback of every ``--layer``); blanks dropped, order kept.

    >>> flatten_layers(["fc1, fc3", "conv2"])
    ['fc1', 'fc3', 'conv2']
    >>> flatten_layers(None) is None
    True
    """
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    return [s.strip() for v in values for s in str(v).split(",") if s.strip()]


def layer_option(default: Any = ..., *, one: bool = False, help: str = "", old: Optional[str] = None) -> Any:
    """The shared ``-l/--layer`` option (annotate the parameter ``list[str]``); ``one=True`` for a
    command that takes a single layer (then call :func:`one_layer` on the value).

    >>> layer_option(["relu1"]).callback is flatten_layers
    True
    """
    text = help or ("layer name (see `seethrough layers`)" if one else
                    "layer names (see `seethrough layers`): repeat -l or separate by commas")
    info = typer.Option(default, "--layer", "-l", help=text, callback=flatten_layers)
    info.seethrough_layers = "one" if one else "many"
    info.seethrough_old = old  # a former spelling (embed's --layers), accepted for one release
    return info


def one_layer(values: Optional[list[str]], command: str = "this command") -> Optional[str]:
    """The single layer of a one-layer command; two or more are refused (never the last kept).

    >>> one_layer(["conv2"])
    'conv2'
    >>> one_layer(["conv1", "conv2"], "filters")
    Traceback (most recent call last):
    ...
    ValueError: filters takes one --layer, got 2 (conv1, conv2): run it once per layer
    """
    values = flatten_layers(values) or []
    if len(values) > 1:
        raise ValueError(f"{command} takes one --layer, got {len(values)} ({', '.join(values)}): run it once per layer")
    return values[0] if values else None


def out_option(default: Optional[str], writes: str) -> Any:
    """The shared ``-o/--out``: always a folder; ``writes`` names what the command puts in it
    (``default=None``: nothing is written unless ``-o`` is given).

    >>> out_option("filters", "filters.png").seethrough_folder
    True
    """
    info = typer.Option(Path(default) if default else None, "--out", "-o",
                        help=f"output folder (created if needed): {writes}")
    info.seethrough_folder = True
    return info


def out_dir(out: Path) -> Path:
    """Create the ``--out`` folder (a file in the way is one clear line, through ``friendly``) and return it."""
    out.mkdir(parents=True, exist_ok=True)
    return out


def seed_option(help: str = "random seed: the same seed gives the same result") -> Any:
    """The shared ``--seed`` (default 0)."""
    return typer.Option(0, "--seed", help=help)


def target_option(default: Optional[int] = None, help: str = "class to explain (default: the predicted class)") -> Any:
    """The shared ``-t/--target`` (a class index)."""
    return typer.Option(default, "--target", "-t", help=help)


def top_option(default: int, help: str, old: Optional[str] = None) -> Any:
    """``--top N``: how many items to show, on every command; ``old`` is a spelling kept for one release.

    >>> top_option(9, "examples per unit", old="--k").seethrough_old
    '--k'
    """
    info = typer.Option(default, "--top", help=help + (f" (formerly {old})" if old else ""))
    info.seethrough_old = old
    return info


def renamed(new: str, old: str, default: Any, help: str) -> Any:
    """An option renamed from ``old`` to ``new``; ``old`` still works for one release, with a warning."""
    info = typer.Option(default, new, help=f"{help} (formerly {old})")
    info.seethrough_old = old
    return info


TargetOpt = target_option()
QuietOpt = typer.Option(False, "--quiet", help="draw no progress bars (the same as `seethrough --quiet CMD`)")
InputSizeOpt = typer.Option(None, "--input-size", help="your model's input side in px (default 224; zoo models bring their own)")
ChannelsOpt = typer.Option(None, "--channels", help="your model's input channels: 1 (grayscale) or 3 (RGB, the default)")
MeanOpt = typer.Option(None, "--mean", help="per-channel mean your model expects, comma-separated (e.g. 0.485,0.456,0.406); "
                       "with --std, images stay in [0, 1] and the model is wrapped (its layers gain a 'model.' prefix)")
StdOpt = typer.Option(None, "--std", help="per-channel standard deviation, comma-separated (with --mean)")
LabelsOpt = typer.Option(None, "--labels", help="a text file of class names, one per line, in output order")
DeviceOpt = typer.Option(None, "--device", help="cpu, cuda, cuda:1, mps, ... (default: cpu)")

_INJECTED = {
    "quiet": (bool, QuietOpt),
    "input_size": (Optional[int], InputSizeOpt),
    "channels": (Optional[int], ChannelsOpt),
    "mean": (Optional[str], MeanOpt),
    "std": (Optional[str], StdOpt),
    "labels": (Optional[Path], LabelsOpt),
    "device": (Optional[str], DeviceOpt),
}


def no_input(fn: Callable) -> Callable:
    """Mark a command that takes ``--model`` but never feeds a user's model an image (``layers`` and
    ``filters`` read weights only; ``explain-text`` and ``attention`` run the zoo's text models): it gets
    no ``--input-size``/``--channels``/``--mean``/``--std``/``--labels``/``--device``."""
    fn.__seethrough_no_input__ = True
    return fn


def feeds_model(fn: Callable) -> bool:
    """Whether command ``fn`` loads a model and gives it inputs (so it takes the model-shape options)."""
    return "model" in inspect.signature(fn).parameters and not getattr(fn, "__seethrough_no_input__", False)


def bundled_image(value: Any, option: str) -> Any:
    """A path that is not a file but a bundled photo's name → that photo's file; neither → one clear line.

    >>> bundled_image(Path("chelsea"), "IMAGE").name
    'chelsea.png'
    """
    if value is None or not isinstance(value, Path) or value.exists():
        return value
    from .. import zoo
    from ..zoo.images import image_file

    if str(value) in zoo.images():
        return image_file(str(value))
    where = "" if option == "IMAGE" else f"{option}: "
    raise ValueError(f"{where}no such image file {str(value)!r}, and it is not a bundled photo's name "
                     f"({', '.join(zoo.images())}; see `seethrough images`)")


def conventions(fn: Callable) -> Callable:
    """Give command ``fn`` the options every command shares (see the module docstring) and apply them.

    Idempotent; the added parameters are taken out before ``fn`` is called, so its body never sees them.
    """
    if getattr(fn, "__seethrough_conventions__", False):
        return fn
    sig = inspect.signature(fn)
    wanted = ["quiet", *(SHAPE_NAMES if feeds_model(fn) else ())]
    added = [n for n in wanted if n not in sig.parameters]
    params = list(sig.parameters.values())
    params += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=_INJECTED[n][1], annotation=_INJECTED[n][0])
               for n in added]

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        extra = {n: kwargs.pop(n) for n in added if n in kwargs}
        if extra.get("quiet"):
            from ..progress import force

            force(False)
        for name in ("image", "start"):
            if name in kwargs:
                kwargs[name] = bundled_image(kwargs[name], "IMAGE" if name == "image" else "--from")
        given = {k: v for k, v in extra.items() if k in SHAPE_NAMES and v is not None}
        token, used = SHAPE.set(given), _USED.set([])
        try:
            result = fn(*args, **kwargs)
        finally:
            consumed = bool(_USED.get())
            SHAPE.reset(token)
            _USED.reset(used)
        if given and not consumed:  # e.g. --input-size with a bundled model that never went through load()
            names = ", ".join(f"--{k.replace('_', '-')}" for k in given)
            click.echo(f"warning: {names} not used: they describe a model given with --model, and this run loaded none",
                       err=True)
        return result

    wrapper.__signature__ = sig.replace(parameters=params)
    wrapper.__annotations__ = {**getattr(fn, "__annotations__", {}), **{n: _INJECTED[n][0] for n in added}}
    wrapper.__dict__.pop("__seethrough_friendly__", None)  # the outer friendly() must still wrap it
    wrapper.__seethrough_conventions__ = True
    return wrapper


class Command(TyperCommand):
    """A typer command that accepts an option's old spelling for one release, with a one-line warning."""

    renames: dict[str, str] = {}

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        out: list[str] = []
        for a in args:
            if a == "--":
                out.extend(args[len(out):])
                break
            name, eq, value = a.partition("=")
            if name in self.renames:
                new = self.renames[name]
                click.echo(f"warning: {name} is deprecated, use {new} (the old spelling goes in the next release)", err=True)
                a = new + eq + value
            out.append(a)
        return super().parse_args(ctx, out)


def command_class(fn: Callable, base: Optional[type] = None) -> Optional[type]:
    """The :class:`Command` subclass that knows ``fn``'s renamed options (``None`` if it has none),
    on top of the command's own class ``base`` (a family command taking its entries' options)."""
    renames = {}
    for p in inspect.signature(fn).parameters.values():
        old = getattr(p.default, "seethrough_old", None)
        if old:
            new = max((d for d in p.default.param_decls if d.startswith("--")), key=len)
            renames[old] = new
    if not renames:
        return None
    bases = (Command,) if base is None or issubclass(Command, base) else (Command, base)
    return type("Command", bases, {"renames": renames})
