"""``seethrough explain``: attribution maps for one image, one PNG per method plus a panel."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from seethrough.cli import ArchOpt, ModelOpt, ShaOpt, UnsafeOpt, app, load


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
    image: Path = typer.Argument(..., help="an image file (any PIL-readable format)"),
    method: str = typer.Option("gradcam,guided-backprop,integrated-gradients", "--method",
                               help="comma-separated attribution methods, or 'all' for the whole registry"),
    target: Optional[int] = typer.Option(None, "--target", "-t", help="class to explain (default: the predicted class)"),
    layer: Optional[str] = typer.Option(None, "--layer", help="layer for the CAM methods (default: the last conv block)"),
    out: Path = typer.Option(Path("explain"), "--out", "-o", help="output folder: METHOD.png per method and panel.png"),
    trust: bool = typer.Option(False, "--trust", help="also run the cheap trust checks and write METHOD-trust.png with the badge"),
    model: str = ModelOpt,
    arch: Optional[str] = ArchOpt,
    unsafe_pickle: bool = UnsafeOpt,
    sha256: Optional[str] = ShaOpt,
):
    """Explain the model's decision on IMAGE with one or more attribution methods."""
    from ..attribution import METHODS, attribute
    from ..render import overlay, panel

    names = parse_methods(method)
    loaded = load(model, arch, unsafe_pickle, sha256)
    x = loaded.preprocess(image)
    if target is None:  # the predicted class, fixed once so every method explains the same decision
        target = predicted_class(loaded.model, x)
    out.mkdir(parents=True, exist_ok=True)
    maps = {}
    for name in names:
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
