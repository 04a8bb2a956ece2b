"""Occlusion (Zeiler & Fergus, 2014): slide a patch over the image and watch the score drop.

On tabular rows the window slides over the features (``window`` consecutive columns, default one)
and a hidden feature takes the background's values (the score is the mean over the background
rows, :mod:`.masking`); on token ids it slides over the tokens and a hidden token becomes the
``mask_id`` (else ``pad_id``). The map is ``(N, F)`` or ``(N, L)``: each position's mean drop over
the windows covering it (padding: 0, never hidden).

With ``layer=`` (:func:`occlusion_layer`, "layer occlusion" or ablation) the hidden things are the units of
that layer's output instead of input positions: each channel of a conv map (all its positions at once),
each hidden feature of token states ``(N, L, D)`` (at every token), each column of ``(N, F)``, replaced by
the baseline (zero unless ``baseline=`` says otherwise), the forward continuing from the replaced
activation (``hooks(replace=...)``, the rest of the pass from ``x``: :mod:`.where`). The map is ``(N, units)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..results import ResultProtocol, records
from ..batching import bytes_per_item, run_batched
from ..boundary import as_boundary, token_states
from ..hooks import hooks
from ..runner import fast
from ..targets import method_score
from .incremental import incremental_scores
from .masking import clean_forward, masked_scores, position_scores, positions, resolve_baseline, unit_or_score, unit_target
from .registry import register


def _pair(value: Any, name: str) -> tuple[int, int]:
    vals = (value, value) if not isinstance(value, (tuple, list)) else tuple(value)
    if len(vals) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in vals):
        raise ValueError(f"{name} must be an int or a pair of ints (height, width), got {value!r}")
    if min(vals) < 1:
        raise ValueError(f"{name} must be ≥ 1 pixel, got {value!r}")
    return vals  # type: ignore[return-value]


def window_positions(size: int, window: int, stride: int) -> list[int]:
    """Top (or left) corners of the windows along one axis; the last window touches the edge
    so that every pixel is covered.

    >>> window_positions(10, 4, 3)
    [0, 3, 6]
    >>> window_positions(10, 4, 4)
    [0, 4, 6]
    """
    pos = list(range(0, size - window + 1, stride))
    if pos[-1] != size - window:
        pos.append(size - window)
    return pos


def occlusion_windows(shape: tuple[int, int], window: Any = None, stride: Any = None) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """The window size and the (top, left) corner of every window for an image of ``shape``.

    Defaults: a window of a seventh of the shorter side, stride half the window.

    >>> occlusion_windows((224, 224))[0], len(occlusion_windows((224, 224))[1])
    ((32, 32), 169)
    """
    h, w = shape
    if window is None:
        window = max(1, round(min(h, w) / 7))
    wh, ww = _pair(window, "window")
    if wh > h or ww > w:
        raise ValueError(f"window {wh}×{ww} is larger than the image ({h}×{w}); choose window ≤ {min(h, w)}")
    if stride is None:
        stride = (max(1, wh // 2), max(1, ww // 2))
    sh, sw = _pair(stride, "stride")
    rows, cols = window_positions(h, wh, sh), window_positions(w, ww, sw)
    return (wh, ww), [(r, c) for r in rows for c in cols]


@dataclass
class OcclusionDrops(ResultProtocol):
    """The score drop ``clean − occluded`` of every window, before averaging into a map."""

    drops: torch.Tensor  # (N, windows): positive where hiding the window lowers the score
    clean: torch.Tensor  # (N,): the score of the unoccluded image
    corners: list[tuple[int, int]]  # (top, left) of each window
    window: tuple[int, int]  # (height, width)
    score: str | None  # "logit", "probability", "log-probability"; None for a callable target
    options: dict = field(default_factory=dict)
    seed: int | None = None

    def rises(self) -> torch.Tensor:
        """Per image, the share of window positions where hiding *raises* the score, ``(N,)``."""
        return (self.drops < 0).to(self.drops.dtype).mean(1)

    def averaged(self, size: tuple[int, int]) -> torch.Tensor:
        """The occlusion map ``(N, 1, H, W)``: each pixel's mean drop over the windows covering it."""
        (wh, ww), (h, w) = self.window, size
        total = self.drops.new_zeros(self.drops.shape[0], h, w)
        count = self.drops.new_zeros(h, w)
        for p, (r, c) in enumerate(self.corners):  # cheap slicing, not model calls
            total[:, r:r + wh, c:c + ww] += self.drops[:, p, None, None]
            count[r:r + wh, c:c + ww] += 1
        return (total / count).unsqueeze(1)


