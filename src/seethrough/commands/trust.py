"""``seethrough sanity`` and ``seethrough faithfulness``: can this explanation be trusted?"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .base import ArchOpt, ModelOpt, ShaOpt, UnsafeOpt, app, load


def _setup(image: Path, method: str, model: str, arch: Optional[str], unsafe_pickle: bool, target: Optional[int],
           sha256: Optional[str] = None):
    from .explain import parse_methods, predicted_class

    names = parse_methods(method)
    loaded = load(model, arch, unsafe_pickle, sha256)
    x = loaded.preprocess(image)
    return names, loaded, x, predicted_class(loaded.model, x) if target is None else target


def _options(name: str, layer: Optional[str]) -> dict:
    from ..attribution import METHODS

    return {"layer": layer} if layer is not None and METHODS[name].family == "cam" else {}


@app.command()
def sanity(
    image: Path = typer.Argument(..., help="an image file (any PIL-readable format)"),
    method: str = typer.Option("gradcam,guided-backprop,saliency", "--method", help="comma-separated attribution methods"),
    mode: str = typer.Option("cascading", "--mode", help="cascading (layers stay random) or independent (one at a time)"),
    target: Optional[int] = typer.Option(None, "--target", "-t", help="class to explain (default: the predicted class)"),
    layer: Optional[str] = typer.Option(None, "--layer", help="layer for the CAM methods"),
    seed: int = typer.Option(0, "--seed", help="seed of the random re-initialisation"),
    out: Path = typer.Option(Path("sanity"), "--out", "-o", help="output folder: METHOD.png per method, scores.csv"),
    model: str = ModelOpt,
    arch: Optional[str] = ArchOpt,
    unsafe_pickle: bool = UnsafeOpt,
    sha256: Optional[str] = ShaOpt,
):
    """Model-parameter randomization test: a strip of maps per randomised layer plus the similarity curves."""
    import pandas as pd

    from ..progress import bar
    from ..render import sanity_figure
    from ..sanity import randomization

    names, loaded, x, target = _setup(image, method, model, arch, unsafe_pickle, target, sha256)
    out.mkdir(parents=True, exist_ok=True)
    frames = []
    for name in bar(names, desc="sanity", unit="method"):
        r = randomization(loaded.model, x, name, target, mode=mode, seed=seed, **_options(name, layer))
        sanity_figure(r, title=f"{image.name} · {loaded.name} · {name}").save(out / f"{name}.png")
        frames.append(r.to_frame())
        last = ", ".join(f"{m} {r.scores[-1, k].nanmean():.2f}" for k, m in enumerate(r.metrics))
        typer.echo(f"{name}: {out / (name + '.png')}  (all {len(r.layers)} layers random: {last})")
    pd.concat(frames).to_csv(out / "scores.csv", index=False)
    typer.echo(f"scores: {out / 'scores.csv'}")


@app.command()
def faithfulness(
    image: Path = typer.Argument(..., help="an image file (any PIL-readable format)"),
    method: str = typer.Option("gradcam,saliency", "--method", help="comma-separated attribution methods"),
    steps: int = typer.Option(32, "--steps", help="number of deletion/insertion steps"),
    patch: int = typer.Option(8, "--patch", help="side of the square units removed or inserted (pixels)"),
    target: Optional[int] = typer.Option(None, "--target", "-t", help="class to explain (default: the predicted class)"),
    layer: Optional[str] = typer.Option(None, "--layer", help="layer for the CAM methods"),
    seed: int = typer.Option(0, "--seed", help="seed of the random ranking"),
    out: Path = typer.Option(Path("faithfulness"), "--out", "-o", help="output folder: curves.png and scores.csv"),
    model: str = ModelOpt,
    arch: Optional[str] = ArchOpt,
    unsafe_pickle: bool = UnsafeOpt,
    sha256: Optional[str] = ShaOpt,
):
    """Deletion and insertion curves of each method's map, with the random-ranking baseline."""
    import pandas as pd

    from ..attribution import attribute
    from ..metrics import deletion, insertion
    from ..progress import bar
    from ..render import faithfulness_figure

    names, loaded, x, target = _setup(image, method, model, arch, unsafe_pickle, target, sha256)
    out.mkdir(parents=True, exist_ok=True)
    curves, frames = {}, []
    for name in bar(names, desc="faithfulness", unit="method"):
        a = attribute(loaded.model, x, name, target=target, **_options(name, layer))
        opts = dict(steps=steps, patch=patch, seed=seed)
        curves[name] = {"deletion": deletion(loaded.model, x, a, target, **opts),
                        "insertion": insertion(loaded.model, x, a, target, **opts)}
        for metric, r in curves[name].items():
            frames.append(r.to_frame().assign(method=name))
        d, i = curves[name]["deletion"], curves[name]["insertion"]
        typer.echo(f"{name}: deletion AUC {d.score[0]:.3f} (random {d.random_score[0]:.3f}), "
                   f"insertion AUC {i.score[0]:.3f} (random {i.random_score[0]:.3f})")
    faithfulness_figure(curves, title=f"{image.name} · {loaded.name} · class {target}").save(out / "curves.png")
    pd.concat(frames).to_csv(out / "scores.csv", index=False)
    typer.echo(f"curves: {out / 'curves.png'}\nscores: {out / 'scores.csv'}")
