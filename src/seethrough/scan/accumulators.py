"""Mergeable accumulators: one pass over a data set, split anywhere, merged in any order.

Each accumulator sees one layer's activations batch by batch (``add(acts, ids)``) and merges with
another built on a disjoint part of the data (``merge``), so a scan is map + merge and runs
unchanged on one process or a Dask cluster. States are integers or float64 (``state()`` is a
dict of numpy arrays, ``np.savez``-able; ``from_state`` rebuilds). Results do not depend on how
the data was split: top-k breaks ties by (value, smaller id), the reservoir keeps the examples
with the smallest seeded hash of their id, counts are integers; moments use Chan et al.'s
pairwise update in float64, which is commutative exactly and associative to round-off (~1e-15).

A *unit* is a channel of a ``(B, C, H, W)`` map, a feature of ``(B, U)`` or the last axis of a
``(B, L, D)`` sequence; its *positions* are the map's pixels or the sequence's tokens.

>>> import torch
>>> acts = torch.arange(12.).view(6, 2)
>>> a, b = make("topk", k=2), make("topk", k=2)
>>> a.add(acts[:3], torch.arange(3)); b.add(acts[3:], torch.arange(3, 6))
>>> a.merge(b).ids.tolist()
[[5, 4], [5, 4]]
"""
from __future__ import annotations

import json
from typing import Any, Callable, Protocol

import numpy as np
import torch

ACCUMULATORS: dict[str, Callable[..., "Accumulator"]] = {}


class Accumulator(Protocol):
    name: str
    needs_inputs: bool
    needs_labels: bool

    def add(self, acts: torch.Tensor, ids: torch.Tensor, **extra: Any) -> None: ...
    def merge(self, other: "Accumulator") -> "Accumulator": ...
    def state(self) -> dict[str, Any]: ...


def register(name: str) -> Callable[[type], type]:
    """Class decorator: add an accumulator to :data:`ACCUMULATORS` under ``name`` (also sets ``cls.name``).
    The class is built as ``cls(**options)`` and must define ``add``, ``merge``, ``state`` and a
    ``from_state`` classmethod."""

    def deco(cls: type) -> type:
        cls.name = name
        ACCUMULATORS[name] = cls
        return cls

    return deco


def make(name: str, **options: Any) -> "Accumulator":
    """A fresh accumulator from its registered name and options.

    >>> make("moments").name, make("topk", k=3).k
    ('moments', 3)
    """
    if name not in ACCUMULATORS:
        raise ValueError(f"unknown accumulator {name!r}; registered: {', '.join(sorted(ACCUMULATORS))}")
    try:
        return ACCUMULATORS[name](**options)
    except TypeError as e:
        raise ValueError(f"bad options for accumulator {name!r}: {e}") from None


def from_state(state: dict[str, Any]) -> "Accumulator":
    """Rebuild any registered accumulator from its ``state()`` (the name is stored inside)."""
    name = str(np.asarray(state["name"]))
    if name not in ACCUMULATORS:
        raise ValueError(f"stored accumulator {name!r} is not registered (import the module that defines it)")
    return ACCUMULATORS[name].from_state(state)