@records("model", "x")
def occlusion_drops(model: nn.Module, x: torch.Tensor, target: Any = None, *, window: Any = None, stride: Any = None,
                    baseline: Any = None, score: str | None = None, batch_size: int | str = "auto",
                    memory_budget: int | None = None, progress: bool = True, unit: Any = None,
                    incremental: bool | str = False, projection: float | None = None,
                    compile: bool = False) -> OcclusionDrops:
    """The per-window drops behind :func:`occlusion` (same options): which positions lower the
    score, which raise it, and by how much.

    >>> import seethrough as see
    >>> x, y = see.zoo.digits("test")
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> d = occlusion_drops(model, x[:2], y[:2], window=8, stride=8, progress=False)
    >>> d.drops.shape, len(d.corners), d.window
    (torch.Size([2, 16]), 16, (8, 8))
    """
    (wh, ww), corners = occlusion_windows(tuple(x.shape[2:]), window, stride)
    base = resolve_baseline(x, 0.0 if baseline is None else baseline, blur_sigma=min(wh, ww) / 2)
    h, w = x.shape[2:]
    dev = x.device  # the window tables live where the masks are made: no host copy per batch on a GPU
    top = torch.tensor([r for r, _ in corners], device=dev)
    left = torch.tensor([c for _, c in corners], device=dev)
    rows, cols = torch.arange(h, device=dev), torch.arange(w, device=dev)

    def masks(img: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        in_rows = (rows >= top[k, None]) & (rows < top[k, None] + wh)
        in_cols = (cols >= left[k, None]) & (cols < left[k, None] + ww)
        return (~(in_rows[:, :, None] & in_cols[:, None, :])).unsqueeze(1)

    target = unit_target(model, x, target, unit, "occlusion")
    score = unit_or_score(score, target, "logit")
    indices, clean = clean_forward(model, x, target, score)
    tau = _projection(incremental, projection, unit)
    scores = None
    if tau is not False:  # Krypton's incremental inference (.incremental); None back: it cannot, run dense
        scores, _ = incremental_scores(model, x, target, indices, corners, (wh, ww), base, score=score, projection=tau,
                                       batch_size=batch_size, memory_budget=memory_budget, progress=progress)
    if scores is None:
        scores = masked_scores(model, x, target, indices, len(corners), masks, base, batch_size=batch_size,
                               memory_budget=memory_budget, progress=progress, desc="occlusion", score=score,
                               compile=compile)
    return OcclusionDrops(clean[:, None] - torch.stack(scores), clean, corners, (wh, ww), score)


@register("occlusion", family="perturbation", paper="Zeiler & Fergus, 2014", region=True,
          kinds=("image", "tabular", "tokens"))
def occlusion(
    model: nn.Module,
    x: torch.Tensor,
    target: Any = None,
    *,
    window: Any = None,
    stride: Any = None,
    baseline: Any = None,
    score: str | None = None,
    batch_size: int | str = "auto",
    memory_budget: int | None = None,
    progress: bool = True,
    unit: Any = None,
    layer: str | None = None,
    incremental: bool | str = False,
    projection: float | None = None,
    compile: bool = False,
) -> torch.Tensor:
    """Drop of the target score when a ``window`` patch is replaced by ``baseline``, averaged
    over the windows covering each pixel: ``(N, 1, H, W)``, positive where hiding hurts.

    ``window``/``stride`` are ints or (height, width) pairs (default: a seventh of the shorter
    side, stride half the window); the last row and column of windows touch the image edge.
    ``baseline``: a number (default 0), ``"mean"``, ``"blur"`` (sigma half the window) or a tensor.
    On tabular rows and token ids (module docstring) the map is ``(N, F)`` / ``(N, L)``, ``window``
    and ``stride`` count features or tokens (default 1), and the baseline is the background (rows)
    or the mask/pad id (tokens). ``unit=(layer, channel[, position])`` explains that unit's activation
    instead of a class score (captured in each forward; ``target`` stays None), as for every
    perturbation method. ``layer="conv2"`` occludes the units of that layer's output instead of
    input patches and returns ``(N, units)`` (:func:`occlusion_layer`).
    ``score``: the logit (default), ``"probability"`` (Zeiler & Fergus plot the probability of
    the correct class) or ``"log-probability"``. Hiding is not removing: a black square is a new
    pattern in the image and can *raise* the score (docs/perturbation.md measures how often);
    :func:`occlusion_drops` gives the drop of every window.
    ``incremental=True`` (images only) recomputes only the part of each layer a patch changes
    (Krypton, Nakandala et al. 2019; :mod:`.incremental`): the same map as dense occlusion, up to
    float rounding, in fewer operations. ``incremental="approximate"`` (or ``projection=τ`` in (0, 1])
    caps each layer's update box at ``τ`` of the map (default τ = 0.5), trading exactness for speed.
    ``compile``: run the occluded forwards through torch.compile with frozen weights, once per model and
    shape, the first call paying the compile time (dense image occlusion only, docs/speed.md).

    >>> import seethrough as see
    >>> x, y = see.zoo.digits("test")
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> see.attribute(model, x[:2], "occlusion", target=y[:2], window=8, stride=4).shape
    torch.Size([2, 1, 32, 32])
    >>> see.attribute(model, x[:2], "occlusion", target=y[:2], layer="conv2").shape   # one score per channel
    torch.Size([2, 16])
    """
    if not isinstance(compile, bool):
        raise ValueError(f"compile must be True or False, got {compile!r}")
    if compile and (layer is not None or incremental is not False or as_boundary(model, x).kind != "image"):
        raise ValueError("compile=True compiles dense occlusion of images; leave it out with layer=, incremental= or "
                         "non-image input")
    if layer is not None:
        if window is not None or stride is not None:
            raise ValueError("window= and stride= slide over the input; with layer= each unit (channel) of the layer "
                             "is occluded whole: leave window and stride out")
        return occlusion_layer(model, x, target, layer=layer, baseline=baseline, score=score, batch_size=batch_size,
                               memory_budget=memory_budget, progress=progress, unit=unit)
    if incremental is not False and as_boundary(model, x).kind != "image":
        raise ValueError(f"incremental= applies to image occlusion (patches of a feature map); this input is "
                         f"{as_boundary(model, x).kind}: leave incremental out")
    if as_boundary(model, x).kind in ("tabular", "tokens"):
        return occlusion_positions(model, x, target, window=window, stride=stride, baseline=baseline, score=score,
                                   batch_size=batch_size, memory_budget=memory_budget, progress=progress, unit=unit)
    d = occlusion_drops(model, x, target, window=window, stride=stride, baseline=baseline, score=score,
                        batch_size=batch_size, memory_budget=memory_budget, progress=progress, unit=unit,
                        incremental=incremental, projection=projection, compile=compile)
    return d.averaged(tuple(x.shape[2:]))


def _projection(incremental: Any, projection: Any, unit: Any) -> float | None | bool:
    """``False`` (dense), ``None`` (exact incremental) or the projection threshold τ, checked."""
    if incremental not in (False, True, "approximate"):
        raise ValueError(f"incremental must be False, True or 'approximate', got {incremental!r}")
    if projection is not None and incremental is False:
        raise ValueError("projection= caps the update boxes of incremental occlusion: pass incremental='approximate'")
    if incremental is False:
        return False
    if unit is not None:
        raise ValueError("incremental= explains class scores; with unit= leave incremental out")
    if incremental == "approximate":
        tau = 0.5 if projection is None else projection
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not 0 < tau <= 1:
            raise ValueError(f"projection is a fraction of each map in (0, 1], got {projection!r}")
        return float(tau)
    if projection is not None:
        raise ValueError("projection= makes occlusion approximate: pass incremental='approximate' with it")
    return None


def occlusion_positions(model: Any, x: torch.Tensor, target: Any = None, *, window: Any = None, stride: Any = None,
                        baseline: Any = None, score: str | None = None, batch_size: int | str = "auto",
                        memory_budget: int | None = None, progress: bool = True, unit: Any = None) -> torch.Tensor:
    """Occlusion over the features of tabular rows or the tokens of token ids: ``(N, P)`` mean drops.

    >>> import seethrough as see
    >>> net = torch.nn.Linear(3, 2)
    >>> b = see.boundary(net, kind="tabular", background=torch.zeros(4, 3))
    >>> x = torch.tensor([[1., 2., 3.]])
    >>> a = occlusion_positions(b, x, target=0, progress=False)
    >>> torch.allclose(a, net.weight[0] * x, atol=1e-6)       # a linear model: w_j (x_j − mean background_j)
    True
    """
    p = positions(model, x, baseline, "occlusion")
    w = 1 if window is None else window
    if isinstance(w, bool) or not isinstance(w, int) or not 1 <= w <= p.size:
        raise ValueError(f"window on {p.b.kind} input is a number of {'features' if p.b.kind == 'tabular' else 'tokens'} "
                         f"from 1 to {p.size}, got {window!r}")
    st = w if stride is None else stride
    if isinstance(st, bool) or not isinstance(st, int) or st < 1:
        raise ValueError(f"stride must be an int ≥ 1, got {stride!r}")
    starts = torch.tensor(window_positions(p.size, w, st), device=x.device)
    at = torch.arange(p.size, device=x.device)
    hidden = (at >= starts[:, None]) & (at < starts[:, None] + w)  # (windows, P)
    target = unit_target(p.b, x, target, unit, "occlusion")
    score = unit_or_score(score, target, "logit")
    indices, clean = clean_forward(p.b, x, target, score)
    scores = position_scores(p, target, indices, len(starts), lambda _, k: ~hidden[k], batch_size=batch_size,
                             memory_budget=memory_budget, progress=progress, desc="occlusion", score=score)
    drops = clean[:, None] - torch.stack(scores)  # (N, windows)
    h = hidden.to(device=x.device, dtype=drops.dtype)
    out = (drops @ h) / h.sum(0)
    return out * p.real


def occlusion_layer(model: Any, x: torch.Tensor, target: Any = None, *, layer: str, baseline: Any = None,
                    score: str | None = None, batch_size: int | str = "auto", memory_budget: int | None = None,
                    progress: bool = True, unit: Any = None) -> torch.Tensor:
    """Layer occlusion (ablation): the drop ``clean − occluded`` of the target score when one unit of
    ``layer``'s output is replaced by the baseline, for every unit: ``(N, units)``.

    A unit is a channel of a conv map ``(N, C, *positions)`` (occluded at all its positions), a hidden
    feature of token states ``(N, L, D)`` (at every token) or a column of ``(N, F)``. ``baseline``: a
    number (default 0, "switched off") or a tensor in the layer's output space that broadcasts to it —
    unlike integrated gradients' input-space baseline, as Captum's ``LayerFeatureAblation`` takes it.
    One forward per (sample, unit), continuing from the replaced activation; batched across samples.

    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    >>> x = torch.tensor([[1.0, -2.0]])
    >>> a = occlusion_layer(net, x, 0, layer="1", progress=False)
    >>> torch.allclose(a, net[2].weight[0] * net[:2](x), atol=1e-6)  # after the ReLU the net is linear: w_c a_c
    True
    """
    from .where import resolve, scores_at, values_of, where

    w = where(model, x, layer=layer, unit=unit, method="occlusion")  # unknown layer, layer+unit, TorchScript: one line
    score = method_score(score, target, "logit")
    indices = resolve(w, x, target)
    act = values_of(w, x)
    tokens = token_states(w.b, x, act)
    if act.dim() < 2:
        raise ValueError(f"layer {layer!r} has output shape {tuple(act.shape)}: occlusion with layer= needs (N, units, ...)")
    axis = act.dim() - 1 if tokens else 1
    units = act.shape[axis]
    base = _layer_baseline(baseline, act, layer)
    clean = scores_at(w, act, x, target, indices, score)
    shape = [1] * act.dim()
    shape[axis] = units

    def evaluate(start: int, stop: int) -> torch.Tensor:
        item = torch.arange(start, stop, device=x.device)
        s, u = item // units, item % units
        hide = (torch.arange(units, device=x.device) == u[:, None]).view(-1, *shape[1:])  # (k, ..., units, ...)
        v = run.input(torch.where(hide, base[s], act[s]))
        return scores_at(w, v, run.input(x[s]), target, None if indices is None else indices[s], score, rows=s)

    with hooks(w.b.model), fast(w.b.model, x, "forward", key_mode=f"forward-layer-{layer}") as run:  # channels-last in place, restored on exit
        occluded = run_batched(run.guard(evaluate), x.shape[0] * units, batch_size=batch_size,
                               item_bytes=bytes_per_item(x, "forward"), memory_budget=memory_budget, key=run.key,
                               progress=progress, desc="occlusion", device=x.device)
    return clean[:, None] - occluded.view(x.shape[0], units)


def _layer_baseline(baseline: Any, act: torch.Tensor, layer: str) -> torch.Tensor:
    """The layer-space baseline, broadcast to the activations ``act``."""
    if baseline is None:
        baseline = 0.0
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        return torch.full_like(act, float(baseline))
    if isinstance(baseline, torch.Tensor):
        try:
            return torch.broadcast_to(baseline.to(device=act.device, dtype=act.dtype), act.shape)
        except RuntimeError:
            pass
    what = tuple(baseline.shape) if isinstance(baseline, torch.Tensor) else repr(baseline)
    raise ValueError(f"with layer= the baseline is a number (default 0) or a tensor that broadcasts to layer {layer!r}'s "
                     f"output {tuple(act.shape)}; got {what}")
