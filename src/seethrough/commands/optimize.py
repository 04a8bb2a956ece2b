"""``seethrough visualize``, ``dream`` and ``invert``: optimising inputs from the command line."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..raw import save_raw
from .base import ArchOpt, ModelOpt, ShaOpt, UnsafeOpt, app, layer_option, load, out_dir, out_option, renamed, seed_option

SeedOpt = seed_option("random seed (noise, transforms)")


def _priors(tv: float, l2: float, edge: float) -> dict:
    return {k: v for k, v in (("tv", tv), ("l2", l2), ("edge", edge)) if v}


def _input_size(loaded, size: Optional[int]) -> tuple[int, int]:
    """The size to optimise at: --size, else the preprocessing's crop, else 224."""
    crop = getattr(loaded.preprocess, "crop", None)
    channels = 1 if getattr(loaded.preprocess, "grayscale", False) else None
    return size or crop or 224, channels


@app.command()
def visualize(
    objective: list[str] = typer.Argument(..., help="objectives, one image each: logit:C, logprob:C, channel:LAYER:C, "
                                                    "neuron:LAYER:C[:Y:X], layer:LAYER, direction:LAYER:v1,v2,…; "
                                                    "combine with + / - and k*"),
    out: Path = out_option("visualize", "visualize.png (the gallery), visualize.npz/.json/.csv"),
    model: str = ModelOpt,
    arch: Optional[str] = ArchOpt,
    unsafe_pickle: bool = UnsafeOpt,
    sha256: Optional[str] = ShaOpt,
    steps: int = typer.Option(128, "--steps"),
    size: Optional[int] = typer.Option(None, "--size", help="image side in px (default: the model's input size)"),
    param: str = typer.Option("fourier", "--param", help="fourier or pixel"),
    no_transforms: bool = typer.Option(False, "--no-transforms", help="no jitter/scale/rotate robustness"),
    tv: float = typer.Option(0.0, "--tv", help="total-variation weight"),
    l2: float = typer.Option(0.0, "--l2", help="L2 weight"),
    edge: float = typer.Option(0.0, "--edge", help="multi-scale edge-energy weight"),
    n: int = renamed("--per-objective", "--n", 1, "images per objective"),
    diversity: float = typer.Option(0.0, "--diversity", help="weight of the diversity term across the batch"),
    start: Optional[Path] = typer.Option(None, "--from", help="start from this image (a file or a bundled photo's name) instead of noise"),
    seed: int = SeedOpt,
):
    """Optimise images that maximise each OBJECTIVE and save them as a gallery."""
    from ..optimize import visualize as _visualize
    from ..render import gallery

    loaded = load(model, arch, unsafe_pickle, sha256)
    side, channels = _input_size(loaded, size)
    init = loaded.preprocess(start) if start is not None else None
    res = _visualize(loaded.model, list(objective), n_samples=n, size=None if init is not None else side, channels=channels,
                     param=param, init=init, steps=steps, transforms=None if no_transforms else "standard",
                     priors=_priors(tv, l2, edge), diversity=diversity, seed=seed)
    titles = _titles(loaded, res.names, res.x)
    out = out_dir(out) / "visualize.png"
    gallery(res.x, titles, title=f"{loaded.name} · {param} · {steps} steps · seed {seed}").save(out)
    for obj, seen, first, last in zip(res.names, titles, res.trace[:, 0].tolist(), res.trace[:, -1].tolist()):
        typer.echo(f"{obj}: objective {first:.3g} → {last:.3g}; model predicts {seen[2:]}")
    typer.echo(f"wrote {out}")
    typer.echo(save_raw(out.parent, "visualize", res))  # the images as optimised, the traces, the settings


def _titles(loaded, names, x) -> list[str]:
    from ..hooks import forward

    pred = forward(loaded.model, x).argmax(1).tolist() if x.shape[0] else []  # eval mode, model left as found
    labels = loaded.labels
    return [f"→ {labels[p] if labels and p < len(labels) else p}"[:28] for p in pred]


