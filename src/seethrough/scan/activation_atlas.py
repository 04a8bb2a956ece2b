"""Activation atlases (Carter, Armstrong, Schubert, Johnson & Olah, Distill 2019).

A layer's activation vectors at sampled spatial positions (the ``positions`` accumulator: a
seeded choice of positions per image, kept by the smallest seeded hash, so the sample does not
depend on batching or on the engine) are laid out in 2-D (UMAP; openTSNE's t-SNE when umap-learn
is not installed), a ``grid``×``grid`` grid is laid over the layout, and every cell holding at
least ``min_count`` samples gets the mean of its activation vectors and a feature visualisation
of that mean (the ``direction`` objective, ⟨h, v⟩/‖v‖ averaged over positions, cells optimised
in batches). A *class* atlas keeps only the samples from images the model
predicts as that class, on the same layout (so it lines up with the full atlas); the paper
instead weights samples by their attribution to the class - not done here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..results import ResultProtocol
from .accumulators import _Base, example_keys, register, units_view


@register("positions")
class Positions(_Base):
    """A uniform sample of ``size`` activation vectors at spatial positions: ``per_example`` distinct
    positions of each example's map, drawn by a generator seeded with ``(seed, id)``, kept when their
    key (a seeded hash of ``id·per_example + j``) is among the ``size`` smallest. ``ids (m,)``,
    ``pos (m,)`` flat positions, ``acts (m, U)`` float32, ``labels (m,)`` (-1 unknown), sorted by key.

    >>> a, b = Positions(size=3, per_example=2), Positions(size=3, per_example=2)
    >>> x = torch.arange(32.).view(4, 2, 2, 2)
    >>> a.add(x[:2], torch.arange(2)); b.add(x[2:], torch.arange(2, 4))
    >>> a.merge(b).acts.shape
    (3, 2)
    """

    needs_labels = True
    _arrays = ("ids", "pos", "keys", "acts", "labels")

    def __init__(self, size: int = 4000, per_example: int = 1, seed: int = 0):
        for what, v in (("size", size), ("per_example", per_example)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{what} must be a positive int, got {v!r}")
        self.size, self.per_example, self.seed = size, per_example, int(seed)
        self.ids = self.pos = self.keys = self.acts = self.labels = None

    def options(self) -> dict[str, Any]:
        return {"size": self.size, "per_example": self.per_example, "seed": self.seed}

    def add(self, acts: torch.Tensor, ids: torch.Tensor, labels: torch.Tensor | None = None, **extra: Any) -> None:
        v = units_view(acts.detach()).float()  # (B, U, P)
        p = v.shape[2]
        per = min(self.per_example, p)
        ids_np = ids.numpy().astype(np.int64)
        pos = np.stack([torch.randperm(p, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + int(i)))[:per].numpy()
                        for i in ids_np])  # (B, per): depends on the example's id only
        rows = np.repeat(np.arange(len(ids_np)), per)
        other = Positions(**self.options())
        other.ids, other.pos = ids_np[rows], pos.reshape(-1).astype(np.int64)
        other.keys = example_keys(other.ids * self.per_example + np.tile(np.arange(per), len(ids_np)), self.seed)
        other.acts = v[torch.from_numpy(rows), :, torch.from_numpy(other.pos)].numpy()
        lab = labels.numpy().astype(np.int64) if labels is not None else np.full(len(ids_np), -1, np.int64)
        other.labels = lab[rows]
        other._trim()
        self.merge(other)

    def _trim(self) -> None:
        take = np.argsort(self.keys, kind="stable")[: self.size]
        for a in self._arrays:
            setattr(self, a, getattr(self, a)[take])

    def merge(self, other: "Positions") -> "Positions":
        self._check_same(other)
        if other.ids is None:
            return self
        if self.ids is None:
            for a in self._arrays:
                setattr(self, a, getattr(other, a).copy())
            return self
        if self.acts.shape[1] != other.acts.shape[1]:
            raise ValueError(f"cannot merge samples of {self.acts.shape[1]} and {other.acts.shape[1]} units")
        for a in self._arrays:
            setattr(self, a, np.concatenate([getattr(self, a), getattr(other, a)]))
        self._trim()
        return self


@dataclass
class ActivationAtlas(ResultProtocol):
    """``layout (m, 2)`` in [0, 1]² of the ``m`` samples (``ids``, ``labels``, ``predicted``);
    per kept cell: ``cells (M, 2)`` (row from the top, col), ``counts (M,)``, ``means (M, U)``,
    ``images (M, C, H, W)`` and the optimisation's ``trace (M, steps)``; ``cls``: the predicted class the atlas is filtered to (None: all)."""

    layer: str
    grid: int
    layout: torch.Tensor
    ids: torch.Tensor
    labels: torch.Tensor
    predicted: torch.Tensor
    cells: torch.Tensor
    counts: torch.Tensor
    means: torch.Tensor
    images: torch.Tensor
    trace: torch.Tensor | None = None  # (M, steps): each cell's objective during the optimisation
    cls: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None

    @property
    def options(self) -> dict[str, Any]:
        """The result protocol's name for ``settings`` (the same dict)."""
        return self.settings

    def summary(self) -> str:
        return (f"activation atlas of {self.layer}: {len(self.layout)} samples on a {self.grid}×{self.grid} grid, "
                f"{len(self.cells)} cells kept")

    def to_frame(self):
        """One row per kept cell: its row, column and sample count."""
        import pandas as pd

        return pd.DataFrame({"cell": range(len(self.cells)), "row": self.cells[:, 0].tolist(),
                             "col": self.cells[:, 1].tolist(), "count": self.counts.tolist()})

    def image(self, cell: int = 64, counts: bool = False):
        """The atlas as one PIL image (``grid·cell`` px square)."""
        from ..render.scan import activation_atlas_image

        return activation_atlas_image(self.images, self.cells, self.grid, cell=cell, counts=self.counts if counts else None)


