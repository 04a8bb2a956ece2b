"""``seethrough sanity`` and ``seethrough faithfulness``: can this explanation be trusted?"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .entry_options import chosen, spec_command
from .base import ArchOpt, ModelOpt, ShaOpt, TargetOpt, UnsafeOpt, app, layer_option, load, one_layer, out_option, seed_option


def _setup(image: Path, method: str, model: str, arch: Optional[str], unsafe_pickle: bool, target: Optional[int],
           sha256: Optional[str] = None):
    from .explain import parse_methods, predicted_class

    names = parse_methods(method)
    loaded = load(model, arch, unsafe_pickle, sha256)
    x = loaded.preprocess(image)
    return names, loaded, x, predicted_class(loaded.model, x) if target is None else target


def _options(name: str, layer: Optional[list[str]], command: str) -> dict:
    from ..attribution import METHODS

    layer = one_layer(layer, command)
    return {"layer": layer} if layer is not None and METHODS[name].family == "cam" else {}


@app.command(cls=spec_command("attribution"))
def sanity(
    ctx: typer.Context,
    image: Path = typer.Argument(..., help="an image file (any PIL-readable format) or a bundled photo's name (`seethrough images`)"),
    method: str = typer.Option("gradcam,guided-backprop,saliency", "--method", help="comma-separated attribution methods"),
    mode: str = typer.Option("cascading", "--mode", help="cascading (layers stay random) or independent (one at a time)"),
    target: Optional[int] = TargetOpt,
    layer: Optional[list[str]] = layer_option(None, one=True, help="layer for the CAM methods"),
    seed: int = seed_option("seed of the random re-initialisation"),
    out: Path = out_option("sanity", "METHOD.png per method, scores.csv"),
    model: str = ModelOpt,
    arch: Optional[str] = ArchOpt,
    unsafe_pickle: bool = UnsafeOpt,
    sha256: Optional[str] = ShaOpt,
):
    """Model-parameter randomization test: a strip of maps per randomised layer plus the similarity curves.

    Each method's own options follow the command (`--n-samples 16`): they are listed below.
    """
    import pandas as pd

    from ..progress import bar
    from ..render import sanity_figure, save_picture
    from ..sanity import randomization

    one_layer(layer, "sanity")  # two layers refused before any work
    from .explain import parse_methods

    per_method = chosen(ctx, "attribution", parse_methods(method))
    names, loaded, x, target = _setup(image, method, model, arch, unsafe_pickle, target, sha256)
    out.mkdir(parents=True, exist_ok=True)
    frames = []
    for name in bar(names, desc="sanity", unit="method"):
        r = randomization(loaded.model, x, name, target, mode=mode, seed=seed,
                          **{**_options(name, layer, "sanity"), **per_method[name]})
        heading = f"{image.name} · {loaded.name} · {name} · class {target} · {mode} randomization"
        save_picture(sanity_figure(r, title=heading), out / f"{name}.png")
        r.save(out / name)  # METHOD.npz + METHOD.json: the maps and scores, reloadable with seethrough.results.load
        frames.append(r.to_frame())
        last = ", ".join(f"{m} {r.scores[-1, k].nanmean():.2f}" for k, m in enumerate(r.metrics))
        typer.echo(f"{name}: {out / (name + '.png')}  (all {len(r.layers)} layers random: {last})")
    pd.concat(frames).to_csv(out / "scores.csv", index=False)
    typer.echo(f"scores: {out / 'scores.csv'}")


@app.command(cls=spec_command("attribution", "metric"))
def faithfulness(
    ctx: typer.Context,
    image: Path = typer.Argument(..., help="an image file (any PIL-readable format) or a bundled photo's name (`seethrough images`)"),
    method: str = typer.Option("gradcam,saliency", "--method", help="comma-separated attribution methods"),
    metric: str = typer.Option("deletion,insertion", "--metric", help="comma-separated metrics (listed below), or 'all'"),
    steps: int = typer.Option(32, "--steps", help="number of steps of the curve metrics (deletion, insertion, ...)"),
    patch: int = typer.Option(8, "--patch", help="side of the square units removed or inserted (pixels)"),
    target: Optional[int] = TargetOpt,
    layer: Optional[list[str]] = layer_option(None, one=True, help="layer for the CAM methods"),
    seed: int = seed_option("seed of the random ranking"),
    out: Path = out_option("faithfulness", "curves.png and scores.csv"),
    model: str = ModelOpt,
    arch: Optional[str] = ArchOpt,
    unsafe_pickle: bool = UnsafeOpt,
    sha256: Optional[str] = ShaOpt,
):
    """Faithfulness of each method's map: deletion and insertion curves (or any registered metric, --metric),
    each with its random-ranking baseline.

    Each method's own options follow the command (`--n-samples 16`); --steps, --patch and --seed go to the
    metrics that take them. Both are listed below.
    """
    import pandas as pd

    from ..attribution import attribute
    from ..catalog import entries
    from ..progress import bar
    from ..render import faithfulness_figure, save_picture

    one_layer(layer, "faithfulness")  # two layers refused before any work
    from .explain import parse_methods

    registered = entries("metric")
    metrics = list(registered) if metric.strip() == "all" else [m.strip() for m in metric.split(",") if m.strip()]
    unknown = [m for m in metrics if m not in registered]
    if unknown or not metrics:
        raise ValueError(f"--metric: unknown metric(s) {', '.join(unknown) or '(none given)'}; available: "
                         f"{', '.join(registered)}, or 'all'")
    per_method = chosen(ctx, "attribution", parse_methods(method))
    names, loaded, x, target = _setup(image, method, model, arch, unsafe_pickle, target, sha256)
    out.mkdir(parents=True, exist_ok=True)
    curves, frames, maps, scores = {}, [], {}, {}
    given = {"steps": steps, "patch": patch, "seed": seed}
    for name in bar(names, desc="faithfulness", unit="method"):
        opts = {**_options(name, layer, "faithfulness"), **per_method[name]}
        a = maps[name] = attribute(loaded.model, x, name, target=target, **opts)
        curves[name], line = {}, []
        for m in metrics:
            spec = registered[m]
            takes = {o.name for o in spec.options}
            mopts = {k: v for k, v in given.items() if k in takes}
            subject = a if spec.extra.get("takes") == "map" else name
            r = spec.fn(loaded.model, x, subject, target, **mopts,
                        **(opts if spec.extra.get("takes") == "method" else {}))
            frames.append(r.to_frame().assign(method=name))
            r.save(out / f"{name}-{m}")  # reloadable with seethrough.results.load
            if hasattr(r, "curve"):
                curves[name][m] = r
                line.append(f"{m} {spec.extra.get('area', 'AUC')} {float(r.score[0]):.3f} "
                            f"(random {float(r.random_score[0]):.3f})")
            else:
                line.append(f"{m} {float(r.values[0]):.3f}")
            scores.setdefault(name, {})[m] = float(r.score[0] if hasattr(r, "curve") else r.values[0])
        typer.echo(f"{name}: " + ", ".join(line))
    if any(curves.values()):
        save_picture(faithfulness_figure({n: c for n, c in curves.items() if c},
                                         title=f"{image.name} · {loaded.name} · {', '.join(names)} · class {target}"),
                     out / "curves.png")
        typer.echo(f"curves: {out / 'curves.png'}")
    pd.concat(frames).to_csv(out / "scores.csv", index=False)
    from ..results import write_maps

    write_maps(out, maps, {"image": str(image), "model": loaded.name, "target": target, "methods": names,
                           "metrics": metrics, "scores": scores, "options": {"steps": steps, "patch": patch,
                                                                               "methods": per_method}, "seed": seed})
    typer.echo(f"scores: {out / 'scores.csv'}")
