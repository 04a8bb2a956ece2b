"""The ``seethrough`` command line: one sub-command per family."""
from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Optional

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


def friendly(fn):
    """Bad input → one line on stderr and exit code 2, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ValueError, TypeError, FileNotFoundError, KeyError) as e:
            msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            typer.echo(f"error: {msg}".splitlines()[0], err=True)
            raise typer.Exit(2)

    return wrapper


def load(model: str, arch: Optional[str], unsafe_pickle: bool):
    """Resolve --model/--arch/--unsafe-pickle into a LoadedModel (model, preprocess, labels, name)."""
    from .loading import load_model

    return load_model(model, arch=arch, unsafe_pickle=unsafe_pickle)


@app.command()
@friendly
def predict(
    image: Path = typer.Argument(..., help="an image file (any PIL-readable format)"),
    model: str = ModelOpt,
    arch: Optional[str] = ArchOpt,
    unsafe_pickle: bool = UnsafeOpt,
    top: int = typer.Option(5, "--top", help="how many classes to list"),
):
    """Print the model's top classes for IMAGE."""
    from rich.console import Console
    from rich.table import Table

    from .predict import predict as _predict

    loaded = load(model, arch, unsafe_pickle)
    x = loaded.preprocess(image)
    (preds,) = _predict(loaded.model, x, k=top, labels=loaded.labels)
    table = Table(title=f"{image.name} · {loaded.name}")
    for col in ("rank", "class", "label", "probability"):
        table.add_column(col, justify="right" if col in ("rank", "class", "probability") else "left")
    for r, p in enumerate(preds, 1):
        table.add_row(str(r), str(p.index), p.label, f"{p.probability:.2%}")
    Console().print(table)


@app.command()
@friendly
def report(
    out: Path = typer.Option(Path("report"), "--out", "-o", help="output folder (index.html + img/)"),
    section: Optional[list[str]] = typer.Option(None, "--section", "-s", help="only these sections (repeatable)"),
    quick: bool = typer.Option(False, "--quick", help="fewer photos and models, for a fast look"),
    seed: int = typer.Option(0, "--seed"),
):
    """Write the self-contained HTML report."""
    from .report import write_report

    res = write_report(out, sections=section, quick=quick, seed=seed, progress=sys.stderr.isatty())
    typer.echo(f"report written to {res.path} ({sum(res.seconds.values()):.0f} s)")
    for key, err in res.failures.items():
        typer.echo(f"section {key} failed: {err}", err=True)
    if res.failures:
        raise typer.Exit(1)


@app.command()
def models():
    """List the bundled models."""
    from . import zoo

    for name, desc in zoo.models().items():
        typer.echo(f"{name:20s} {desc}")


@app.command()
def images():
    """List the bundled photos."""
    from . import zoo

    for name in zoo.images():
        typer.echo(name)


@app.command()
@friendly
def layers(model: str = ModelOpt, arch: Optional[str] = ArchOpt, unsafe_pickle: bool = UnsafeOpt):
    """List the layer names of a model (what --layer accepts)."""
    from .layers import layer_names

    for name in layer_names(load(model, arch, unsafe_pickle).model):
        typer.echo(name)


from .commands import register_all  # noqa: E402 - the family modules need `app` defined above

register_all()


def main() -> None:  # pragma: no cover - console entry point
    app()
