"""Writing embeddings out: TSV files for the TensorFlow Embedding Projector, and JSON.

The Projector (projector.tensorflow.org → "Load") takes a vectors TSV (one sample per row,
tab-separated, no header) and a metadata TSV (a header row when there is more than one
column). ``projector_config.json`` points a self-hosted Projector at all layers at once.
"""
from __future__ import annotations

import json
from pathlib import Path

from .core import Embedding


def to_projector(result: Embedding, folder: str | Path, layers: list[str] | None = None) -> list[Path]:
    """Write ``<layer>.tsv`` (the projected features: after the optional PCA), one
    ``metadata.tsv`` and ``projector_config.json`` into ``folder``; return the paths.

    >>> import tempfile, torch, seethrough as see
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4))
    >>> x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    >>> e = see.embed(net, (x, [0, 1] * 4), ["input"], "pca", progress=False)
    >>> [p.name for p in to_projector(e, tempfile.mkdtemp())]
    ['input.tsv', 'metadata.tsv', 'projector_config.json']
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    layers = _check(result, layers)
    paths, config = [], []
    for name in layers:
        f = result.features[name]
        path = folder / f"{name}.tsv"
        path.write_text("".join("\t".join(f"{v:.6g}" for v in row) + "\n" for row in f.tolist()), encoding="utf-8")
        paths.append(path)
        config.append({"tensorName": name, "tensorShape": list(f.shape), "tensorPath": path.name, "metadataPath": "metadata.tsv"})
    meta = folder / "metadata.tsv"
    meta.write_text(_metadata(result), encoding="utf-8")
    cfg = folder / "projector_config.json"
    cfg.write_text(json.dumps({"embeddings": config}, indent=1), encoding="utf-8")
    return [*paths, meta, cfg]


def _metadata(result: Embedding) -> str:
    n = len(next(iter(result.coords.values())))
    if result.labels is None:  # a single column: the Projector wants no header then
        return "".join(f"{i}\n" for i in range(n))
    rows = ["index\tlabel" + ("\tclass" if result.classes else "")]
    for i, y in enumerate(result.labels.tolist()):
        rows.append(f"{i}\t{y}" + (f"\t{_class(result, y)}" if result.classes else ""))
    return "\n".join(rows) + "\n"


def _class(result: Embedding, y: int) -> str:
    return result.classes[y] if result.classes and y < len(result.classes) else str(y)


def as_dict(result: Embedding, layers: list[str] | None = None) -> dict:
    """Everything a viewer needs, in plain JSON types: coordinates, labels, scores, options."""
    layers = _check(result, layers)
    return {
        "method": result.method,
        "options": result.options,
        "n": len(result.coords[layers[0]]),
        "labels": None if result.labels is None else result.labels.tolist(),
        "classes": result.classes,
        "layers": [
            {
                "name": name,
                "dims": result.dims[name],
                "coords": [[round(a, 5), round(b, 5)] for a, b in result.coords[name].tolist()],
                **({"separation": result.separation[name]._asdict()} if name in result.separation else {}),
            }
            for name in layers
        ],
    }


def to_json(result: Embedding, path: str | Path, layers: list[str] | None = None) -> Path:
    """Write :func:`as_dict` to ``path`` (the web explorer's format); return the path.

    >>> import tempfile, torch, seethrough as see
    >>> x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    >>> e = see.embed(torch.nn.Linear(3, 2), x, ["input"], "pca", progress=False)
    >>> import json; json.loads(to_json(e, tempfile.mktemp(suffix=".json")).read_text())["layers"][0]["dims"]
    3
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(as_dict(result, layers)), encoding="utf-8")
    return path


def _check(result: Embedding, layers: list[str] | None) -> list[str]:
    if not isinstance(result, Embedding):
        raise TypeError(f"expected the Embedding returned by see.embed, got {type(result).__name__}")
    if layers is None:
        return result.layers
    unknown = [n for n in layers if n not in result.coords]
    if unknown:
        raise ValueError(f"layers {unknown} are not in this embedding; it has {', '.join(result.layers)}")
    return list(layers)