@app.command()
def dream(
    image: Path = typer.Argument(..., help="a photo file (any PIL-readable format) or a bundled photo's name (`seethrough images`)"),
    layer: list[str] = layer_option(["blocks.10"], help="layer(s) whose ‖h‖² to amplify: repeat -l or separate by commas"),
    out: Path = out_option("dream", "dream.png, dream.npz/.json/.csv"),
    model: str = ModelOpt,
    arch: Optional[str] = ArchOpt,
    unsafe_pickle: bool = UnsafeOpt,
    sha256: Optional[str] = ShaOpt,
    steps: int = typer.Option(10, "--steps", help="steps per octave"),
    octaves: int = typer.Option(3, "--octaves"),
    step_size: float = typer.Option(0.01, "--step-size"),
    seed: int = SeedOpt,
):
    """DeepDream: amplify what LAYER sees in IMAGE; writes the dreamt image."""
    from ..optimize import dream as _dream
    from ..zoo import to_image

    loaded = load(model, arch, unsafe_pickle, sha256)
    x = loaded.preprocess(image)
    res = _dream(loaded.model, x, list(layer), steps=steps, octaves=octaves, step_size=step_size, seed=seed)
    out = out_dir(out) / "dream.png"
    to_image(res.x[0]).save(out)
    typer.echo(f"‖h‖² {res.trace[0, 0].item():.3g} → {res.trace[0, -1].item():.3g}; wrote {out}")
    typer.echo(save_raw(out.parent, "dream", res))


@app.command()
def invert(
    image: Path = typer.Argument(..., help="a photo file (any PIL-readable format) or a bundled photo's name (`seethrough images`)"),
    layer: list[str] = layer_option(..., help="layer(s) to invert, one image per depth: repeat -l or separate by commas"),
    out: Path = out_option("invert", "invert.png (the original, then one reconstruction per layer), invert.npz/.json"),
    model: str = ModelOpt,
    arch: Optional[str] = ArchOpt,
    unsafe_pickle: bool = UnsafeOpt,
    sha256: Optional[str] = ShaOpt,
    steps: int = typer.Option(200, "--steps"),
    tv: float = typer.Option(3.0, "--tv", help="weight of the normalised TV prior at a layer seeing the whole image "
                                                "(shallower layers get less; about 0.1 for digit-sized models)"),
    alpha: float = typer.Option(1.0, "--alpha", help="weight of the α-norm prior (α = 6)"),
    l2: float = typer.Option(0.0, "--l2", help="weight of an extra L2 prior"),
    seed: int = SeedOpt,
):
    """Feature inversion (Mahendran & Vedaldi): reconstruct IMAGE from its representation at each LAYER."""
    import torch

    from ..optimize import invert as _invert
    from ..render import gallery

    loaded = load(model, arch, unsafe_pickle, sha256)
    x = loaded.preprocess(image)
    results = _invert(loaded.model, x, list(layer), steps=steps, tv=tv, alpha=alpha, priors=_priors(0.0, l2, 0.0), seed=seed)
    titles = ["original"]
    for r in results:
        sim = "" if r.similarity is None else f" SSIM {r.similarity[0].item():.2f}"
        titles.append(f"{r.layer}{sim}")
        typer.echo(f"{r.layer}: distance {r.trace[0, 0].item():.3g} → {r.trace[0, -1].item():.3g};{sim or ' (too small for SSIM)'}")
    out = out_dir(out) / "invert.png"
    gallery(torch.cat([x, *(r.x for r in results)]), titles, title=f"{loaded.name} · inversion · {steps} steps").save(out)
    typer.echo(f"wrote {out}")
    typer.echo(save_raw(out.parent, "invert", {"original": x, **{r.layer: r for r in results}},
                        options={"image": str(image), "layers": [r.layer for r in results], "steps": steps, "tv": tv,
                                 "alpha": alpha, "l2": l2}, seed=seed))
