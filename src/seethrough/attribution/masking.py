"""The shared core of the perturbation methods: score masked copies of the input, in batches.

Occlusion, LIME, KernelSHAP and RISE all evaluate ``f(x * m + baseline * (1 - m))`` for many
masks ``m``; they differ only in how they choose the masks and how they combine the scores.
Here live the two things they share: turning a ``baseline`` option into a tensor, and
:func:`masked_scores`, which runs all (image, mask) pairs through the model on the batching
engine without one Python iteration per sample.

Tabular rows and token ids (docs/boundary.md) are perturbed through the same stream of
(sample, mask) items, with the boundary's own notion of "absent" (:func:`positions`):

* **tabular rows**: a switched-off feature takes the values of the boundary's ``background``
  rows ``(M, F)``, and a coalition's score is the mean over the background,
  ``v(S) = mean_b f(x_S, b_~S)`` — the interventional expectation shap's ``KernelExplainer``
  uses — so KernelSHAP's values add up to ``f(x) − mean_b f(b)``. A ``baseline`` number or row
  stands in for a background of one row.
* **token ids**: a switched-off token becomes ``mask_id`` (else ``pad_id``, or ``baseline=<id>``);
  padding (the ``attention_mask`` or ``pad_id``, :func:`~seethrough.boundary.token_mask`) is never
  switched and never scored; every pass gets the sample's extra arguments (its attention mask).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from numbers import Real
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ..batching import bytes_per_item, model_key, run_batched
from ..boundary import Boundary, as_boundary, token_mask
from ..hooks import hooks
from ..runner import fast
from ..targets import is_callable_target, target_indices, target_scores
from .common import BASELINES, make_baseline

# masks(image_index, mask_index) -> (k, 1 or C, H, W) in [0, 1]; 1 keeps the pixel. The indices are on x's device
# and the masks should be made there too (tables moved once, up front): no host copy per batch on a GPU.
MaskFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def resolve_baseline(x: torch.Tensor, baseline: Any, *, blur_sigma: float | None = None) -> torch.Tensor:
    """The image that replaces masked pixels, shaped like ``x``.

    ``baseline`` is a number (a constant grey level in [0, 1] pixel units), ``"mean"`` (each
    image's per-channel mean), ``"black"``/``"zeros"``, ``"blur"`` (a Gaussian-blurred copy,
    sigma ``blur_sigma``) or a tensor that broadcasts to ``x``'s shape - the gradient methods'
    :func:`~seethrough.attribution.common.make_baseline` plus ``"mean"``.

    >>> x = torch.rand(2, 3, 8, 8)
    >>> resolve_baseline(x, "mean")[0, :, 0, 0].allclose(x[0].mean((1, 2)))
    True
    """
    if isinstance(baseline, str) and baseline not in _NAMED:
        raise ValueError(f"baseline must be a number, one of {', '.join(map(repr, _NAMED))} or a tensor, got {baseline!r}")
    if isinstance(baseline, str) and baseline == "mean":
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x).clone()
    if not isinstance(baseline, (str, Real, torch.Tensor)) or isinstance(baseline, bool):
        raise TypeError(f"baseline must be a number, one of {', '.join(map(repr, _NAMED))} or a tensor, "
                        f"got {type(baseline).__name__}")
    return make_baseline(x, baseline, blur_sigma)


_NAMED = ("mean", *BASELINES)


@dataclass(frozen=True)
class UnitScore:
    """``unit=(layer, channel[, position])`` as the score of a perturbation method: the unit's activation
    (a channel's mean over positions or real tokens, or one position), captured in the same forward."""

    w: Any  # a seethrough.attribution.where.Where with .unit set

    @property
    def layer(self) -> str:
        return self.w.unit[0]


def unit_target(model: nn.Module | Boundary, x: torch.Tensor, target: Any, unit: Any, method: str) -> Any:
    """``target``, or a :class:`UnitScore` when ``unit=`` is given (then ``target`` must be None)."""
    if unit is None:
        return target
    from .where import where

    if target is not None:
        raise ValueError("unit= explains that unit's activation, not a class: leave target=None")
    return UnitScore(where(model, x, unit=unit, method=method))


def unit_or_score(score: str | None, target: Any, default: str) -> str | None:
    """:func:`~seethrough.targets.method_score`, or ``None`` for a :class:`UnitScore` (an activation has no softmax)."""
    from ..targets import method_score

    if isinstance(target, UnitScore):
        if score is not None:
            raise ValueError(f"score={score!r} applies to class targets; unit= reads the unit's activation itself")
        return None
    return method_score(score, target, default)


def _capture(target: Any) -> list[str]:
    return [target.layer] if isinstance(target, UnitScore) else []


def _unit_scores(target: "UnitScore", batch: torch.Tensor, rec: Any, rows: torch.Tensor | None, first: bool) -> torch.Tensor:
    from .where import _check_unit, unit_scores

    act = rec[target.layer]
    if first:
        _check_unit(target.w, batch, act)  # a channel or position outside the layer: one line
    out = unit_scores(target.w, batch, act, rows)
    rec.clear()
    return out


def read_scores(b: Boundary, out: Any, target: Any, indices: torch.Tensor | None, score: str | None) -> torch.Tensor:
    """The ``(N,)`` target scores of a raw model output read through the boundary: a callable target
    gets the output as the model returns it when the boundary has no ``output`` selector, else the
    selected tensor (docs/boundary.md, "Outputs"); a class target reads the selected tensor."""
    if is_callable_target(target):
        return target_scores(out if b.output is None else b.select(out), target, None, score)
    return target_scores(b.select(out), target, indices, score)


def clean_forward(model: nn.Module | Boundary, x: torch.Tensor, target: Any, score: str | None = None,
                  ) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The target class per sample (``None`` for a callable target) and the clean scores
    (``score``: see :func:`seethrough.targets.target_scores`); ``model`` may be a boundary."""
    b = as_boundary(model, x)
    with hooks(b.model, capture=_capture(target), detach=True) as rec, torch.no_grad():
        out = b.call(x)
        if isinstance(target, UnitScore):
            return None, _unit_scores(target, x, rec, None, True)
    idx = None if is_callable_target(target) else target_indices(b.select(out), target)
    return idx, read_scores(b, out, target, idx, score).detach()


def masked_scores(
    model: nn.Module,
    x: torch.Tensor,
    target: Any,
    indices: torch.Tensor | None,
    counts: int | Sequence[int],
    masks: MaskFn,
    baseline: torch.Tensor,
    *,
    batch_size: int | str = "auto",
    memory_budget: int | None = None,
    progress: bool = True,
    desc: str = "",
    score: str | None = None,
    compile: bool = False,
) -> list[torch.Tensor]:
    """Scores of ``x[i] * m + baseline[i] * (1 - m)`` for ``counts[i]`` masks per image.

    All (image, mask) pairs form one stream of items evaluated by :func:`run_batched`, so
    the batch size is chosen once for the whole work, across images. Returns one ``(counts[i],)``
    tensor per image. ``indices`` are the target classes from :func:`clean_forward`; ``score``
    how they are read (logit, probability or log-probability; ``None`` for a callable target).
    The passes run through :func:`seethrough.runner.fast`: channels-last in place for a conv model
    (restored on exit), compiled with ``compile=True`` (not with ``unit=``: a captured layer needs hooks).
    """
    n_img = x.shape[0]
    counts = [counts] * n_img if isinstance(counts, int) else list(counts)
    offsets = torch.tensor([0, *counts], device=x.device).cumsum(0)  # on the device: no index copy per batch
    total = int(offsets[-1])

    def evaluate(start: int, stop: int) -> torch.Tensor:
        item = torch.arange(start, stop, device=x.device)
        img = torch.searchsorted(offsets, item, right=True) - 1
        local = item - offsets[img]
        img_d = img.to(x.device)
        m = masks(img, local).to(device=x.device, dtype=x.dtype)
        batch = run.input(torch.lerp(baseline[img_d], x[img_d], m))
        net = b if run.model is b.model else replace(b, model=run.model)
        out = net.call(batch, img_d)
        if isinstance(target, UnitScore):
            return _unit_scores(target, batch, rec, img_d, start == 0)
        return read_scores(net, out, target, None if indices is None else indices[img_d], score).detach()

    b = as_boundary(model, x)
    with hooks(b.model, capture=_capture(target), detach=True) as rec, torch.no_grad(), \
            fast(b.model, x, "forward", compile=compile and not _capture(target) and not b.extra, n=total,
                 batch_size=batch_size) as run:
        scores = run_batched(
            run.guard(evaluate), total, batch_size=run.batch_size, item_bytes=bytes_per_item(x, "forward"),
            memory_budget=memory_budget, key=run.key, progress=progress, desc=desc, device=x.device,
        )
    return list(scores.split(counts))


# ---------------------------------------------------------------------------------- rows and tokens
@dataclass(frozen=True)
class Positions:
    """What the perturbation methods switch on and off in a non-image batch ``x``: its ``P`` positions.

    Tabular rows: the ``F`` features, replaced by the ``base`` rows ``(M, F)`` (the background);
    token ids: the ``L`` tokens, replaced by the ids ``base (N, L)``; ``real (N, P)`` marks the
    positions that may be switched (the real tokens; every feature of a row).
    """

    b: Boundary
    x: torch.Tensor
    base: torch.Tensor
    real: torch.Tensor

    @property
    def size(self) -> int:
        return int(self.x.shape[1])


def positions(model: nn.Module | Boundary, x: torch.Tensor, baseline: Any, method: str) -> Positions:
    """The :class:`Positions` of tabular rows or token ids ``x`` for ``method``; one line when the
    boundary does not say what an absent feature or token is.

    >>> net = nn.Linear(3, 2)
    >>> p = positions(as_boundary(net, torch.zeros(2, 3), background=torch.ones(5, 3)), torch.zeros(2, 3), None, "occlusion")
    >>> tuple(p.base.shape), p.real.all().item()
    ((5, 3), True)
    """
    b = as_boundary(model, x)
    if b.kind == "tabular":
        f = x.shape[1]
        if baseline is None:
            if b.background is None:
                raise ValueError(f"{method} on tabular rows replaces a switched-off feature by the background set: give "
                                 "background=(M, features) rows (a boundary field), or baseline= a number or one row")
            base = b.background
        elif isinstance(baseline, Real) and not isinstance(baseline, bool):
            base = torch.full((1, f), float(baseline))
        elif isinstance(baseline, torch.Tensor) and baseline.dim() in (1, 2) and baseline.shape[-1] == f:
            base = baseline.reshape(-1, f)
        else:
            raise ValueError(f"baseline on tabular rows must be None (the background), a number, or a ({f},) row or "
                             f"(M, {f}) rows; got {baseline if not isinstance(baseline, torch.Tensor) else tuple(baseline.shape)!r}")
        if base.shape[1] != f:
            raise ValueError(f"the background has {base.shape[1]} columns but x has {f} features per row")
        base = base.to(device=x.device, dtype=x.dtype)
        return Positions(b, x, base, torch.ones(x.shape, dtype=torch.bool, device=x.device))
    if b.kind == "tokens":
        if baseline is None:
            baseline = b.mask_id if b.mask_id is not None else b.pad_id
        if baseline is None:
            raise ValueError(f"{method} on token ids replaces a switched-off token by an id: give mask_id= or pad_id= "
                             "(boundary fields), or baseline=<id>")
        if isinstance(baseline, bool) or not isinstance(baseline, int):
            raise ValueError(f"baseline on token ids must be one token id (an int), got {baseline!r}")
        vocab = b.vocab_size()
        if baseline < 0 or (vocab is not None and baseline >= vocab):
            raise ValueError(f"baseline id {baseline} is outside the vocabulary (0..{(vocab or 1) - 1})")
        return Positions(b, x, torch.full_like(x, baseline), token_mask(b, x))
    raise ValueError(f"{method} switches features of tabular rows or tokens of token ids here; this input is {b.kind!r}")


# keep(sample_index, mask_index) -> (k, P) bool; True keeps the position (indices on x's device, as for MaskFn).
KeepFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def position_scores(p: Positions, target: Any, indices: torch.Tensor | None, counts: int | Sequence[int], keep: KeepFn,
                    *, batch_size: int | str = "auto", memory_budget: int | None = None, progress: bool = True,
                    desc: str = "", score: str | None = None) -> list[torch.Tensor]:
    """Scores of the copies of each sample that keep the positions ``keep(i, j)`` says: one ``(counts[i],)``
    tensor per sample. Positions that are not ``real`` are always kept. For rows, a copy's score is the mean
    over the background rows (one forward of ``k × M`` rows per batch of ``k`` copies)."""
    b, x = p.b, p.x
    n = x.shape[0]
    counts = [counts] * n if isinstance(counts, int) else list(counts)
    offsets = torch.tensor([0, *counts], device=x.device).cumsum(0)  # on the device: no index copy per batch
    total = int(offsets[-1])
    tabular = b.kind == "tabular"
    m = p.base.shape[0] if tabular else 1

    def evaluate(start: int, stop: int) -> torch.Tensor:
        item = torch.arange(start, stop, device=x.device)
        img = torch.searchsorted(offsets, item, right=True) - 1
        img_d = img.to(x.device)
        kept = keep(img, item - offsets[img]).to(x.device) | ~p.real[img_d]
        if tabular:
            batch = torch.where(kept[:, None, :], x[img_d][:, None, :], p.base[None]).reshape(-1, x.shape[1])
            rows = img_d.repeat_interleave(m)
        else:
            batch, rows = torch.where(kept, x[img_d], p.base[img_d]), img_d
        out = b.call(batch, rows)
        if isinstance(target, UnitScore):
            s = _unit_scores(target, batch, rec, rows, start == 0)
        else:
            s = read_scores(b, out, target, None if indices is None else indices[rows], score).detach()
        return s.view(-1, m).mean(1)

    with hooks(b.model, capture=_capture(target), detach=True) as rec, torch.no_grad():
        scores = run_batched(evaluate, total, batch_size=batch_size, item_bytes=bytes_per_item(x, "forward") * m,
                             memory_budget=memory_budget, key=model_key(b.model, x, f"forward-{b.kind}-{m}"),
                             progress=progress, desc=desc, device=x.device)
    return list(scores.split(counts))
