"""``seethrough explain``: attribution maps for one image, one PNG per method plus a panel (or tabular rows: --row, --csv)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .base import error_line
from .base import ArchOpt, ModelOpt, ShaOpt, TargetOpt, UnsafeOpt, app, layer_option, load, one_layer, out_option, seed_option
from .entry_options import chosen, spec_command
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


def takes_seed(name: str) -> bool:
    """Whether attribution method ``name`` is random (takes ``seed``), read from its registered options.

    >>> takes_seed("lime"), takes_seed("saliency")
    (True, False)
    """
    from .. import catalog

    return "seed" in [o.name for o in catalog.get("attribution", name).options]


def predicted_class(model, x) -> int:
    """The model's class for the first image of ``x`` (eval mode, model left as found).

    >>> import torch
    >>> predicted_class(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)), torch.ones(1, 1, 2, 2)) in (0, 1, 2)
    True
    """
    from ..hooks import forward
    from ..outputs import MODEL_HINT, class_output

    return int(class_output(forward(model, x), hint=MODEL_HINT).argmax(1)[0])


def _heading(image: str, loaded, method: str, layer: str | None, target: int, label: str) -> str:
    """The title of one method's picture: image, model, method (with its layer for the CAM family) and class."""
    from ..attribution import METHODS
    from ..attribution.cam import default_layer

    where = ""
    if METHODS[method].family == "cam":
        where = f" @ {layer or default_layer(loaded.model)}"
    return f"{image} · {loaded.name} · {method}{where} · class {target} ({label})"


def _folder_raw(r, loaded, names: list[str], per_method: dict, target: Optional[int], seed: int) -> None:
    """A folder's maps as in the one-image case: ``maps.npz`` (key ``IMAGE.METHOD``, the ``.npy`` under maps/) and
    ``scores.json`` (what made them, and every row of explanations.csv)."""
    import numpy as np

    from ..results import write_maps

    maps = {m[len("maps/"):-len(".png")]: np.load(r.out / (m[:-len(".png")] + ".npy")) for m in r.table["map"]}
    arrays, scores = write_maps(r.out, maps, {"images": sorted(r.table["name"].unique().tolist()), "model": loaded.name,
                                              "target": target, "methods": names, "options": per_method, "seed": seed,
                                              "explanations": r.table.to_dict("records"),
                                              **({"skipped": dict(r.skipped)} if r.skipped else {})})
    typer.echo(f"maps: {arrays}; scores: {scores}")


