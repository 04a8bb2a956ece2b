"""The ``seethrough`` command line: one sub-command per family.

Errors have one path: every registered command is wrapped by :func:`friendly` (in
:func:`_wrap_all`, the one place), which turns expected errors — bad input (``ValueError``,
``TypeError``, our own ``ChecksumError``), paths (``OSError`` and its kinds), numbers too large
(``OverflowError``) — into ``error: <one line>`` on stderr and exit code 2. Anything else is a
bug and keeps its traceback; ``SEETHROUGH_TRACEBACK=1`` shows the traceback of expected errors too.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

# The shared pieces live in seethrough.commands.base (the family modules import them from there, so
# commands does not import cli: no cycle); re-exported here under their old names.
from .commands.base import (  # noqa: F401
    _EXPECTED, _INT64, ArchOpt, ModelOpt, ShaOpt, UnsafeOpt, _check_ints, _option_name, _os_message, _show_warning,
    app, command_class, conventions, error_line, friendly, load, model_option, no_input, out_dir, out_option,
    seed_option, top_option,
)


def _print_version(value: bool) -> None:
    if value:
        from ._version import __version__

        typer.echo(f"seethrough {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="draw no progress bars (SEETHROUGH_PROGRESS=0 does the same; "
                               "=1 draws them also when stderr is not a terminal)"),
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="print the version and exit"),
):
    """Options before the sub-command: ``seethrough --quiet embed ...``, ``seethrough --version``."""
    from .progress import force

    force(False if quiet else None)  # every invocation sets it: a previous --quiet in this process does not stick


@app.command()
def predict(
    image: Path = typer.Argument(..., help="an image file (any PIL-readable format) or a bundled photo's name (`seethrough images`)"),
    model: str = ModelOpt,
    arch: Optional[str] = ArchOpt,
    unsafe_pickle: bool = UnsafeOpt,
    sha256: Optional[str] = ShaOpt,
    top: int = top_option(5, "how many classes to list"),
    out: Optional[Path] = out_option(None, "predictions.npz/.json/.csv, the table and every class's probability "
                                     "(only when -o is given)"),
):
    """Print the model's top classes for IMAGE (with -o, also write them as raw results)."""
    from rich.console import Console
    from rich.table import Table

    from .predict import predict as _predict

    loaded = load(model, arch, unsafe_pickle, sha256)
    x = loaded.preprocess(image)
    (preds,) = _predict(loaded.model, x, k=top, labels=loaded.labels)
    table = Table(title=f"{image.name} · {loaded.name}")
    for col in ("rank", "class", "label", "probability"):
        table.add_column(col, justify="right" if col in ("rank", "class", "probability") else "left")
    for r, p in enumerate(preds, 1):
        table.add_row(str(r), str(p.index), p.label, f"{p.probability:.2%}")
    Console().print(table)
    if out is not None:  # the printed table, and the whole softmax, reloadable with seethrough.results.load
        import pandas as pd

        from .raw import save_raw

        rows = pd.DataFrame([{"rank": r, "class": p.index, "label": p.label, "probability": p.probability}
                             for r, p in enumerate(preds, 1)])
        typer.echo(save_raw(out_dir(out), "predictions", {"predictions": preds}, table=rows,
                            options={"image": str(image), "model": loaded.name, "top": top}))


@app.command()
def report(
    out: Path = out_option("report", "index.html, img/ and .sections/ (kept for resuming)"),
    model: Optional[str] = model_option(None),
    arch: Optional[str] = ArchOpt,
    unsafe_pickle: bool = UnsafeOpt,
    sha256: Optional[str] = ShaOpt,
    images: Optional[Path] = typer.Option(None, "--images", help="with --model: a folder of images to run it on "
                                          "(default: the bundled photos)"),
    section: Optional[list[str]] = typer.Option(None, "--section", "-s", help="only these sections (repeatable)"),
    quick: bool = typer.Option(False, "--quick", help="fewer photos and models, for a fast look"),
    seed: int = seed_option(),
    fresh: bool = typer.Option(False, "--fresh", help="rebuild every section (default: reuse those a previous run "
                               "with the same options finished, kept in OUT/.sections)"),
    scan: Optional[Path] = typer.Option(None, "--scan", help="a stored scan (folder written by `seethrough scan -o`): "
                                        "its section is read from it, nothing recomputed; alone it is the whole report"),
):
    """Write the self-contained HTML report; an interrupted run resumes where it stopped.

    With --model, the sections that apply to any model are built for yours (on --images, or the bundled
    photos); the sections built on a bundled model say so in the report and are skipped."""
    from .report import write_report

    if images is not None and model is None:
        raise ValueError("--images goes with --model (the images your model is run on)")
    user = load(model, arch, unsafe_pickle, sha256) if model is not None else None
    try:
        res = write_report(out, sections=section, quick=quick, seed=seed, progress=True, fresh=fresh,
                           scan=scan, model=user, images=images)
    except KeyboardInterrupt:
        typer.echo(f"error: interrupted; the finished sections are kept in {out / '.sections'}: run the same command "
                   "again to resume", err=True)
        raise typer.Exit(130) from None
    reused = f"; {len(res.reused)} section(s) reused, --fresh rebuilds them" if res.reused else ""
    typer.echo(f"report written to {res.path} ({sum(res.seconds.values()):.0f} s{reused})")
    for key in res.skipped:
        typer.echo(f"section {key} skipped: it is built on the bundled models")
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
@no_input
def layers(model: str = ModelOpt, arch: Optional[str] = ArchOpt, unsafe_pickle: bool = UnsafeOpt,
           sha256: Optional[str] = ShaOpt):
    """List the layer names of a model (what --layer accepts)."""
    from .layers import layer_names

    for name in layer_names(load(model, arch, unsafe_pickle, sha256, probe=False).model):
        typer.echo(name)


def _wrap_all() -> None:
    """The one place errors are handled: every registered command goes through :func:`friendly`."""
    for info in app.registered_commands:
        info.callback = friendly(conventions(info.callback))
        info.cls = command_class(info.callback, info.cls) or info.cls  # old option spellings, for one release


from .commands import register_all  # noqa: E402 - the family modules need `app` defined above

register_all()
_wrap_all()


def main() -> None:  # pragma: no cover - console entry point
    app()