def units_view(acts: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` → ``(B, C, H·W)``; ``(B, U)`` → ``(B, U, 1)``; ``(B, L, D)`` → ``(B, D, L)``.

    >>> units_view(torch.zeros(2, 3, 4, 5)).shape, units_view(torch.zeros(2, 7, 3)).shape
    (torch.Size([2, 3, 20]), torch.Size([2, 3, 7]))
    """
    if acts.dim() == 2:
        return acts.unsqueeze(2)
    if acts.dim() == 3:
        return acts.transpose(1, 2)
    if acts.dim() == 4:
        return acts.flatten(2)
    raise ValueError(f"a scanned layer must output (B, U), (B, L, D) or (B, C, H, W), got shape {tuple(acts.shape)}")


def map_shape(acts: torch.Tensor) -> tuple[int, ...]:
    """The positions' shape of one example: ``(H, W)``, ``(L,)`` or ``()``."""
    return tuple(acts.shape[2:]) if acts.dim() == 4 else (tuple(acts.shape[1:2]) if acts.dim() == 3 else ())


class _Base:
    name = "base"
    needs_inputs = False
    needs_labels = False
    _arrays: tuple[str, ...] = ()

    def options(self) -> dict[str, Any]:
        return {}

    def state(self) -> dict[str, Any]:
        out = {"name": self.name, "options": json.dumps(self.options())}
        for a in self._arrays:
            v = getattr(self, a)
            if v is not None:
                out[a] = np.asarray(v)
        return out

    @classmethod
    def from_state(cls, state: dict[str, Any]):
        obj = cls(**json.loads(str(np.asarray(state["options"]))))
        for a in cls._arrays:
            if a in state:
                v = np.asarray(state[a])
                setattr(obj, a, v.copy() if v.ndim else v.item())
        return obj

    def _check_same(self, other: "_Base") -> None:
        if type(other) is not type(self) or other.options() != self.options():
            raise ValueError(f"cannot merge {other.name}{other.options()} into {self.name}{self.options()}: "
                             "merge accumulators of the same kind and options")


def _lexbest(keys_desc: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
    """Per row, the column order of the ``k`` best by (key descending, id ascending)."""
    return np.lexsort((ids, -keys_desc), axis=1)[:, :k]


@register("topk")
class TopK(_Base):
    """The ``k`` examples with the largest activation of each unit (the maximum over its positions),
    with the position of that maximum (flat index into ``shape``; the first one on ties).
    ``values``/``ids``/``positions``: ``(U, k)``; entries beyond the examples seen have id -1."""

    _arrays = ("values", "ids", "positions", "shape")

    def __init__(self, k: int = 9):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        self.k = k
        self.values = self.ids = self.positions = self.shape = None

    def options(self) -> dict[str, Any]:
        return {"k": self.k}

    def add(self, acts: torch.Tensor, ids: torch.Tensor, **extra: Any) -> None:
        v = units_view(acts.detach())
        best = v.amax(2)
        # argmax gives the first maximal position; a vector layer has no positions (-1).
        pos = v.argmax(2) if v.shape[2] > 1 else torch.full(v.shape[:2], -1, dtype=torch.int64)
        other = TopK(self.k)
        other.shape = np.asarray(map_shape(acts), dtype=np.int64)
        u = best.shape[1]
        other.values = best.double().numpy().T.copy()
        other.ids = np.broadcast_to(ids.numpy().astype(np.int64), (u, len(ids))).copy()
        other.positions = pos.numpy().T.astype(np.int64)
        other._trim()
        self.merge(other)

    def _trim(self) -> None:
        order = _lexbest(self.values, self.ids, self.k)
        self.values, self.ids, self.positions = (np.take_along_axis(a, order, 1) for a in (self.values, self.ids, self.positions))

    def merge(self, other: "TopK") -> "TopK":
        self._check_same(other)
        if other.values is None:
            return self
        if self.values is None:
            self.values, self.ids, self.positions, self.shape = (a.copy() for a in (other.values, other.ids, other.positions, other.shape))
            return self
        if self.values.shape[0] != other.values.shape[0]:
            raise ValueError(f"cannot merge top-k of {self.values.shape[0]} and {other.values.shape[0]} units")
        self.values = np.concatenate([self.values, other.values], 1)
        self.ids = np.concatenate([self.ids, other.ids], 1)
        self.positions = np.concatenate([self.positions, other.positions], 1)
        self._trim()
        return self

    def rows_cols(self) -> np.ndarray:
        """``(U, k, 2)`` (row, col) of each maximum in a conv layer's map."""
        w = int(self.shape[-1])
        return np.stack([self.positions // w, self.positions % w], -1)


@register("moments")
class Moments(_Base):
    """Per unit: the count, mean and sum of squared deviations ``m2`` of all its values (every
    example and position), merged with Chan et al.'s (1979) pairwise formula; also min and max."""

    _arrays = ("count", "mean", "m2", "min", "max")

    def __init__(self):
        self.count = self.mean = self.m2 = self.min = self.max = None

    def add(self, acts: torch.Tensor, ids: torch.Tensor, **extra: Any) -> None:
        v = units_view(acts.detach()).double().transpose(0, 1).flatten(1)  # (U, B·P)
        other = Moments()
        other.count = np.full(v.shape[0], v.shape[1], dtype=np.int64)
        mean = v.mean(1, keepdim=True)
        other.mean = mean[:, 0].numpy()
        other.m2 = (v - mean).pow(2).sum(1).numpy()
        other.min, other.max = v.min(1).values.numpy(), v.max(1).values.numpy()
        self.merge(other)

    def merge(self, other: "Moments") -> "Moments":
        self._check_same(other)
        if other.count is None:
            return self
        if self.count is None:
            for a in self._arrays:
                setattr(self, a, getattr(other, a).copy())
            return self
        na, nb = self.count.astype(np.float64), other.count.astype(np.float64)
        n = na + nb
        delta = other.mean - self.mean
        # Symmetric in (self, other) term by term, so merging is exactly commutative.
        self.mean = (na * self.mean + nb * other.mean) / n
        self.m2 = self.m2 + other.m2 + delta * delta * (na * nb / n)
        self.count = self.count + other.count
        self.min, self.max = np.minimum(self.min, other.min), np.maximum(self.max, other.max)
        return self

    @property
    def var(self) -> np.ndarray:
        """Population variance per unit."""
        return self.m2 / self.count

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.var)


@register("hist")
class Hist(_Base):
    """Per-unit value histograms on fixed edges (default: :func:`seethrough.inspect.stats.default_edges`,
    ±10⁻⁴…10⁴ log-spaced), so they add up exactly; values beyond the ends count in the end bins.
    ``counts``: ``(U, bins)`` int64. :meth:`quantile` reads quantiles off them (a sketch at bin resolution)."""

    _arrays = ("counts",)

    def __init__(self, edges: list[float] | None = None):
        from ..inspect.stats import default_edges

        e = np.asarray(default_edges() if edges is None else edges, dtype=np.float64)
        if e.ndim != 1 or e.size < 2 or not (np.diff(e) > 0).all():
            raise ValueError("edges must be a 1-D increasing list with at least 2 entries")
        self.edges, self._custom = e, edges is not None
        self.counts = None

    def options(self) -> dict[str, Any]:
        return {"edges": self.edges.tolist()} if self._custom else {}

    def add(self, acts: torch.Tensor, ids: torch.Tensor, **extra: Any) -> None:
        v = units_view(acts.detach()).double().transpose(0, 1).flatten(1)  # (U, B·P)
        nb = self.edges.size - 1
        bins = (torch.bucketize(v.contiguous(), torch.from_numpy(self.edges), right=True) - 1).clamp_(0, nb - 1)
        flat = bins + torch.arange(v.shape[0]).unsqueeze(1) * nb
        other = Hist(self.options().get("edges"))
        other.counts = torch.bincount(flat.flatten(), minlength=v.shape[0] * nb).view(v.shape[0], nb).numpy()
        self.merge(other)

    def merge(self, other: "Hist") -> "Hist":
        self._check_same(other)
        if other.counts is not None:
            self.counts = other.counts.copy() if self.counts is None else self.counts + other.counts
        return self

    @property
    def total(self) -> np.ndarray:
        """The layer's histogram: all units together, ``(bins,)``."""
        return self.counts.sum(0)

    def quantile(self, q: float) -> np.ndarray:
        """Per unit, the ``q``-quantile interpolated linearly inside its bin (exact to a bin's width;
        the end bins are open, so a quantile there is clamped to the end edge)."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q must be in [0, 1], got {q}")
        cum = np.cumsum(self.counts, 1)
        target = q * cum[:, -1]
        b = np.array([np.searchsorted(c, t, side="left") for c, t in zip(cum, target)]).clip(0, self.counts.shape[1] - 1)
        below = np.where(b > 0, np.take_along_axis(cum, np.maximum(b - 1, 0)[:, None], 1)[:, 0], 0)
        inbin = np.take_along_axis(self.counts, b[:, None], 1)[:, 0]
        frac = np.where(inbin > 0, (target - below) / np.maximum(inbin, 1), 0.0)
        return self.edges[b] + frac * (self.edges[b + 1] - self.edges[b])


@register("dead")
class Dead(_Base):
    """Per unit: ``active`` = how many examples drove it above ``threshold`` somewhere, ``above`` =
    how many of its values were above, ``values`` = how many values it had; ``n`` examples seen."""

    _arrays = ("n", "active", "above", "values")

    def __init__(self, threshold: float = 0.0):
        self.threshold = float(threshold)
        self.n, self.active, self.above, self.values = 0, None, None, None

    def options(self) -> dict[str, Any]:
        return {"threshold": self.threshold}

    def add(self, acts: torch.Tensor, ids: torch.Tensor, **extra: Any) -> None:
        v = units_view(acts.detach())
        other = Dead(self.threshold)
        other.n = v.shape[0]
        hot = v > self.threshold
        other.active = hot.any(2).sum(0).numpy().astype(np.int64)
        other.above = hot.sum((0, 2)).numpy().astype(np.int64)
        other.values = np.full(v.shape[1], v.shape[0] * v.shape[2], dtype=np.int64)
        self.merge(other)

    def merge(self, other: "Dead") -> "Dead":
        self._check_same(other)
        if other.active is None:
            return self
        if self.active is None:
            self.n, self.active, self.above, self.values = other.n, other.active.copy(), other.above.copy(), other.values.copy()
            return self
        self.n += other.n
        self.active, self.above, self.values = self.active + other.active, self.above + other.above, self.values + other.values
        return self

    @property
    def dead(self) -> np.ndarray:
        """Units never above the threshold on any example seen."""
        return self.active == 0

    @property
    def dead_fraction(self) -> float:
        return float(self.dead.mean())

    @property
    def sparsity(self) -> float:
        """Fraction of all the layer's values at or below the threshold."""
        return 1.0 - float(self.above.sum()) / float(self.values.sum())


_MASK = (1 << 64) - 1


def example_keys(ids: np.ndarray, seed: int) -> np.ndarray:
    """A seeded 64-bit hash (splitmix64) of each example id: the reservoir keeps the smallest keys,
    so its sample depends on the ids and the seed only, never on batch or chunk order.

    >>> example_keys(np.array([0, 1]), 0).dtype, (example_keys(np.array([3]), 0) != example_keys(np.array([3]), 1)).item()
    (dtype('uint64'), True)
    """
    with np.errstate(over="ignore"):
        z = ids.astype(np.uint64) + np.uint64((seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & _MASK)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


@register("reservoir")
class Reservoir(_Base):
    """A uniform sample of ``size`` examples' activations (for embeddings), chosen by the smallest
    :func:`example_keys`: ``ids (m,)``, ``acts (m, D)`` float32 (``reduce="flatten"``: the whole map,
    ``"mean"``: averaged over positions, ``D = units``), ``labels (m,)`` (-1 unknown), sorted by id."""

    needs_labels = True
    _arrays = ("ids", "keys", "acts", "labels")

    def __init__(self, size: int = 1000, seed: int = 0, reduce: str = "flatten"):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive int, got {size!r}")
        if reduce not in ("flatten", "mean"):
            raise ValueError(f"reduce must be 'flatten' or 'mean', got {reduce!r}")
        self.size, self.seed, self.reduce = size, int(seed), reduce
        self.ids = self.keys = self.acts = self.labels = None

    def options(self) -> dict[str, Any]:
        return {"size": self.size, "seed": self.seed, "reduce": self.reduce}

    def add(self, acts: torch.Tensor, ids: torch.Tensor, labels: torch.Tensor | None = None, **extra: Any) -> None:
        ids_np = ids.numpy().astype(np.int64)
        keys = example_keys(ids_np, self.seed)
        if self.keys is not None and len(self.keys) >= self.size:
            keep = keys <= self.keys.max()  # only these can enter a full reservoir
            if not keep.any():
                return
        else:
            keep = np.ones(len(ids_np), dtype=bool)
        a = acts.detach()
        feats = (units_view(a).mean(2) if self.reduce == "mean" else a.flatten(1)).float()
        other = Reservoir(**self.options())
        sel = torch.from_numpy(np.flatnonzero(keep))
        other.ids, other.keys, other.acts = ids_np[keep], keys[keep], feats[sel].numpy()
        other.labels = (labels.numpy()[keep] if labels is not None else np.full(int(keep.sum()), -1)).astype(np.int64)
        self.merge(other)

    def merge(self, other: "Reservoir") -> "Reservoir":
        self._check_same(other)
        if other.ids is None:
            return self
        if self.ids is None:
            ids, keys, acts, labels = other.ids, other.keys, other.acts, other.labels
        else:
            if self.acts.shape[1] != other.acts.shape[1]:
                raise ValueError(f"cannot merge samples of {self.acts.shape[1]} and {other.acts.shape[1]} features")
            ids, keys = np.concatenate([self.ids, other.ids]), np.concatenate([self.keys, other.keys])
            acts, labels = np.concatenate([self.acts, other.acts]), np.concatenate([self.labels, other.labels])
        take = np.lexsort((ids, keys))[: self.size]
        take = take[np.argsort(ids[take], kind="stable")]
        self.ids, self.keys, self.acts, self.labels = ids[take], keys[take], acts[take].copy(), labels[take]
        return self