def layout(acts: torch.Tensor, method: str = "umap", *, seed: int = 0) -> tuple[torch.Tensor, str]:
    """``(m, U)`` → ``(m, 2)`` coordinates scaled to [0, 1]² and the method used: ``"umap"`` falls back to
    openTSNE's t-SNE when umap-learn is missing; ``"tsne"`` and ``"pca"`` as asked.

    >>> xy, used = layout(torch.randn(30, 4, generator=torch.Generator().manual_seed(0)), "pca")
    >>> used, bool(xy.min() == 0 and xy.max() == 1)
    ('pca', True)
    """
    from ..embed.project import project

    if method not in ("umap", "tsne", "pca"):
        raise ValueError(f"method must be 'umap', 'tsne' or 'pca', got {method!r}")
    if method == "umap":
        try:
            import umap  # noqa: F401
        except ImportError:
            method = "tsne"
    xy = project(acts.double(), method, seed=seed).double()
    lo, hi = xy.min(0).values, xy.max(0).values
    return (xy - lo) / (hi - lo).clamp_min(1e-12), method


def predicted_classes(model: nn.Module, source, ids: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """The model's predicted class (argmax of its output) for the examples ``ids`` of ``source``."""
    from ..hooks import forward

    uniq = torch.unique(ids)
    out = torch.empty(len(uniq), dtype=torch.long)
    for a in range(0, len(uniq), batch_size):
        x = torch.stack([source[int(i)][0] for i in uniq[a:a + batch_size]])
        y = forward(model, x)
        if not isinstance(y, torch.Tensor) or y.dim() != 2:
            raise ValueError("a class atlas needs a classifier: a model returning (N, classes) scores")
        out[a:a + len(x)] = y.argmax(1)
    return out[torch.searchsorted(uniq, ids)]


def activation_atlas(model: nn.Module, scan_result, layer: str, *, grid: int = 20, min_count: int = 3,
                     method: str = "umap", cls: int | None = None, steps: int = 128, size: int | None = None,
                     seed: int = 0, batch_size: int | str = 16) -> ActivationAtlas:
    """The activation atlas of ``layer`` from a scan with the ``positions`` accumulator.

    ``grid``: cells per side; ``min_count``: the fewest samples a cell needs to be drawn; ``method``:
    the 2-D layout; ``cls``: keep only samples from images predicted as this class (same layout);
    ``steps``/``size``: the feature visualisation of each cell (default size: the scan's input size);
    ``batch_size``: cells optimised together (an int keeps a seed's pictures identical bit for bit;
    ``"auto"`` measures batch sizes, which moves the float round-off by ~1e-7).

    >>> import seethrough as see
    >>> from seethrough.scan.activation_atlas import activation_atlas
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> res = see.scan(model, see.scan.digits_source(), ["relu2"], ["positions"],
    ...                options={"positions": {"size": 400, "per_example": 2}}, batch_size=64, progress=False)
    >>> a = activation_atlas(model, res, "relu2", grid=4, method="pca", steps=4)
    >>> a.grid, a.images.shape[1:], int(a.counts.sum()) <= 400
    (4, torch.Size([1, 32, 32]), True)
    """
    from ..optimize import objectives as O
    from ..optimize import visualize
    from .atlas import check_model

    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 1:
        raise ValueError(f"grid must be a positive int (cells per side), got {grid!r}")
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
        raise ValueError(f"min_count must be a positive int, got {min_count!r}")
    if (layer, "positions") not in scan_result.accumulators:
        raise ValueError(f"the scan has no 'positions' accumulator for layer {layer!r}: scan with "
                         f"accumulators=('positions',) (layers scanned: {', '.join(scan_result.layers)})")
    check_model(scan_result, model)
    s = scan_result[layer, "positions"]
    if s.acts is None or len(s.acts) < 4:
        raise ValueError(f"the positions sample of {layer!r} holds {0 if s.acts is None else len(s.acts)} vectors; "
                         "an atlas needs at least 4")
    acts, ids = torch.from_numpy(s.acts).float(), torch.from_numpy(s.ids)
    xy, used = layout(acts, method, seed=seed)
    predicted = predicted_classes(model, scan_result.source, ids)
    keep = torch.ones(len(ids), dtype=torch.bool) if cls is None else predicted == int(cls)
    if not keep.any():
        raise ValueError(f"no sampled position comes from an image predicted as class {cls}")
    cell = (xy * grid).floor().long().clamp(0, grid - 1)
    flat = (grid - 1 - cell[:, 1]) * grid + cell[:, 0]  # row 0 at the top: y grows upwards
    counts = torch.bincount(flat[keep], minlength=grid * grid)
    sums = torch.zeros(grid * grid, acts.shape[1], dtype=torch.float64).index_add_(0, flat[keep], acts[keep].double())
    chosen = torch.nonzero(counts >= min_count).flatten()
    if not len(chosen):
        raise ValueError(f"no cell of the {grid}×{grid} grid holds {min_count} samples; lower min_count or grid")
    means = (sums[chosen] / counts[chosen, None]).float()
    shape = tuple(scan_result.input_shape)
    side = size or shape[-1]
    objs = [O.direction(layer, m) if bool(m.abs().sum() > 0) else O.channel(layer, 0) * 0.0 for m in means]
    v = visualize(model, objs, size=side, channels=shape[0], steps=steps, seed=seed, batch_size=batch_size)
    cells = torch.stack([chosen // grid, chosen % grid], 1)
    settings = {"method": used, "grid": grid, "min_count": min_count, "steps": steps, "seed": seed, "size": side,
                "samples": int(keep.sum()), "filter": "all images" if cls is None else f"images predicted as class {cls}",
                "objective": "direction (mean activation of the cell)"}
    return ActivationAtlas(layer, grid, xy.float(), ids, torch.from_numpy(s.labels), predicted, cells, counts[chosen],
                           means, v.x.detach(), v.trace.detach(), None if cls is None else int(cls), settings, seed=seed)
