"""``see.embed``: every chosen layer of a model as a 2-D map of the data, with separation scores."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple, Sequence

import torch
from torch import nn

from ..results import ResultProtocol
from .collect import check_data, collect
from .project import METHODS, pca_reduce, project
from .scores import _check_labels, neighbor_scores


class Separation(NamedTuple):
    """Class separation in the layer's own space and in its 2-D embedding: leave-one-out
    k-NN accuracy and neighbour purity (see :mod:`seethrough.embed.scores`)."""

    knn: float
    knn_2d: float
    purity: float
    purity_2d: float


@dataclass
class Embedding(ResultProtocol):
    """The result of :func:`embed`: layer name → ``(N, 2)`` coordinates, labels alongside.

    ``features`` holds what was projected (after the optional PCA), ``dims`` each layer's
    original width, ``separation`` the k-NN scores (empty without labels).
    """

    coords: dict[str, torch.Tensor]
    labels: torch.Tensor | None
    method: str
    options: dict[str, Any]
    dims: dict[str, int]
    features: dict[str, torch.Tensor] = field(repr=False)
    separation: dict[str, Separation] = field(default_factory=dict)
    classes: list[str] | None = None
    seed: int | None = None

    def summary(self) -> str:
        sep = "".join(f"; {k}: k-NN accuracy {s.knn_2d:.2f} in 2-D" for k, s in self.separation.items()
                      if hasattr(s, "knn_2d"))
        n = len(next(iter(self.coords.values()))) if self.coords else 0
        return f"{self.method} embedding of {n} samples at {', '.join(self.coords)}{sep}"

    def to_frame(self):
        """One row per layer × sample: the 2-D coordinates and the label."""
        import pandas as pd

        rows = []
        for layer, c in self.coords.items():
            lab = self.labels.tolist() if self.labels is not None else [None] * len(c)
            rows += [{"layer": layer, "sample": i, "x": float(c[i, 0]), "y": float(c[i, 1]), "label": lab[i]}
                     for i in range(len(c))]
        return pd.DataFrame(rows)

    @property
    def layers(self) -> list[str]:
        return list(self.coords)

    def __getitem__(self, layer: str) -> torch.Tensor:
        if layer not in self.coords:
            raise KeyError(f"no embedding for layer {layer!r}; this result has {', '.join(self.coords)}")
        return self.coords[layer]


def embed(
    model: nn.Module,
    data: torch.Tensor | Sequence[torch.Tensor],
    layers: str | Sequence[str] | None = None,
    method: str = "tsne",
    *,
    labels: torch.Tensor | Sequence[int] | None = None,
    classes: Sequence[str] | None = None,
    pca: int | None = 50,
    perplexity: float = 30.0,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    k: int = 5,
    purity_k: int = 30,
    seed: int = 0,
    init: str = "pca",
    backend: str = "auto",
    n_jobs: int = 1,
    batch_size: int | str = "auto",
    progress: bool = True,
    scan: Any = None,
    **how: Any,
) -> Embedding:
    """Embed the activations of each of ``layers`` in 2-D (t-SNE, PCA or UMAP).

    ``data`` is a batch ``x`` (images in [0, 1], or any ``(N, ...)`` input the model takes)
    or a pair ``(x, labels)`` such as ``see.zoo.digits()``. ``layers``: names from
    ``see.layer_names(model)``, plus ``"input"`` and ``"output"``; None means ``"input"``
    and every top-level layer. Activations are collected in batches in one pass, flattened
    per sample, reduced to ``pca`` principal components (t-SNE/UMAP; None to skip) and
    projected with the same ``seed`` for every layer. With labels, ``separation[layer]``
    gives the leave-one-out ``k``-NN accuracy and the ``purity_k``-neighbour purity, in the
    layer's own space and in the embedding.

    ``model`` may be a :class:`~seethrough.boundary.Boundary`, and ``how`` takes its fields
    (``kind=``, ``extra={"attention_mask": mask}``, ``output=``; docs/boundary.md): for token ids,
    each ``(N, L, D)`` layer is the mean over each sequence's real tokens (mask nonzero, else ids
    other than ``pad_id``, else all), and ``"input"`` is the embedding's output pooled the same way.

    >>> import seethrough as see
    >>> x, y = see.zoo.digits("test")
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> e = see.embed(model, (x[:120], y[:120]), ["input", "fc3"], "pca", progress=False)
    >>> e["fc3"].shape, e.separation["fc3"].purity > e.separation["input"].purity
    (torch.Size([120, 2]), True)

    ``scan=``: embed the reservoir sample of a ``see.scan`` result (or a stored scan's folder)
    instead of a pass over ``data`` (model and data may be None; labels come from the scan).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(map(repr, METHODS))}")
    acts = None
    if scan is not None:  # x becomes the sampled example ids
        from ..scan.views import embed_features

        acts, x, labels, classes = embed_features(scan, layers, labels, classes)
    else:
        x, labels = _split(data, labels)
    if labels is not None:
        labels = _check_labels(labels, len(x))
    if classes is not None:
        classes = [str(c) for c in classes]
    if acts is None:
        acts = collect(model, x, layers, batch_size=batch_size, progress=progress, **how)
    coords, feats, dims, sep = {}, {}, {}, {}
    for name, a in acts.items():
        try:
            reduced = pca_reduce(a, pca if method != "pca" else None, seed=seed)
            coords[name] = project(reduced, method, seed=seed, perplexity=perplexity, pca=None, n_neighbors=n_neighbors,
                                   min_dist=min_dist, init=init, backend=backend, n_jobs=n_jobs, progress=progress)
        except ValueError as e:
            raise ValueError(f"layer {name!r}: {e}") from None
        feats[name], dims[name] = reduced, a.shape[1]
        if labels is not None and len(x) > k:
            sep[name] = Separation(*_interleave(neighbor_scores(a, labels, k, purity_k), neighbor_scores(coords[name], labels, k, purity_k)))
    options = {"pca": pca, "seed": seed, "k": k, "purity_k": purity_k}
    options.update({"tsne": {"perplexity": perplexity, "init": init, "backend": backend}, "umap": {"n_neighbors": n_neighbors, "min_dist": min_dist}}.get(method, {}))
    return Embedding(coords, labels, method, options, dims, feats, sep, classes, seed=seed)


def _interleave(orig: tuple[float, float], flat: tuple[float, float]) -> tuple[float, ...]:
    return orig[0], flat[0], orig[1], flat[1]


def _split(data: object, labels: object) -> tuple[torch.Tensor, object]:
    if isinstance(data, (tuple, list)):
        if len(data) != 2:
            raise ValueError(f"data must be a tensor x or a pair (x, labels), got a {type(data).__name__} of {len(data)} items")
        if labels is not None:
            raise ValueError("labels given twice: in data=(x, labels) and as labels=; give them once")
        data, labels = data
    return check_data(data, name="data"), labels
