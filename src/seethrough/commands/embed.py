"""``seethrough embed``: t-SNE / PCA / UMAP maps of a model's layers, as a PNG (and TSV/JSON)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .base import ArchOpt, ShaOpt, UnsafeOpt, app, load

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


@app.command()
def embed(
    model: str = typer.Option("lenet-digits", "--model", "-m",
                              help="zoo name, package.module:factory, TorchScript file, or state dict (with --arch)"),
    arch: Optional[str] = ArchOpt,
    unsafe_pickle: bool = UnsafeOpt,
    sha256: Optional[str] = ShaOpt,
    layers: Optional[str] = typer.Option(None, "--layers", "-l", help="comma-separated layer names; 'input' and 'output' too "
                                         "(default: input and every top-level layer)"),
    method: str = typer.Option("tsne", "--method", help="tsne, pca or umap"),
    data: Optional[str] = typer.Option(None, "--data", help="'digits', 'photos' (random crops of the bundled photos) or a "
                                       "folder of images, labelled by sub-folder (default: digits for lenet-digits, else photos)"),
    n: int = typer.Option(0, "--n", help="digits: how many (0 = all 1797); photos: crops per photo (0 = 16)"),
    perplexity: float = typer.Option(30.0, "--perplexity"),
    pca: int = typer.Option(50, "--pca", help="principal components kept before t-SNE/UMAP (0 = none)"),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(Path("embed.png"), "--out", "-o", help="the figure (PNG)"),
    export: Optional[Path] = typer.Option(None, "--export", help="also write Embedding Projector TSVs and embed.json here"),
):
    """Draw each layer's activations as a 2-D map of the data, coloured by class."""
    from rich.console import Console
    from rich.table import Table

    import seethrough as see
    from seethrough.embed import to_json, to_projector

    kind = data or ("digits" if model == "lenet-digits" else "photos")
    digits = _digits(n) if kind == "digits" else None  # the data before the model: a cheap bad --n fails first
    loaded = load(model, arch, unsafe_pickle, sha256)
    x, y, classes, thumbs = digits or _data(kind, n, loaded, seed)
    names = [s.strip() for s in layers.split(",") if s.strip()] if layers else None
    try:
        result = see.embed(loaded.model, (x, y) if y is not None else x, names, method, classes=classes, pca=pca or None,
                           perplexity=perplexity, seed=seed)
    except ImportError as e:  # umap-learn missing: an install hint, not a traceback
        raise ValueError(str(e)) from None
    fig = see.render.embedding(result) if thumbs is None or len(result.layers) > 1 else \
        see.render.scatter(result[result.layers[0]], result.labels, classes=classes, thumbnails=thumbs, zoom=0.5)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    table = Table(title=f"{loaded.name} · {method} · {len(x)} samples")
    for col in ("layer", "dims", "k-NN acc.", "k-NN acc. 2-D", "purity", "purity 2-D"):
        table.add_column(col, justify="left" if col == "layer" else "right")
    for name in result.layers:
        s = result.separation.get(name)
        table.add_row(name, f"{result.dims[name]:,}", *(f"{v:.1%}" for v in s) if s else ["-"] * 4)
    Console().print(table)
    typer.echo(f"figure written to {out}")
    if export is not None:
        to_projector(result, export)
        to_json(result, export / "embed.json")
        typer.echo(f"Embedding Projector TSVs and embed.json written to {export}")


def _digits(n: int):
    import seethrough as see

    if n < 0:
        raise ValueError(f"--n must be >= 0, got {n}")
    x, y = see.zoo.digits("all")
    return x[:n or None], y[:n or None], [str(i) for i in range(10)], None


def _data(kind: str, n: int, loaded, seed: int):
    """``(x, labels or None, class names or None, thumbnails or None)`` for ``--data``."""
    import torch

    from seethrough.embed import photo_crops

    if n < 0:
        raise ValueError(f"--n must be >= 0, got {n}")
    if kind == "photos":
        x, y, names = photo_crops(n or 16, 128, seed=seed)
        return x, y, names, x
    folder = Path(kind)
    if not folder.is_dir():
        raise ValueError(f"--data must be 'digits', 'photos' or an existing folder of images, got {kind!r}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no images ({', '.join(sorted(_IMAGE_SUFFIXES))}) found under {folder}")
    x = torch.cat([loaded.preprocess(p) for p in files])
    groups = [p.parent.relative_to(folder).as_posix() for p in files]
    classes = sorted(set(groups))
    if len(classes) == 1:
        return x, None, None, x
    y = torch.tensor([classes.index(g) for g in groups])
    return x, y, classes, x
