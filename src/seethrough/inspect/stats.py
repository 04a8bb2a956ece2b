"""Layer statistics over a dataset: histogram, dead units and sparsity, as map + merge.

:func:`batch_stats` maps one batch of activations to a :class:`LayerStats`;
:func:`merge_stats` is associative (and commutative), so a dataset can be split
anywhere - across batches, processes or a Dask cluster - and the parts merged in any
grouping give the same counts as one pass.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterable

import torch
from torch import nn

from ..results import ResultProtocol, records
from ..batching import model_key
from ..boundary import Boundary, capture, token_states
from ..layers import resolve_layers
from .data import Data, scan as stream, with_boundary  # not `scan`: that is the scan= parameter


def default_edges() -> torch.Tensor:
    """Histogram bin edges that suit any layer without a first pass: ±10⁻⁴…10⁴, log-spaced.

    Fixed edges are what make histograms mergeable; values beyond the ends are counted in
    the end bins, values in (-10⁻⁴, 10⁻⁴) in the two bins around zero.

    >>> e = default_edges()
    >>> e.shape, e[0].item(), e[81].item(), e[-1].item()
    (torch.Size([163]), -10000.0, 0.0, 10000.0)
    """
    pos = torch.logspace(-4, 4, 81, dtype=torch.float64)
    return torch.cat([-pos.flip(0), torch.zeros(1, dtype=torch.float64), pos])


@dataclass(frozen=True)
class LayerStats(ResultProtocol):
    """Mergeable statistics of one layer's activations.

    ``count``: samples seen; ``edges``/``hist``: value histogram; ``active``: per unit
    (channel of a conv map, feature of a vector) the number of samples on which it was
    active (above ``threshold`` somewhere); ``above``/``values``: activation values above
    ``threshold`` and in all; ``total``/``total_sq``/``low``/``high``: moments and range.
    """

    count: int
    edges: torch.Tensor
    hist: torch.Tensor
    active: torch.Tensor
    above: int
    values: int
    total: float
    total_sq: float
    low: float
    high: float
    threshold: float = 0.0
    options: dict = field(default_factory=dict)
    seed: int | None = None

    @property
    def dead(self) -> torch.Tensor:
        """Boolean mask of the units never active on any sample."""
        return self.active == 0

    @property
    def dead_fraction(self) -> float:
        return self.dead.double().mean().item()

    @property
    def sparsity(self) -> float:
        """Fraction of activation values at or below ``threshold`` (exactly 0 after a ReLU)."""
        return 1.0 - self.above / self.values

    @property
    def mean(self) -> float:
        return self.total / self.values

    @property
    def std(self) -> float:
        return max(self.total_sq / self.values - self.mean**2, 0.0) ** 0.5


def batch_stats(acts: torch.Tensor, *, edges: torch.Tensor | None = None, threshold: float = 0.0) -> LayerStats:
    """The map step: statistics of one batch of activations ``(N, units, ...)``.

    >>> s = batch_stats(torch.tensor([[0.0, 2.0], [0.0, 3.0]]))
    >>> s.dead.tolist(), s.sparsity, s.mean
    ([True, False], 0.5, 1.25)
    """
    if acts.dim() < 2 or acts.shape[0] == 0:
        raise ValueError(f"activations must be (N, units, ...) with N >= 1, got shape {tuple(acts.shape)}")
    edges = default_edges() if edges is None else torch.as_tensor(edges, dtype=torch.float64)
    if edges.dim() != 1 or edges.numel() < 2 or not bool((edges[1:] > edges[:-1]).all()):
        raise ValueError("edges must be a 1-D increasing tensor with at least 2 entries")
    a = acts.detach().to(torch.float64)
    flat = a.flatten()
    # bucketize with right=True puts v in bin i when edges[i] <= v < edges[i+1].
    bins = (torch.bucketize(flat, edges.to(flat.device), right=True) - 1).clamp_(0, edges.numel() - 2)
    hist = torch.bincount(bins, minlength=edges.numel() - 1).cpu()
    per_unit = a.flatten(2).amax(2) if a.dim() > 2 else a
    return LayerStats(
        count=a.shape[0], edges=edges.cpu(), hist=hist,
        active=(per_unit > threshold).sum(0).cpu(), above=int((flat > threshold).sum()), values=flat.numel(),
        total=flat.sum().item(), total_sq=(flat * flat).sum().item(),
        low=flat.min().item(), high=flat.max().item(), threshold=float(threshold),
    )


def merge_stats(a: LayerStats, b: LayerStats) -> LayerStats:
    """The reduce step: statistics of the union of two disjoint parts (associative).

    >>> x = torch.randn(6, 3, 4, 4, generator=torch.Generator().manual_seed(0)).relu()
    >>> m = merge_stats(batch_stats(x[:2]), batch_stats(x[2:]))
    >>> torch.equal(m.hist, batch_stats(x).hist), m.count
    (True, 6)
    """
    if a.threshold != b.threshold or not torch.equal(a.edges, b.edges):
        raise ValueError("can only merge statistics computed with the same edges and threshold")
    if a.active.shape != b.active.shape:
        raise ValueError(f"can only merge statistics of the same layer: {a.active.numel()} vs {b.active.numel()} units")
    return replace(
        a, count=a.count + b.count, hist=a.hist + b.hist, active=a.active + b.active,
        above=a.above + b.above, values=a.values + b.values, total=a.total + b.total,
        total_sq=a.total_sq + b.total_sq, low=min(a.low, b.low), high=max(a.high, b.high),
    )


@records("model", "data", "scan")
def layer_stats(
    model: nn.Module | Boundary,
    data: Data,
    layers: str | Iterable[str],
    *,
    threshold: float = 0.0,
    edges: torch.Tensor | None = None,
    batch_size: int | str = "auto",
    progress: bool = True,
    scan: object = None,
    **how: Any,
) -> dict[str, LayerStats]:
    """One batched pass over ``data`` giving each layer's :class:`LayerStats`.

    ``data``: a tensor ``(N, ...)``, a Dataset, or an iterable of batches (``x`` or ``(x, y)``):
    images in [0, 1], tabular rows, token ids or any tensor. ``model`` is an ``nn.Module`` or a
    :class:`~seethrough.boundary.Boundary`; ``how`` takes the boundary's fields (``kind=``,
    ``extra=`` with one row per sample of ``data``, ...). A layer with a tuple or dict output is
    read by its first tensor. A unit is a conv map's channel, a vector's feature, or a hidden
    feature of ``(N, L, D)`` token states (active if above ``threshold`` at any token).

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> x, _ = see.zoo.digits("test")
    >>> s = see.layer_stats(model, x, ["relu1", "relu3"], progress=False)
    >>> s["relu1"].count, 0.0 < s["relu3"].sparsity < 1.0
    (360, True)

    ``scan=``: read a ``see.scan`` result (or a stored scan's folder) with the ``hist``, ``dead``
    and ``moments`` accumulators instead of passing over ``data`` (model and data may be None).
    """
    if scan is not None:
        from ..scan.views import stats_from_scan

        if edges is not None:
            raise ValueError("edges= cannot be changed when reading a scan (it used the default edges)")
        return stats_from_scan(scan, layers, threshold=threshold)
    names = [layers] if isinstance(layers, str) else list(layers)
    if not names:
        raise ValueError("layers is empty: name at least one layer (see seethrough.layer_names(model))")
    edges = default_edges() if edges is None else torch.as_tensor(edges, dtype=torch.float64)
    result: dict[str, LayerStats] = {}
    b, data = with_boundary(model, data, how)

    def map_fn(x: torch.Tensor, rows: torch.Tensor) -> dict[str, LayerStats]:
        rec = capture(b, x, names, rows)
        out = {}
        for n in names:
            # Token states (N, L, D): a unit is a hidden feature, active if above threshold at any token.
            acts = [c.transpose(1, 2) if token_states(b, x, c) else c for c in rec.activations[n]]
            parts = [batch_stats(c, edges=edges, threshold=threshold) for c in acts]
            out[n] = parts[0] if len(parts) == 1 else _merge_all(parts)
        return out

    def reduce_fn(start: int, part: dict[str, LayerStats]) -> None:
        for n, s in part.items():
            result[n] = merge_stats(result[n], s) if n in result else s

    resolve_layers(b.model, names)  # unknown names fail before any work
    key = model_key(b.model, data, "stats") if isinstance(data, torch.Tensor) else None
    stream(data, map_fn, reduce_fn, batch_size=batch_size, key=key, progress=progress, desc="layer stats", boundary=b)
    return result


def _merge_all(parts: list[LayerStats]) -> LayerStats:
    out = parts[0]
    for p in parts[1:]:
        out = merge_stats(out, p)
    return out


def _train_lenet():
    # The LeNet training function lives in the zoo (module being renamed digits → lenet).
    try:
        from ..zoo.lenet import train_lenet
    except ImportError:
        from ..zoo.lenet import train_lenet
    return train_lenet


def sparsity_during_training(
    layers: Iterable[str] = ("relu1", "relu2", "relu3", "relu4"),
    *,
    epochs: int = 12,
    seed: int = 0,
    data: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Train a fresh lenet-digits and record each layer's sparsity after every epoch.

    Returns ``{layer: (epochs + 1,)}``; entry 0 is the initialisation. ``data`` defaults to
    the test digits.

    >>> curves = sparsity_during_training(["relu1"], epochs=0)
    >>> curves["relu1"].shape
    torch.Size([1])
    """
    from .. import zoo

    names = list(layers)
    x = zoo.digits("test")[0] if data is None else data
    curves: dict[str, list[float]] = {n: [] for n in names}

    def on_epoch(model: nn.Module, epoch: int) -> None:
        for n, s in layer_stats(model, x, names, progress=False).items():
            curves[n].append(s.sparsity)

    _train_lenet()(epochs=epochs, seed=seed, on_epoch=on_epoch)
    return {n: torch.tensor(c, dtype=torch.float64) for n, c in curves.items()}
