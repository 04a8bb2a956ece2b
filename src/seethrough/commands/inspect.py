"""``seethrough filters``, ``activations``, ``stats``, ``topk`` and ``hyperplanes``: looking inside."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .base import (
    ArchOpt, ModelOpt, ShaOpt, UnsafeOpt, app, layer_option, load, no_input, one_layer, out_dir, out_option, renamed,
    seed_option, top_option,
)

LayerOpt = layer_option(..., one=True)
DataOpt = typer.Option("auto", "--data", help="digits (scikit-learn digits), photos (tiles of the bundled photos) or "
                                             "auto (digits for 1-channel models, else photos)")


def _dataset(loaded, data: str):
    from .. import zoo
    from ..inspect.data import photo_tiles

    if data == "auto":
        data = "digits" if getattr(loaded.preprocess, "grayscale", False) else "photos"
    if data == "digits":
        return zoo.digits("all")[0]
    if data == "photos":
        return photo_tiles(loaded.preprocess if hasattr(loaded.preprocess, "crop") else None)
    raise ValueError(f"--data must be digits, photos or auto, got {data!r}")


def _save(picture, out: Path) -> None:
    if hasattr(picture, "savefig"):
        picture.savefig(out, dpi=110)
    else:
        from ..render import save_picture

        save_picture(picture, out)  # a PNG keeps its title and labels in its text chunks
    typer.echo(f"wrote {out}")


def _raw(folder: Path, name: str, result, **how) -> None:
    """The command's numbers beside its picture (seethrough.raw.save_raw), said in its last line."""
    from ..raw import save_raw

    typer.echo(save_raw(folder, name, result, **how))


@app.command()
@no_input
def filters(
    layer: list[str] = LayerOpt,
    out: Path = out_option("filters", "filters.png, filters.npz/.json (the weights)"),
    model: str = ModelOpt,
    arch: Optional[str] = ArchOpt,
    unsafe_pickle: bool = UnsafeOpt,
    sha256: Optional[str] = ShaOpt,
    n_filters: Optional[int] = typer.Option(None, "--filters", help="show the first N filters (default: all)"),
    channels: Optional[int] = renamed("--in-channels", "--channels", None, "show the first K input channels of the "
                                      "weights (default: all); --channels describes a model's input elsewhere"),
):
    """Save the filters of a conv LAYER as an image grid (RGB for a first layer on colour input)."""
    from ..inspect import filters as _filters
    from ..render import filter_figure

    layer = one_layer(layer, "filters")
    loaded = load(model, arch, unsafe_pickle, sha256, probe=False)
    w = _filters(loaded.model, layer, filters=n_filters, channels=channels)
    title = f"{loaded.name} · {layer} · {w.shape[0]} filters × {w.shape[1]} input channels ({w.shape[2]}×{w.shape[3]})"
    _save(filter_figure(w, title=title), out_dir(out) / "filters.png")
    _raw(out, "filters", {"weight": w}, options={"layer": layer, "filters": n_filters, "channels": channels})


@app.command()
def activations(
    image: Path = typer.Argument(..., help="an image file, or a bundled photo's name (see `seethrough images`)"),
    layer: list[str] = LayerOpt,
    out: Path = out_option("activations", "activations.png, activations.npz/.json"),
    model: str = ModelOpt,
    arch: Optional[str] = ArchOpt,
    unsafe_pickle: bool = UnsafeOpt,
    sha256: Optional[str] = ShaOpt,
    n: Optional[int] = top_option(64, "how many channels to show (wide layers)", old="--n"),
    how: str = typer.Option("energy", "--how", help="energy (strongest), random (seeded) or first"),
    seed: int = seed_option("seed of --how random"),
):
    """Save every channel map (or the N strongest) of LAYER for IMAGE."""
    from ..inspect import activations as _activations
    from ..inspect import pick_channels
    from ..render import activation_figure

    layer = one_layer(layer, "activations")
    loaded = load(model, arch, unsafe_pickle, sha256)
    act = _activations(loaded.model, loaded.preprocess(image), layer)[layer][0]
    if act.dim() != 3:
        raise ValueError(f"layer {layer!r} outputs shape {tuple(act.shape)}, not channel maps (C, H, W); choose a conv layer")
    shown = pick_channels(act, n, how=how, seed=seed)
    title = f"{image.name} · {loaded.name} · {layer} · {len(shown)} of {act.shape[0]} channels ({how})"
    _save(activation_figure(act, shown, title=title), out_dir(out) / "activations.png")
    _raw(out, "activations", {"activation": act.unsqueeze(0), "shown": shown},
         options={"image": str(image), "layer": layer, "n": n, "how": how}, seed=seed if how == "random" else None)


