"""Where an attribution is taken, and of what: the space (the input, the token embedding, ``layer=``) and
the score (a class, a callable, or ``unit=``), for every kind of input the boundary describes.

The gradient, rule and relevance methods all compute ``∂score/∂v`` for a point ``v`` of one space:

* images, tabular rows, tensors: ``v`` is the input itself;
* token ids: ``v`` is the output of the embedding module (``Boundary.embedding_name()``), shape
  ``(N, L, D)``; the map is the per-token sum over ``D`` unless ``reduce="none"``;
* ``layer="name"``: ``v`` is that layer's (selected) output, whatever the input kind: the map is the
  attribution of each unit of the layer (layer gradient, layer gradient × activation, layer integrated
  gradients, layer DeepLIFT, conductance).

A forward from ``v`` substitutes it for the module's output (``hooks(replace=...)``); the rest of the pass
(token ids, attention masks, skip connections) comes from ``x`` (:func:`seethrough.boundary.space_forward`).

The score is the target class read through the boundary's output selector (a callable target gets the
raw output when the boundary has no selector), or with ``unit=(layer, channel)`` /
``(layer, channel, position)`` the activation of that unit, captured in the same pass: a channel of a
conv map ``(N, C, *positions)`` (its mean over positions unless one is given), a hidden feature of
token states ``(N, L, D)`` (its mean over the real tokens, or one token), or a column of ``(N, F)``.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from ..boundary import Boundary, as_boundary, space_layer, space_values, token_mask, token_states
from ..hooks import hooks, require_hooks
from ..layers import resolve_layer
from ..runner import as_layout_of, once
from ..targets import is_callable_target, target_indices, target_scores
from .common import check_nonneg_float, make_baseline

__all__ = ["Where", "where", "resolve", "read_score", "scores_and_gradient", "gradient_at", "forward_at", "scores_at",
           "values_of", "baseline_values", "finish", "noise_scale", "unit_scores", "REDUCE"]

REDUCE = (None, "sum", "none")


@dataclass(frozen=True)
class Where:
    """A boundary with the attribution space (``layer``: None = the input or, for tokens, the embedding) and
    the unit whose activation is the score (``unit``: ``(layer, channel, position or None)``), if any."""

    b: Boundary
    layer: str | None = None
    unit: tuple | None = None
    explicit_layer: bool = False

    @property
    def space(self) -> str | None:
        return space_layer(self.b, self.layer)

    def on(self, model: nn.Module) -> "Where":
        """The same place on another copy of the model (a channels-last copy)."""
        return replace(self, b=replace(self.b, model=model))


def where(model: nn.Module | Boundary, x: torch.Tensor, layer: str | None = None, unit: Any = None,
          method: str = "this method") -> Where:
    """Check ``layer=`` and ``unit=`` against the model and return the :class:`Where` of one call.

    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    >>> w = where(net, torch.zeros(2, 3), unit=("1", 2))
    >>> w.unit, w.space is None
    (('1', 2, None), True)
    >>> where(net, torch.zeros(2, 3), layer="relu")
    Traceback (most recent call last):
    ...
    ValueError: unknown layer 'relu'; valid names include: 0, 1, 2
    """
    b = as_boundary(model, x)
    if layer is not None and unit is not None:
        raise ValueError("give layer= (attribute to that layer's units) or unit= (explain that unit), not both")
    if layer is not None or unit is not None:
        require_hooks(b.model, f"{method} with layer=/unit=")
    if layer is not None:
        resolve_layer(b.model, layer)
    if unit is not None:
        unit = _parse_unit(b, unit)
    return Where(b, layer, unit, layer is not None)


def _parse_unit(b: Boundary, unit: Any) -> tuple:
    form = "unit=(layer, channel) or (layer, channel, position), e.g. ('conv2', 3) or ('conv2', 3, (4, 5))"
    if not isinstance(unit, (tuple, list)) or len(unit) not in (2, 3) or not isinstance(unit[0], str):
        raise ValueError(f"{form}; got {unit!r}")
    channel = unit[1]
    if isinstance(channel, bool) or not isinstance(channel, int):
        raise ValueError(f"the unit's channel must be an int; {form}; got {channel!r}")
    position = unit[2] if len(unit) == 3 else None
    if position is not None:
        position = (position,) if isinstance(position, int) and not isinstance(position, bool) else tuple(position)
        if not all(isinstance(p, int) and not isinstance(p, bool) for p in position):
            raise ValueError(f"the unit's position must be an int or a tuple of ints; {form}; got {unit[2]!r}")
    resolve_layer(b.model, unit[0])
    return (unit[0], channel, position)


def _check_unit(w: Where, x: torch.Tensor, act: torch.Tensor) -> None:
    name, channel, position = w.unit
    tokens = token_states(w.b, x, act)
    units = act.shape[-1] if tokens else act.shape[1] if act.dim() >= 2 else 0
    if not 0 <= channel < units:
        raise ValueError(f"unit {channel} is outside layer {name!r}, which has {units} units (0..{units - 1}) in an output "
                         f"of shape {tuple(act.shape)}")
    places = (act.shape[1],) if tokens else tuple(act.shape[2:])
    if position is not None and (len(position) != len(places) or any(not 0 <= p < s for p, s in zip(position, places))):
        what = "token positions" if tokens else "positions"
        raise ValueError(f"position {position} is outside the {what} {places} of layer {name!r} (output shape "
                         f"{tuple(act.shape)}); give {len(places)} index(es) within them" if places else
                         f"layer {name!r} has no positions (output shape {tuple(act.shape)}); give unit=({name!r}, {channel})")


def unit_scores(w: Where, x: torch.Tensor, act: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
    """The activation of ``w.unit`` per row of the batch, ``(N,)``."""
    _, channel, position = w.unit
    if token_states(w.b, x, act):
        a = act[..., channel]  # (N, L)
        if position is not None:
            return a[:, position[0]]
        mask = token_mask(w.b, x, rows).to(a.dtype)
        return (a * mask).sum(1) / mask.sum(1).clamp_min(1)
    a = act[:, channel]
    if position is not None:
        return a[(slice(None), *position)]
    return a.flatten(1).mean(1) if a.dim() > 1 else a


def _forward(w: Where, v: torch.Tensor, x: torch.Tensor, rows: torch.Tensor | None, rules) -> tuple[Any, Any]:
    """(raw output, unit activation or None) of a forward from ``v`` in the space."""
    name = w.space
    capture = [w.unit[0]] if w.unit else []
    kwargs: dict[str, Any] = {"rules": rules, "capture": capture}
    if name is not None:
        kwargs["replace"] = {name: v}
    with hooks(w.b.model, **kwargs) as rec:
        out = w.b.call(v if name is None else x, rows)
    return out, (rec[w.unit[0]] if w.unit else None)


def read_score(w: Where, out: Any, act: Any, x: torch.Tensor, rows, target: Any, indices, score) -> torch.Tensor:
    """The score per row of a forward: the unit's activation, a callable target on the raw output (no
    selector), or the target class of the selected output."""
    if w.unit:
        return unit_scores(w, x, act, rows)
    if is_callable_target(target) and w.b.output is None:
        return target_scores(out, target)  # what a callable written for the raw output expects
    return target_scores(w.b.select(out), target, indices, score)


def resolve(w: Where, x: torch.Tensor, target: Any) -> torch.Tensor | None:
    """The class per sample on the clean input (``None`` for a callable target or a unit), in eval mode;
    a unit outside its layer is one line here, before any work.

    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Dropout(0.5)).train()
    >>> x = torch.rand(4, 2)
    >>> torch.equal(resolve(where(net, x), x, None), net.eval()(x).argmax(1))
    True
    """
    if w.unit is not None:
        if target is not None:
            raise ValueError("unit= explains that unit's activation, not a class: leave target=None")
        with torch.no_grad(), hooks(w.b.model, capture=[w.unit[0]]) as rec:
            w.b.call(x)
        _check_unit(w, x, rec[w.unit[0]])
        return None
    if is_callable_target(target):
        return None
    with torch.no_grad(), hooks(w.b.model):
        out = w.b.call(x)
    return target_indices(w.b.select(out), target)


def values_of(w: Where, x: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
    """The point of the attribution space that ``x`` maps to (``x`` itself, the embeddings, the layer's output)."""
    return space_values(w.b, x, rows, w.layer)


def scores_and_gradient(w: Where, v: torch.Tensor, x: torch.Tensor, target: Any, indices: torch.Tensor | None,
                        score: str | None, rows: torch.Tensor | None = None, rules=None, *, counter=None,
                        seed_rows: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(∂score/∂v, score)`` for a batch of points ``v`` of the space (``x``: the rest of the pass).

    Only ``v`` gets a gradient (parameters are frozen by ``hooks``): one forward and one backward.
    ``rules``: backward rules for the pass; ``counter``: a context manager around the forward only
    (:class:`~seethrough.attribution.rules.CountFunctional`); ``seed_rows``: only the first rows' scores
    seed the backward (DeepLIFT's ``[x; reference]`` batch).

    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 1, bias=False))
    >>> with torch.no_grad():
    ...     _ = net[0].weight.copy_(torch.tensor([[2.0, -1.0]]))
    >>> x = torch.ones(1, 2)
    >>> g, s = scores_and_gradient(where(net, x), x, x, 0, None, "logit")
    >>> g.tolist(), s.tolist()
    ([[2.0, -1.0]], [1.0])
    """
    with torch.enable_grad():
        vg = v.detach().requires_grad_(True)
        with counter if counter is not None else nullcontext():
            out, act = _forward(w, vg, x, rows, rules)
        s = read_score(w, out, act, x, rows, target, indices, score)
        (g,) = torch.autograd.grad((s if seed_rows is None else s[:seed_rows]).sum(), vg, allow_unused=True)
    return (torch.zeros_like(v) if g is None else g), s.detach()


def gradient_at(w: Where, x: torch.Tensor, target: Any, score: str | None, rules=None, *, counter=None,
                v: torch.Tensor | None = None, rows: torch.Tensor | None = None, seed_rows: int | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(v, ∂score/∂v, class per row)`` of ``x`` in one forward: :func:`resolve` and
    :func:`scores_and_gradient` merged, for the single-pass methods.

    The target class (``target=None``: the argmax) is read from the very output the gradient is taken
    through, and a ``unit=`` is checked against the activation captured in it, before the backward. The
    clean forward :func:`resolve` runs is needed by the many-pass methods (the class of the clean input,
    not of a noisy copy); here the pass *is* the clean input's (in eval mode: ``hooks`` gives that), so it
    gives the same class at the cost of one forward less. Call it inside :func:`seethrough.hooks.hooks`.
    ``v``: the point of the space (default :func:`values_of` ``x``); ``rows``/``seed_rows``: DeepLIFT's
    ``[x; reference]`` batch, whose first ``seed_rows`` rows are the samples (their class is resolved
    and given to row ``i`` as ``idx[rows[i]]``) and alone seed the backward.

    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3))
    >>> x = torch.rand(4, 2)
    >>> v, g, idx = gradient_at(where(net, x), x, None, "logit")
    >>> torch.equal(idx, net(x).argmax(1)), torch.equal(g, net[0].weight[idx])
    (True, True)
    """
    if w.unit is not None and target is not None:
        raise ValueError("unit= explains that unit's activation, not a class: leave target=None")
    v = values_of(w, x, rows) if v is None else v

    def one_pass(run) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        vg = run.input(v.detach()).requires_grad_(True)
        with counter if counter is not None else nullcontext():
            out, act = _forward(w, vg, x, rows, rules)
        idx = None
        if w.unit is not None:
            _check_unit(w, x, act)
        elif not is_callable_target(target):
            sel = w.b.select(out).detach()
            idx = target_indices(sel if seed_rows is None else sel[:seed_rows], target)
            idx = idx if rows is None else idx[rows]
        s = read_score(w, out, act, x, rows, target, idx, score)
        (g,) = torch.autograd.grad((s if seed_rows is None else s[:seed_rows]).sum(), vg, allow_unused=True)
        return g, idx

    # The one pass runs channels-last like the many-pass methods (the model converted in place and restored,
    # a layout error falling back to contiguous): the faster layout at batch 1 on EfficientNet-Lite0 (README,
    # "Speed"). The gradient is handed back in v's own layout.
    with torch.enable_grad():
        g, idx = once(w.b.model, v, one_pass)
    return v, (torch.zeros_like(v) if g is None else as_layout_of(g, v)), idx


def forward_at(w: Where, v: torch.Tensor, x: torch.Tensor, rules=None) -> Any:
    """The raw output of a forward from ``v`` without autograd (rules with ``observe`` record from it)."""
    with torch.no_grad():
        return _forward(w, v, x, None, rules)[0]


def scores_at(w: Where, v: torch.Tensor, x: torch.Tensor, target: Any, indices, score, rows=None) -> torch.Tensor:
    """The score of a forward from ``v`` without autograd, ``(N,)``."""
    with torch.no_grad():
        out, act = _forward(w, v, x, rows, None)
        return read_score(w, out, act, x, rows, target, indices, score)


# ------------------------------------------------------------------------------------ baselines and maps
TOKEN_BASELINES = ("pad", "mask", "zeros")


def baseline_values(w: Where, x: torch.Tensor, baseline: Any, blur_sigma: float | None = None) -> torch.Tensor:
    """The reference point in the attribution space.

    Input space: images take ``"zeros"``/``"black"``/``"blur"``/a number/a tensor as before; tabular rows
    also take ``"background"``, the mean row of the boundary's background (the default when there is one,
    else zeros). Token ids: ``"pad"`` (every token replaced by ``pad_id``; the default when the boundary
    has one), ``"mask"`` (``mask_id``), ``"zeros"`` (the zero vector in the embedding space, the default
    without a pad id), a long tensor of baseline ids, or a float tensor of embeddings ``(N, L, D)``.
    With ``layer=`` the baseline is given in input space and mapped through the layer, as Captum's
    layer methods do.
    """
    b = w.b
    if b.kind == "tokens":
        if baseline is None:
            baseline = "pad" if b.pad_id is not None else "zeros"
        if isinstance(baseline, str):
            if baseline not in TOKEN_BASELINES:
                raise ValueError(f"a token baseline must be one of {', '.join(map(repr, TOKEN_BASELINES))}, baseline ids "
                                 f"(a long tensor like x) or embeddings (a float tensor (N, L, D)); got {baseline!r}")
            if baseline == "zeros":
                return torch.zeros_like(values_of(w, x))
            fill = b.pad_id if baseline == "pad" else b.mask_id
            if fill is None:
                raise ValueError(f"baseline={baseline!r} needs the boundary's {baseline}_id (pass {baseline}_id=...)")
            return values_of(w, torch.full_like(x, fill))
        if isinstance(baseline, torch.Tensor) and not baseline.is_floating_point():
            return values_of(w, b.check(torch.broadcast_to(baseline.to(x.device), x.shape).clone(), name="baseline"))
        return make_baseline(values_of(w, x), baseline)
    if baseline is None:
        baseline = "background" if b.kind == "tabular" and b.background is not None else "zeros"
    if isinstance(baseline, str) and baseline == "background":
        if b.background is None:
            raise ValueError("baseline='background' needs the boundary's background rows (pass background=...)")
        baseline = b.background.to(device=x.device, dtype=x.dtype).mean(0, keepdim=True)
    if isinstance(baseline, str) and baseline == "blur" and b.kind != "image":
        raise ValueError(f"baseline='blur' is defined for images; this input is {b.kind}: use 'zeros', a number or a tensor")
    base = make_baseline(x, baseline, blur_sigma)
    return base if w.space is None else values_of(w, base)


def finish(w: Where, x: torch.Tensor, a: torch.Tensor, reduce: str | None) -> torch.Tensor:
    """The map a method returns: per-token sums over the embedding dimension for token ids (unless
    ``reduce="none"``), the space's own shape otherwise (``reduce="sum"`` sums token states of a layer)."""
    if reduce not in REDUCE:
        raise ValueError(f"reduce must be 'sum' (per token) or 'none' (the full (N, L, D)), got {reduce!r}")
    if reduce is None:
        reduce = "sum" if w.b.kind == "tokens" and w.layer is None else "none"
    if reduce == "sum":
        if not token_states(w.b, x, a):
            raise ValueError(f"reduce='sum' sums token states (N, L, D) over D; this map has shape {tuple(a.shape)}")
        return a.sum(-1)
    return a


def noise_scale(w: Where, v: torch.Tensor, relative_noise: float) -> torch.Tensor:
    """SmoothGrad's σ, broadcastable to ``v``: ``relative_noise`` × a scale of each sample's own values — per
    feature for tabular rows (the background's standard deviation, else the ``ranges`` width), else the
    range (max − min) of the sample's values in the space (images as before, token embeddings, a layer).
    A sample's σ never depends on the other samples of the batch."""
    check_nonneg_float("relative_noise", relative_noise)
    b = w.b
    if b.kind == "tabular" and w.space is None and (b.background is not None or b.ranges is not None):
        scale = (b.background.std(0, unbiased=False) if b.background is not None
                 else torch.as_tensor(b.ranges)[1] - torch.as_tensor(b.ranges)[0])
        return relative_noise * scale.to(device=v.device, dtype=v.dtype).view(1, -1)
    n = v.shape[0]
    flat = v.detach().flatten(1)
    return relative_noise * (flat.amax(1) - flat.amin(1)).view(n, *([1] * (v.dim() - 1)))
