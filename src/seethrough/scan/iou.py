"""The two accumulators of network dissection: exact top-tail quantiles and IoU counts.

Pass 1 (:class:`Tail`) keeps, per unit, the largest values over every position of every image,
as many as the quantile needs and no more, so the threshold ``T_k`` with ``P(a_k > T_k) = q``
is *exact* — numpy's ``quantile(a, 1 - q)`` over all the values — not a histogram estimate.
Pass 2 (:class:`IoU`) upsamples each map bilinearly to the label resolution, thresholds it at
``T_k`` and counts integer intersections and areas per unit and concept. Both merge by
concatenation or integer sums, so any split of the data gives the same state.
"""
from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .accumulators import register, units_view

_CHUNK = 1 << 22  # upsampled values per step: bounds memory at big label resolutions


def _floor32(t: np.ndarray) -> np.ndarray:
    """The largest float32 at or below each float64 ``t``."""
    t32 = t.astype(np.float32)
    return np.where(t32.astype(np.float64) > t, np.nextafter(t32, np.float32(-np.inf)), t32).astype(np.float32)


def _check_q(q: float) -> float:
    if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 < q < 1:
        raise ValueError(f"quantile must be a fraction in (0, 1) (the paper's top 0.5 % is 0.005), got {q!r}")
    return float(q)


@register("tail")
class Tail:
    """Per unit, the ``m`` largest of its values (all positions, all examples), ``m`` sized for the
    top-``q`` quantile of ``n_examples`` examples; :meth:`threshold` is then exact.

    >>> import torch
    >>> a, b = Tail(q=0.25, n_examples=4), Tail(q=0.25, n_examples=4)
    >>> a.add(torch.tensor([[1.0], [2.0]]), torch.arange(2)); b.add(torch.tensor([[3.0], [4.0]]), torch.arange(2, 4))
    >>> a.merge(b).threshold().tolist()   # numpy.quantile([1, 2, 3, 4], 0.75)
    [3.25]
    """

    name = "tail"
    needs_inputs = False
    needs_labels = False

    def __init__(self, q: float = 0.005, n_examples: int = 1):
        if isinstance(n_examples, bool) or not isinstance(n_examples, int) or n_examples < 1:
            raise ValueError(f"n_examples must be a positive int (the size of the data set), got {n_examples!r}")
        self.q, self.n_examples = _check_q(q), n_examples
        self.top: np.ndarray | None = None  # (U, m) float32, descending
        self.count = 0  # values seen per unit
        self.positions = 0  # positions per example

    def options(self) -> dict[str, Any]:
        return {"q": self.q, "n_examples": self.n_examples}

    def _keep(self) -> int:
        # numpy's linear quantile reads the sorted values at (n-1)(1-q) and one above: from the top,
        # ranks floor((n-1)q) and +1; +2 for the float rounding of the index.
        return int(math.floor((self.n_examples * self.positions - 1) * self.q)) + 3

    def add(self, acts: torch.Tensor, ids: torch.Tensor, **extra: Any) -> None:
        v = units_view(acts.detach()).float()
        other = Tail(**self.options())
        other.positions = v.shape[2]
        flat = v.transpose(0, 1).reshape(v.shape[1], -1)
        other.count = flat.shape[1]
        other.top = torch.topk(flat, min(other._keep(), flat.shape[1]), dim=1).values.numpy()
        self.merge(other)

    def merge(self, other: "Tail") -> "Tail":
        if type(other) is not type(self) or other.options() != self.options():
            raise ValueError(f"cannot merge tail{other.options()} into tail{self.options()}: same options needed")
        if other.top is None:
            return self
        if self.top is None:
            self.top, self.count, self.positions = other.top.copy(), other.count, other.positions
            return self
        if self.top.shape[0] != other.top.shape[0] or self.positions != other.positions:
            raise ValueError(f"cannot merge tails of {self.top.shape[0]} and {other.top.shape[0]} units")
        both = np.concatenate([self.top, other.top], 1)
        m = min(self._keep(), both.shape[1])
        self.top = -np.sort(-both, axis=1, kind="stable")[:, :m]
        self.count += other.count
        return self

    def threshold(self) -> np.ndarray:
        """``(U,)`` float64: numpy's ``quantile(values, 1 - q)`` (linear method) per unit."""
        if self.top is None:
            raise ValueError("the tail has seen no data: scan at least one example first")
        n = self.count
        if n > self.n_examples * self.positions:
            raise ValueError(f"the tail was sized for {self.n_examples} examples but saw {n // self.positions}; "
                             "pass n_examples= the size of the data set")
        idx = (n - 1) * (1 - self.q)
        lo = int(math.floor(idx))
        hi = min(lo + 1, n - 1)
        t = idx - lo
        a = self.top[:, n - 1 - lo].astype(np.float64)
        b = self.top[:, n - 1 - hi].astype(np.float64)
        diff = b - a
        # numpy's _lerp, term for term, so the result is numpy's to the last bit
        return np.where(t >= 0.5, b - diff * (1 - t), a + diff * t)

    def state(self) -> dict[str, Any]:
        out = {"name": self.name, "options": json.dumps(self.options()), "count": self.count, "positions": self.positions}
        if self.top is not None:
            out["top"] = self.top
        return out

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "Tail":
        obj = cls(**json.loads(str(np.asarray(state["options"]))))
        obj.count, obj.positions = int(np.asarray(state["count"])), int(np.asarray(state["positions"]))
        if "top" in state:
            obj.top = np.asarray(state["top"]).astype(np.float32).copy()
        return obj