@app.command(cls=spec_command("attribution"))
def explain(
    ctx: typer.Context,
    image: Optional[Path] = typer.Argument(None, help="an image file, a folder of images, or a bundled photo's name (`seethrough images`); none with --row/--csv"),
    method: Optional[str] = typer.Option(None, "--method",
                                         help="comma-separated attribution methods, or 'all' for the whole registry "
                                         f"(default: {IMAGE_METHODS} for an image, {ROW_METHODS} for rows)"),
    row: Optional[int] = typer.Option(None, "--row", help="a tabular model (mlp-breast-cancer): explain row N of its held-out set"),
    csv: Optional[Path] = typer.Option(None, "--csv", help="a tabular model: explain every row of this CSV (header = the feature names)"),
    target: Optional[int] = TargetOpt,
    layer: Optional[list[str]] = layer_option(None, one=True, help="layer for the CAM methods (default: the last conv block)"),
    out: Path = out_option("explain", "METHOD.png per method, panel.png, maps.npz and scores.json (the raw maps)"),
    seed: int = seed_option("seed of the random methods (smoothgrad, vargrad, rise, lime, kernel-shap)"),
    trust: bool = typer.Option(False, "--trust", help="also run the cheap trust checks and write METHOD-trust.png with the badge"),
    model: str = ModelOpt,
    arch: Optional[str] = ArchOpt,
    unsafe_pickle: bool = UnsafeOpt,
    sha256: Optional[str] = ShaOpt,
):
    """Explain the model's decision on IMAGE (or on tabular rows: --row, --csv) with one or more attribution methods.

    Each method's own options follow the command (`--steps 128 --baseline blur`): they are listed below.
    """
    from ..attribution import METHODS, attribute
    from ..progress import bar
    from ..render import attribution_figure, for_display, panel, save_picture

    layer = one_layer(layer, "explain")

    if row is not None or csv is not None:  # tabular rows: one PNG per row and method, plus attributions.csv
        from .tabular import explain_rows, require_tabular

        if image is not None or trust or layer is not None:
            raise ValueError("--row/--csv explain tabular rows: give no IMAGE, --trust or --layer with them")
        require_tabular(model)
        row_names = parse_methods(method or ROW_METHODS)
        per_method = chosen(ctx, "attribution", row_names)  # checked before the model loads
        loaded = load(model, arch, unsafe_pickle, sha256, probe=False)
        for path in explain_rows(loaded, row_names, row=row, csv_path=csv, target=target, out=out,
                                 options=per_method):
            typer.echo(str(path))
        return
    if image is None:
        raise ValueError("give an IMAGE to explain, or --row N / --csv FILE for a tabular model (mlp-breast-cancer)")
    names = parse_methods(method or IMAGE_METHODS)
    per_method = chosen(ctx, "attribution", names)  # a misspelt or misplaced option: refused before any work
    loaded = load(model, arch, unsafe_pickle, sha256)
    if image.is_dir():  # a folder: one map per image and method, and explanations.csv (seethrough.scan.explain_dir)
        from ..scan.explain_dir import explain_folder

        if trust:
            raise ValueError("--trust explains one image; for a folder, explanations.csv has deletion and insertion scores")
        r = explain_folder(loaded.model, image, names, out, target=target, layer=layer, preprocess=loaded.preprocess,
                           labels=loaded.labels, seed=seed, method_options=per_method)
        for name, reason in r.skipped:
            typer.echo(f"skipped {name}: {reason}")
        typer.echo(f"{len(r.table)} maps of {r.table['name'].nunique()} images in {out / 'maps'}; scores: {r.csv}")
        _folder_raw(r, loaded, names, per_method, target, seed)
        return
    x = loaded.preprocess(image)
    if target is None:  # the predicted class, fixed once so every method explains the same decision
        target = predicted_class(loaded.model, x)
    out.mkdir(parents=True, exist_ok=True)
    maps, used, badges, skipped = {}, {}, {}, {}
    every = (method or "").strip() == "all"
    label = loaded.labels[target] if loaded.labels and target < len(loaded.labels) else str(target)
    for name in bar(names, desc="explain", unit="method"):  # each method's own loops draw their bars inside
        options = {"layer": layer} if layer is not None and METHODS[name].family == "cam" else {}
        if takes_seed(name):
            options["seed"] = seed
        options.update(per_method[name])
        used[name] = dict(options)
        try:
            if trust:
                from ..render import badge_strip

                maps[name], badge = attribute(loaded.model, x, name, target=target, trust=True, **options)
            else:
                maps[name] = attribute(loaded.model, x, name, target=target, **options)
        except (ValueError, TypeError) as e:
            if not every:  # a method the user named: its refusal is the command's error
                raise
            skipped[name] = error_line(e)  # --method all: a method that refuses this model is said, not fatal
            typer.echo(f"skipped {name}: {skipped[name]}", err=True)
            used.pop(name)
            continue
        heading = _heading(image.name, loaded, name, layer, target, label)
        if trust:
            save_picture(badge_strip(x, for_display(name, maps[name]), badge, title=heading), out / f"{name}-trust.png")
        save_picture(attribution_figure(x, for_display(name, maps[name]), title=heading), out / f"{name}.png")
        typer.echo(f"{name}: {out / (name + '.png')}")
        if trust:
            typer.echo(f"  trust: {badge.summary()}")
            badges[name] = badge.to_frame().iloc[0].to_dict()
    save_picture(panel(x, {n: for_display(n, a) for n, a in maps.items()},  # RISE minus its mean, as in the report
                       title=f"{image.name} · {loaded.name} · class {target} ({label})"), out / "panel.png")
    typer.echo(f"panel: {out / 'panel.png'}")
    from ..results import write_maps  # the raw maps and what made them, reloadable with seethrough.results.load

    arrays, scores = write_maps(out, maps, {"image": str(image), "model": loaded.name, "target": target, "label": label,
                                            "methods": list(maps), "options": used, "seed": seed,
                                            **({"trust": badges} if trust else {}),
                                            **({"skipped": skipped} if skipped else {})})
    typer.echo(f"maps: {arrays}; scores: {scores}")
