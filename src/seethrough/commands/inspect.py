"""``seethrough filters``, ``activations``, ``stats``, ``topk`` and ``hyperplanes``: looking inside."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .base import ArchOpt, ModelOpt, ShaOpt, UnsafeOpt, app, load

LayerOpt = typer.Option(..., "--layer", "-l", help="layer name (see `seethrough layers`)")
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
        picture.save(out)
    typer.echo(f"wrote {out}")


@app.command()
def filters(
    layer: str = LayerOpt,
    out: Path = typer.Option(Path("filters.png"), "--out", "-o"),
    model: str = ModelOpt,
    arch: Optional[str] = ArchOpt,
    unsafe_pickle: bool = UnsafeOpt,
    sha256: Optional[str] = ShaOpt,
    n_filters: Optional[int] = typer.Option(None, "--filters", help="show the first N filters (default: all)"),
    channels: Optional[int] = typer.Option(None, "--channels", help="show the first K input channels (default: all)"),
):
    """Save the filters of a conv LAYER as an image grid (RGB for a first layer on colour input)."""
    from ..inspect import filters as _filters
    from ..render import filter_grid

    w = _filters(load(model, arch, unsafe_pickle, sha256, probe=False).model, layer, filters=n_filters, channels=channels)
    _save(filter_grid(w), out)


@app.command()
def activations(
    image: Path = typer.Argument(..., help="an image file"),
    layer: str = LayerOpt,
    out: Path = typer.Option(Path("activations.png"), "--out", "-o"),
    model: str = ModelOpt,
    arch: Optional[str] = ArchOpt,
    unsafe_pickle: bool = UnsafeOpt,
    sha256: Optional[str] = ShaOpt,
    n: Optional[int] = typer.Option(64, "--n", help="how many channels to show (wide layers)"),
    how: str = typer.Option("energy", "--how", help="energy (strongest), random (seeded) or first"),
    seed: int = typer.Option(0, "--seed"),
):
    """Save every channel map (or the N strongest) of LAYER for IMAGE."""
    from ..inspect import activations as _activations
    from ..inspect import pick_channels
    from ..render import channel_grid

    loaded = load(model, arch, unsafe_pickle, sha256)
    act = _activations(loaded.model, loaded.preprocess(image), layer)[layer][0]
    if act.dim() != 3:
        raise ValueError(f"layer {layer!r} outputs shape {tuple(act.shape)}, not channel maps (C, H, W); choose a conv layer")
    _save(channel_grid(act, pick_channels(act, n, how=how, seed=seed)), out)


@app.command()
def stats(
    layer: list[str] = typer.Option(..., "--layer", "-l", help="layer name (repeatable)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="also save the histograms as a PNG"),
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
        _save(histogram_plot(res, title=loaded.name), out)


@app.command()
def topk(
    layer: str = LayerOpt,
    out: Path = typer.Option(Path("topk.png"), "--out", "-o"),
    model: str = ModelOpt,
    arch: Optional[str] = ArchOpt,
    unsafe_pickle: bool = UnsafeOpt,
    sha256: Optional[str] = ShaOpt,
    k: int = typer.Option(9, "--k"),
    unit: Optional[int] = typer.Option(None, "--unit", help="one channel (default: the first --units channels)"),
    units: int = typer.Option(6, "--units", help="how many channels to show when --unit is not given"),
    data: str = DataOpt,
    projection: str = typer.Option("auto", "--projection", help="auto (deconvnet when available), deconvnet, guided-backprop, gradient or none"),
):
    """Top-K dataset examples of LAYER's channels: receptive-field crops beside their projections."""
    from ..inspect import topk as _topk
    from ..inspect import topk_examples
    from ..render import topk_grid

    loaded = load(model, arch, unsafe_pickle, sha256)
    x = _dataset(loaded, data)
    res = _topk(loaded.model, x, layer, unit=unit, k=k)
    if res.boxes is None:
        for u, idx, val in zip(res.units.tolist(), res.indices.tolist(), res.values.tolist()):
            typer.echo(f"unit {u}: " + ", ".join(f"#{i} ({v:.3g})" for i, v in zip(idx, val)))
        return
    show = res if unit is not None else res.head(units)
    c, p = topk_examples(loaded.model, x, show, projection=None if projection == "none" else projection)
    _save(topk_grid(c, p), out)
    for u, idx in zip(show.units.tolist(), show.indices.tolist()):
        typer.echo(f"unit {u}: inputs {idx}")


@app.command()
def hyperplanes(
    out: Path = typer.Option(Path("hyperplanes"), "--out", "-o", help="folder for the PNG frames and hyperplanes.gif"),
    steps: int = typer.Option(1000, "--steps"),
    seed: int = typer.Option(0, "--seed"),
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