def _concepts_from_spec(spec: dict):
    from .concepts import Probe

    if spec.get("kind") != "probe":
        raise ValueError(f"cannot rebuild concepts of kind {spec.get('kind')!r}; give concepts= a Probe")
    return Probe(**spec["options"])


@register("iou")
class IoU:
    """Per unit ``u`` and concept ``c`` (over all images): ``inter[u, c]`` = Σ |M_u ∩ L_c| pixels,
    ``area[u, g]`` = Σ |M_u| over images where category ``g`` is annotated, ``label[c]`` = Σ |L_c|;
    ``M_u`` is the unit's map upsampled (bilinear) to ``resolution`` and thresholded at ``thresholds[u]``.
    :meth:`iou` = inter / (area + label − inter). ``concepts``: a :class:`~.concepts.Probe` (or its
    ``spec`` dict); its :meth:`label_planes` gives the labels of the examples by id."""

    name = "iou"
    needs_inputs = True
    needs_labels = False

    def __init__(self, thresholds, concepts, resolution: int | None = None):
        from .concepts import Probe

        self.concepts = concepts if isinstance(concepts, Probe) else _concepts_from_spec(concepts)
        self.thresholds = np.asarray(thresholds, dtype=np.float64).reshape(-1)
        if not np.isfinite(self.thresholds).all():
            raise ValueError("thresholds must be finite, one per unit")
        self.resolution = self.concepts.size if resolution is None else int(resolution)
        k, g = len(self.concepts.concepts), len(self.concepts.categories)
        u = len(self.thresholds)
        self.inter = np.zeros((u, k), np.int64)
        self.area = np.zeros((u, g), np.int64)
        self.label = np.zeros(k, np.int64)
        self.n = 0

    def options(self) -> dict[str, Any]:
        return {"concepts": self.concepts.spec, "resolution": self.resolution}

    def _planes(self, ids: torch.Tensor, inputs: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        planes, annotated = self.concepts.label_planes(ids, inputs)
        s, r = planes.shape[-1], self.resolution
        if r != s:  # nearest label at each pixel centre of the coarser grid
            pick = ((torch.arange(r) + 0.5) * s / r).long().clamp_max(s - 1)
            planes = planes[..., pick[:, None], pick[None, :]]
        return planes, annotated

    def add(self, acts: torch.Tensor, ids: torch.Tensor, inputs: torch.Tensor | None = None, **extra: Any) -> None:
        if acts.dim() != 4:
            raise ValueError(f"dissection needs a convolutional layer with (C, H, W) maps, got shape {tuple(acts.shape[1:])}")
        b, u = acts.shape[:2]
        if u != len(self.thresholds):
            raise ValueError(f"the layer has {u} units but {len(self.thresholds)} thresholds were given")
        planes, annotated = self._planes(ids, inputs)
        k = self.inter.shape[1]
        t = torch.from_numpy(_floor32(self.thresholds))  # v > T exactly when v > floor32(T), v float32
        acts = acts.detach().float()
        for p in range(planes.shape[1]):
            lab = planes[:, p]
            self.label += np.bincount(lab[lab >= 0].numpy(), minlength=k)[:k]
        # Bilinear upsampling is a convex combination of 4 neighbours: a map with no value above T
        # stays below T everywhere, so only maps with a value above T are upsampled (exact).
        hot = (acts > t.view(1, -1, 1, 1)).flatten(2).any(2)
        bi, ui = hot.nonzero(as_tuple=True)
        r = self.resolution
        step = max(1, _CHUNK // (r * r))
        for a in range(0, len(bi), step):
            bb, uu = bi[a:a + step], ui[a:a + step]
            up = F.interpolate(acts[bb, uu][:, None], size=(r, r), mode="bilinear", align_corners=False)[:, 0]
            m = up > t[uu].view(-1, 1, 1)
            area = m.sum((1, 2))
            ann = annotated[bb].long() * area[:, None]  # (j, G)
            np.add.at(self.area, uu.numpy(), ann.numpy())
            j, y, x = m.nonzero(as_tuple=True)
            for p in range(planes.shape[1]):
                lab = planes[bb[j], p, y, x]
                ok = lab >= 0
                flat = uu[j][ok] * k + lab[ok]
                self.inter += torch.bincount(flat, minlength=u * k).view(u, k).numpy()
        self.n += b

    def merge(self, other: "IoU") -> "IoU":
        if type(other) is not type(self) or other.options() != self.options() or \
                not np.array_equal(other.thresholds, self.thresholds):
            raise ValueError("cannot merge IoU counts of different concepts, resolutions or thresholds")
        self.inter += other.inter
        self.area += other.area
        self.label += other.label
        self.n += other.n
        return self

    def iou(self) -> np.ndarray:
        """``(U, K)`` float64 intersection over union of each unit with each concept (0 where both are empty)."""
        cats = list(self.concepts.categories)
        g = np.array([cats.index(c) for c in self.concepts.concept_categories])
        union = self.area[:, g] + self.label[None] - self.inter
        return np.where(union > 0, self.inter / np.maximum(union, 1), 0.0)

    def state(self) -> dict[str, Any]:
        return {"name": self.name, "options": json.dumps(self.options()), "thresholds": self.thresholds,
                "inter": self.inter, "area": self.area, "label": self.label, "n": self.n}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "IoU":
        opts = json.loads(str(np.asarray(state["options"])))
        obj = cls(np.asarray(state["thresholds"]), opts["concepts"], opts["resolution"])
        obj.inter, obj.area = np.asarray(state["inter"]).copy(), np.asarray(state["area"]).copy()
        obj.label, obj.n = np.asarray(state["label"]).copy(), int(np.asarray(state["n"]))
        return obj
