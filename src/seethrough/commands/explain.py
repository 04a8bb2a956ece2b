"""``seethrough explain``: attribution maps for one image, one PNG per method plus a panel (or tabular rows: --row, --csv)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .base import ArchOpt, ModelOpt, ShaOpt, UnsafeOpt, app, load
from seethrough.commands.tabular import DEFAULT_METHODS as ROW_METHODS

IMAGE_METHODS = "gradcam,guided-backprop,integrated-gradients"


def parse_methods(spec: str) -> list[str]:
    """``"a,b"`` → ``["a", "b"]``; ``"all"`` → every registered method; unknown names are an error.

    >>> parse_methods("gradcam, saliency")
    ['gradcam', 'saliency']
    """
    from ..attribution import METHODS

    if spec.strip() == "all":
        return list(METHODS)
    names = [m.strip() for m in spec.split(",") if m.strip()]
    if not names:
        raise ValueError("--method needs at least one method name, or 'all'")
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise ValueError(f"--method: unknown method(s) {', '.join(unknown)}; available: {', '.join(METHODS)}, or 'all'")
    return names


def predicted_class(model, x) -> int:
    """The model's class for the first image of ``x`` (eval mode, model left as found).

    >>> import torch
    >>> predicted_class(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)), torch.ones(1, 1, 2, 2)) in (0, 1, 2)
    True
    """
    from ..hooks import forward
    from ..outputs import MODEL_HINT, class_output

    return int(class_output(forward(model, x), hint=MODEL_HINT).argmax(1)[0])


@app.command()
def explain(
    image: Optional[Path] = typer.Argument(None, help="an image file (any PIL-readable format); none with --row/--csv"),
    method: Optional[str] = typer.Option(None, "--method",
                                         help="comma-separated attribution methods, or 'all' for the whole registry "
                                         f"(default: {IMAGE_METHODS} for an image, {ROW_METHODS} for rows)"),
    row: Optional[int] = typer.Option(None, "--row", help="a tabular model (mlp-breast-cancer): explain row N of its held-out set"),
    csv: Optional[Path] = typer.Option(None, "--csv", help="a tabular model: explain every row of this CSV (header = the feature names)"),
    target: Optional[int] = typer.Option(None, "--target", "-t", help="class to explain (default: the predicted class)"),
    layer: Optional[str] = typer.Option(None, "--layer", help="layer for the CAM methods (default: the last conv block)"),
    out: Path = typer.Option(Path("explain"), "--out", "-o", help="output folder: METHOD.png per method and panel.png"),
    trust: bool = typer.Option(False, "--trust", help="also run the cheap trust checks and write METHOD-trust.png with the badge"),
    model: str = ModelOpt,
    arch: Optional[str] = ArchOpt,
    unsafe_pickle: bool = UnsafeOpt,
    sha256: Optional[str] = ShaOpt,
):
    """Explain the model's decision on IMAGE (or on tabular rows: --row, --csv) with one or more attribution methods."""
    from ..attribution import METHODS, attribute
    from ..progress import bar
    from ..render import overlay, panel

    if row is not None or csv is not None:  # tabular rows: one PNG per row and method, plus attributions.csv
        from .tabular import explain_rows, require_tabular

        if image is not None or trust or layer is not None:
            raise ValueError("--row/--csv explain tabular rows: give no IMAGE, --trust or --layer with them")
        require_tabular(model)
        loaded = load(model, arch, unsafe_pickle, sha256, probe=False)
        for path in explain_rows(loaded, parse_methods(method or ROW_METHODS), row=row, csv_path=csv, target=target, out=out):
            typer.echo(str(path))
        return
    if image is None:
        raise ValueError("give an IMAGE to explain, or --row N / --csv FILE for a tabular model (mlp-breast-cancer)")
    names = parse_methods(method or IMAGE_METHODS)
    loaded = load(model, arch, unsafe_pickle, sha256)
    if image.is_dir():  # a folder: one map per image and method, and explanations.csv (seethrough.scan.explain_dir)
        from ..scan.explain_dir import explain_folder

        if trust:
            raise ValueError("--trust explains one image; for a folder, explanations.csv has deletion and insertion scores")
        r = explain_folder(loaded.model, image, names, out, target=target, layer=layer, preprocess=loaded.preprocess,
                           labels=loaded.labels)
        for name, reason in r.skipped:
            typer.echo(f"skipped {name}: {reason}")
        typer.echo(f"{len(r.table)} maps of {r.table['name'].nunique()} images in {out / 'maps'}; scores: {r.csv}")
        return
    x = loaded.preprocess(image)
    if target is None:  # the predicted class, fixed once so every method explains the same decision
        target = predicted_class(loaded.model, x)
    out.mkdir(parents=True, exist_ok=True)
    maps = {}
    for name in bar(names, desc="explain", unit="method"):  # each method's own loops draw their bars inside
        options = {"layer": layer} if layer is not None and METHODS[name].family == "cam" else {}
        if trust:
            from ..render import badge_strip

            maps[name], badge = attribute(loaded.model, x, name, target=target, trust=True, **options)
            badge_strip(x, maps[name], badge).save(out / f"{name}-trust.png")
        else:
            maps[name] = attribute(loaded.model, x, name, target=target, **options)
        overlay(x, maps[name]).save(out / f"{name}.png")
        typer.echo(f"{name}: {out / (name + '.png')}")
        if trust:
            typer.echo(f"  trust: {badge.summary()}")
    label = loaded.labels[target] if loaded.labels and target < len(loaded.labels) else str(target)
    panel(x, maps, title=f"{image.name} · {loaded.name} · class {target} ({label})").save(out / "panel.png")
    typer.echo(f"panel: {out / 'panel.png'}")
