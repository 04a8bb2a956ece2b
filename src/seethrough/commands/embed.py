"""``seethrough embed``: t-SNE / PCA / UMAP maps of a model's layers, as a PNG (and TSV/JSON)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .entry_options import chosen, spec_command
from .base import ArchOpt, ShaOpt, UnsafeOpt, app, layer_option, load, model_option, out_dir, out_option, renamed, seed_option

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


@app.command(cls=spec_command("projection"))
def embed(
    ctx: typer.Context,
    model: str = model_option("lenet-digits"),
    arch: Optional[str] = ArchOpt,
    unsafe_pickle: bool = UnsafeOpt,
    sha256: Optional[str] = ShaOpt,
    layers: Optional[list[str]] = layer_option(None, help="layer names, repeat -l or separate by commas; 'input' and "
                                               "'output' too (default: input and every top-level layer)", old="--layers"),
    method: str = typer.Option("tsne", "--method", help="the projection (listed below with its options)"),
    data: Optional[str] = typer.Option(None, "--data", help="'digits', 'photos' (random crops of the bundled photos) or a "
                                       "folder of images, labelled by sub-folder (default: digits for lenet-digits, else photos)"),
    n: int = renamed("--samples", "--n", 0, "digits: how many (0 = all 1797); photos: crops per photo (0 = 16)"),
    perplexity: float = typer.Option(30.0, "--perplexity"),
    pca: int = typer.Option(50, "--pca", help="principal components kept before t-SNE/UMAP (0 = none)"),
    seed: int = seed_option("seed of t-SNE/UMAP and of the photo crops"),
    out: Path = out_option("embed", "embed.png"),
    export: Optional[Path] = typer.Option(None, "--export", help="also write Embedding Projector TSVs and embed.json here"),
):
    """Draw each layer's activations as a 2-D map of the data, coloured by class.

    The projection's own options follow the command (`--init random --n-neighbors 30`): they are listed below.
    """
    from rich.console import Console
    from rich.table import Table

    import seethrough as see
    from seethrough.embed import to_json, to_projector

    from ..catalog import get

    get("projection", method)  # an unknown projection: one line listing the registered ones, before any work
    how = chosen(ctx, "projection", [method])[method]  # --seed, --pca, --perplexity are embed's own options
    kind = data or ("digits" if model == "lenet-digits" else "photos")
    digits = _digits(n) if kind == "digits" else None  # the data before the model: a cheap bad --n fails first
    loaded = load(model, arch, unsafe_pickle, sha256)
    x, y, classes, thumbs = digits or _data(kind, n, loaded, seed)
    names = layers or None  # already flattened: -l a,b -l c is [a, b, c]
    try:
        result = see.embed(loaded.model, (x, y) if y is not None else x, names, method, classes=classes, pca=pca or None,
                           perplexity=perplexity, seed=seed, **how)
    except ImportError as e:  # umap-learn missing: an install hint, not a traceback
        raise ValueError(str(e)) from None
    fig = see.render.embedding(result) if thumbs is None or len(result.layers) > 1 else \
        see.render.scatter(result[result.layers[0]], result.labels, classes=classes, thumbnails=thumbs, zoom=0.5)
    folder = out_dir(out)
    out = folder / "embed.png"
    fig.savefig(out, dpi=90)
    from ..results import write_result  # coordinates, labels, scores: embed.npz/.json/.csv, reloadable

    write_result(result, folder, "embed")
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
        raise ValueError(f"--samples must be >= 0, got {n}")
    x, y = see.zoo.digits("all")
    return x[:n or None], y[:n or None], [str(i) for i in range(10)], None


def _data(kind: str, n: int, loaded, seed: int):
    """``(x, labels or None, class names or None, thumbnails or None)`` for ``--data``."""
    import torch

    import seethrough as see
    from seethrough.embed import photo_crops

    if n < 0:
        raise ValueError(f"--samples must be >= 0, got {n}")
    if kind == "photos":
        x, y, names = photo_crops(n or 16, 128, seed=seed)
        if loaded.name not in see.zoo.models():  # your model: the crops at its --input-size and --channels
            x = torch.cat([loaded.preprocess(c[None]) for c in x])
        return x, y, names, x
    from .base import image_folder

    if not Path(kind).is_dir():
        raise ValueError(f"--data must be 'digits', 'photos' or an existing folder of images, got {kind!r}")
    x, y, classes, _ = image_folder(kind, loaded.preprocess, "--data")
    if y is not None and classes is None:  # numbered sub-folders: name the classes by their numbers
        classes = [str(i) for i in range(int(y.max()) + 1)]
    return x, y, classes, x
