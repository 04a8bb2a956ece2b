"""Top-k dataset examples per unit, streamed with O(k) memory per unit (Zeiler & Fergus, 2014).

A unit is a channel of a conv layer (scored by its maximum over positions, whose
position is kept) or a feature of a vector layer. Each batch's candidates are merged into
the running top-k; ties are broken by the smaller dataset index, so the result equals a
stable brute-force sort of the whole dataset.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..results import ResultProtocol, records
from ..batching import model_key
from ..boundary import capture, token_mask, token_states
from ..layers import resolve_layer
from .data import Data, data_length, scan as stream, with_boundary  # not `scan`: that is the scan= parameter
from .receptive import receptive_field


@dataclass(frozen=True)
class TopK(ResultProtocol):
    """``indices``/``values``: ``(U, k)`` dataset indices and activations, strongest first,
    for ``units`` (U,). Conv layers also give ``positions (U, k, 2)`` (row, col in the
    layer's map) and ``boxes (U, k, 4)`` (top, left, bottom, right; ends exclusive) in the input;
    sequence layers (token states, Conv1d) give ``positions (U, k, 1)`` (the token / step) and no boxes."""

    layer: str
    units: torch.Tensor
    indices: torch.Tensor
    values: torch.Tensor
    positions: torch.Tensor | None = None
    boxes: torch.Tensor | None = None
    options: dict = field(default_factory=dict)
    seed: int | None = None

    def head(self, n: int) -> "TopK":
        """The result for the first ``n`` units only (for a picture of a wide layer)."""
        cut = lambda t: None if t is None else t[:n]  # noqa: E731
        return TopK(self.layer, self.units[:n], self.indices[:n], self.values[:n], cut(self.positions), cut(self.boxes),
                    self.options, self.seed)


def _scores(act: torch.Tensor, units: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(N, C, ...)`` → per-unit scores ``(N, U)`` and, for maps, flat argmax positions ``(N, U)``."""
    if units is not None:
        act = act[:, units]
    if act.dim() == 2:
        return act, None
    if act.dim() not in (3, 4):
        raise ValueError(f"top-k needs a layer output (N, units), (N, C, L) or (N, C, H, W), got shape {tuple(act.shape)}")
    return act.flatten(2).max(2)


def _merge(best: tuple[torch.Tensor, ...] | None, cand: tuple[torch.Tensor, ...], k: int) -> tuple[torch.Tensor, ...]:
    """Keep the ``k`` best of the running best and a batch's candidates, each ``(U, m)``."""
    if best is not None:
        cand = tuple(torch.cat([b, c], 1) for b, c in zip(best, cand))
    vals, idx = cand[0], cand[1]
    # Order candidates by dataset index, then a stable sort by value: ties go to the smaller index.
    by_index = idx.argsort(dim=1, stable=True)
    vals, by_value = torch.sort(vals.gather(1, by_index), dim=1, descending=True, stable=True)
    take = by_index.gather(1, by_value)[:, :k]
    return tuple(c.gather(1, take) for c in cand)


@records("model", "data", "scan")
def topk(
    model: nn.Module,
    data: Data,
    layer: str,
    unit: int | None = None,
    k: int = 9,
    *,
    boxes: bool = True,
    batch_size: int | str = "auto",
    progress: bool = True,
    scan: object = None,
    **how: object,
) -> TopK:
    """The ``k`` inputs of ``data`` that activate each unit of ``layer`` most (or one ``unit``).

    ``data``: a tensor ``(N, C, H, W)``, a Dataset, or an iterable of batches; tabular rows, token
    ids and other tensors too (``how``: the boundary's fields, e.g. ``extra={"attention_mask": m}``
    with one row per sample). For conv layers the position of each maximum and (``boxes=True``,
    images) its receptive-field box; for token states ``(N, L, D)`` a unit is a hidden feature scored
    by its maximum over the real tokens (attention mask, else ids other than ``pad_id``).
    :func:`seethrough.inspect.examples.topk_table` shows the examples as table rows or token strings.

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> x, _ = see.zoo.digits("test")
    >>> r = see.topk(model, x, "conv2", unit=3, k=4, progress=False)
    >>> r.indices.shape, r.boxes[0, 0, 2:].sub(r.boxes[0, 0, :2]).tolist()
    (torch.Size([1, 4]), [14, 14])

    ``scan=``: a ``see.scan`` result (or a stored scan's folder) is read instead of passing over
    ``data`` (which may be None); see :func:`seethrough.scan.views.topk_from_scan`.
    """
    if scan is not None:
        from ..scan.views import topk_from_scan

        return topk_from_scan(scan, model, layer, unit, k, boxes=boxes)
    b, data = with_boundary(model, data, how)  # how: the boundary's fields (kind=, extra=, ...; docs/boundary.md)
    model = b.model
    resolve_layer(model, layer)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    n = data_length(data)
    if n is not None and 0 < n < k:
        raise ValueError(f"k={k} is larger than the dataset ({n} samples); ask for k <= {n}")
    if unit is not None and (isinstance(unit, bool) or not isinstance(unit, int) or unit < 0):
        raise ValueError(f"unit must be a non-negative int (a channel / feature index) or None for all, got {unit!r}")
    units = None if unit is None else torch.tensor([unit])
    state: dict[str, object] = {"best": None, "shape": None, "sample": None}

    def map_fn(x: torch.Tensor, rows: torch.Tensor):
        act = capture(b, x, [layer], rows)[layer]
        if token_states(b, x, act):  # (N, L, D) token states: a unit is a hidden feature, scored over real tokens
            act = act.transpose(1, 2).masked_fill(~token_mask(b, x, rows)[:, None, :], float("-inf"))
        if unit is not None and unit >= act.shape[1]:
            raise ValueError(f"unit {unit} is out of range: layer {layer!r} has {act.shape[1]} units (0..{act.shape[1] - 1})")
        vals, pos = _scores(act, units)
        if state["shape"] is None:
            state["shape"], state["sample"] = tuple(act.shape[1:]), x[:1]
        return vals, pos

    def reduce_fn(start: int, out) -> None:
        vals, pos = out
        idx = torch.arange(start, start + vals.shape[0], device=vals.device).expand(vals.shape[1], -1)
        cand = (vals.T, idx) + (() if pos is None else (pos.T,))
        state["best"] = _merge(state["best"], cand, k)

    key = model_key(model, data, "topk") if isinstance(data, torch.Tensor) else None
    seen = stream(data, map_fn, reduce_fn, batch_size=batch_size, key=key, progress=progress, desc=f"top-{k} {layer}",
                  boundary=b)
    if seen < k:
        raise ValueError(f"k={k} is larger than the dataset ({seen} samples); ask for k <= {seen}")
    best = state["best"]
    u = units if units is not None else torch.arange(best[0].shape[0])
    if len(best) == 2:
        return TopK(layer, u, best[1].cpu(), best[0].cpu())
    if len(state["shape"]) == 2:  # a sequence (C, L): the position is one index (a token, a time step)
        return TopK(layer, u, best[1].cpu(), best[0].cpu(), best[2].unsqueeze(-1).cpu())
    w = state["shape"][-1]
    positions = torch.stack([best[2] // w, best[2] % w], -1).cpu()
    found = None
    if boxes and b.kind == "image":
        found = receptive_field(model, state["sample"], layer, positions.reshape(-1, 2)).reshape(*positions.shape[:2], 4)
    return TopK(layer, u, best[1].cpu(), best[0].cpu(), positions, found)


def crops(x: torch.Tensor, boxes: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """Cut the boxes ``(M, 4)`` out of the images ``x (M, C, H, W)``, padded with zeros to a common
    square ``size`` (default: the largest box side) with each crop placed where its box lies
    inside the full receptive field (so a border crop keeps its offset).

    >>> crops(torch.ones(2, 1, 8, 8), torch.tensor([[0, 0, 3, 3], [2, 2, 6, 6]])).shape
    torch.Size([2, 1, 4, 4])
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or boxes is None:
        what = "the top-k result has no boxes (its layer is not an image map)" if boxes is None else \
            f"x has shape {tuple(getattr(x, 'shape', ()))}"
        raise ValueError(f"crops cut receptive-field boxes out of images (M, C, H, W); {what}: show rows or token "
                         "examples with seethrough.inspect.examples.topk_table instead")
    if boxes.numel() == 0:
        return x.new_zeros(0, x.shape[1], size or 1, size or 1)
    side = size or int((boxes[:, 2:] - boxes[:, :2]).max())
    out = x.new_zeros(len(boxes), x.shape[1], side, side)
    for i, (t, l, b, r) in enumerate(boxes.tolist()):  # M is k×units, small; the copy is a view
        h, w = min(b - t, side), min(r - l, side)
        # Boxes clipped at the top/left border keep their content at the bottom/right of the crop.
        dy = side - h if t == 0 and b - t < side else 0
        dx = side - w if l == 0 and r - l < side else 0
        out[i, :, dy:dy + h, dx:dx + w] = x[i, :, t:t + h, l:l + w]
    return out