@app.command()
def stats(
    layer: list[str] = layer_option(...),
    out: Optional[Path] = out_option(None, "histograms.png, stats.npz/.json/.csv (only when -o is given)"),
    model: str = ModelOpt,
    arch: Optional[str] = ArchOpt,
    unsafe_pickle: bool = UnsafeOpt,
    sha256: Optional[str] = ShaOpt,
    data: str = DataOpt,
):
    """Histogram, dead units and sparsity of each LAYER over a dataset."""
    from ..inspect import layer_stats
    from ..render import histogram_plot

    loaded = load(model, arch, unsafe_pickle, sha256)
    res = layer_stats(loaded.model, _dataset(loaded, data), layer)
    for name, s in res.items():
        typer.echo(f"{name:24s} samples {s.count:5d}  units {s.active.numel():5d}  dead {s.dead_fraction:6.1%}  "
                   f"sparsity {s.sparsity:6.1%}  mean {s.mean:9.4g}  std {s.std:9.4g}")
    if out is not None:
        import pandas as pd

        _save(histogram_plot(res, title=loaded.name), out_dir(out) / "histograms.png")
        table = pd.DataFrame([{"layer": name, "samples": s.count, "units": s.active.numel(), "dead": s.dead_fraction,
                               "sparsity": s.sparsity, "mean": s.mean, "std": s.std} for name, s in res.items()])
        _raw(out, "stats", dict(res), table=table, options={"layers": list(res), "data": data})


@app.command()
def topk(
    layer: list[str] = LayerOpt,
    out: Path = out_option("topk", "topk.png, topk.npz/.json/.csv"),
    model: str = ModelOpt,
    arch: Optional[str] = ArchOpt,
    unsafe_pickle: bool = UnsafeOpt,
    sha256: Optional[str] = ShaOpt,
    k: int = top_option(9, "how many top examples to show per channel", old="--k"),
    unit: Optional[int] = typer.Option(None, "--unit", help="one channel (default: the first --units channels)"),
    units: int = typer.Option(6, "--units", help="how many channels to show when --unit is not given"),
    data: str = DataOpt,
    projection: str = typer.Option("auto", "--projection", help="auto (deconvnet when available), deconvnet, guided-backprop, gradient or none"),
):
    """Top-K dataset examples of LAYER's channels: receptive-field crops beside their projections."""
    from ..inspect import topk as _topk
    from ..inspect import topk_examples
    from ..render import topk_caption, topk_figure

    layer = one_layer(layer, "topk")
    loaded = load(model, arch, unsafe_pickle, sha256)
    x = _dataset(loaded, data)
    res = _topk(loaded.model, x, layer, unit=unit, k=k)
    if res.boxes is None:
        for u, idx, val in zip(res.units.tolist(), res.indices.tolist(), res.values.tolist()):
            typer.echo(f"unit {u}: " + ", ".join(f"#{i} ({v:.3g})" for i, v in zip(idx, val)))
        _raw(out_dir(out), "topk", res)
        return
    show = res if unit is not None else res.head(units)
    c, p = topk_examples(loaded.model, x, show, projection=None if projection == "none" else projection)
    title = f"{loaded.name} · {layer} · top {k} of {len(x)} inputs ({data}) · projection: {projection}"
    _save(topk_figure(c, p, show, title=title, n_inputs=len(x)), out_dir(out) / "topk.png")
    for i, (u, idx) in enumerate(zip(show.units.tolist(), show.indices.tolist())):
        caption = topk_caption(u, show.values[i], len(x))  # a unit that never fires has no "top k" to list
        typer.echo(f"unit {u}: {caption.split(' · ', 1)[1]}" if "never fires" in caption else f"unit {u}: inputs {idx}")
    _raw(out, "topk", res)


@app.command()
def hyperplanes(
    out: Path = out_option("hyperplanes", "step-NNNNN.png frames, hyperplanes.gif, hyperplanes.npz/.json/.csv"),
    steps: int = typer.Option(1000, "--steps"),
    seed: int = seed_option("seed of the initial weights"),
):
    """Train mlp-2d and save each hidden unit's line over the decision regions, as frames and a GIF."""
    from ..inspect import hyperplanes as _hyperplanes
    from ..render import hyperplane_frames, save_gif

    run = _hyperplanes(steps=steps, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    frames = hyperplane_frames(run)
    for s, f in zip(run.snapshots, frames):
        f.save(out / f"step-{s.step:05d}.png")
    save_gif(frames, out / "hyperplanes.gif")
    typer.echo(f"wrote {len(frames)} frames and {out / 'hyperplanes.gif'}; final loss {run.snapshots[-1].loss:.3f}, "
               f"accuracy {run.snapshots[-1].accuracy:.1%}")
    _raw(out, "hyperplanes", run)
