"""The engine behind deletion, insertion, pixel flipping and region perturbation.

A curve moves an image from a *start* picture to an *end* picture in ``steps`` steps,
unit by unit (a unit is one pixel or one ``patch``×``patch`` square, all channels at once),
in the order an attribution map ranks the units, and scores the explained class after each
step. Every ``(sample, step)`` image is built lazily inside :func:`run_batched`, so many
perturbed copies go through one forward and memory stays bounded. Each curve comes with the
same curve for a seeded random ranking of the units: a score means little without it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F

from ..batching import bytes_per_item, run_batched
from ..hooks import hooks
from ..inputs import check_images
from ..results import ResultProtocol
from ..runner import fast
from ..seeding import per_sample
from ..targets import target_scores

SCORES = ("probability", "logit")


@dataclass
class CurveResult(ResultProtocol):
    """``curve[i, k]``: the class score of sample ``i`` after step ``k`` (k = 0 is the start image);
    ``random`` the same for random rankings (mean over ``n_random`` orderings); ``fraction[k]`` the
    share of units changed after step ``k``. ``score`` is the AUC on [0, 1] (trapezoid rule) or the
    AOPC, one per sample, and ``random_score`` its random-ranking baseline."""

    metric: str
    order: str
    curve: torch.Tensor
    random: torch.Tensor
    fraction: torch.Tensor
    score: torch.Tensor
    random_score: torch.Tensor
    options: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None

    def summary(self) -> str:
        rand = float(self.random_score.double().nanmean())
        return (f"{self.metric} ({self.order}): mean {float(self.score.double().nanmean()):.3f} over {len(self.score)} "
                f"samples, random ranking {rand:.3f}")

    def to_frame(self):
        """One row per sample: score, random-ranking score and their difference."""
        import pandas as pd

        return pd.DataFrame({"metric": self.metric, "order": self.order, "sample": range(len(self.score)),
                             "score": self.score.tolist(), "random": self.random_score.tolist(),
                             "difference": (self.score - self.random_score).tolist()})


def check_map(x: torch.Tensor, attribution: torch.Tensor) -> torch.Tensor:
    """The map reduced to one value per pixel, ``(N, H, W)``; a map of the wrong shape is an error."""
    if not isinstance(attribution, torch.Tensor):
        raise TypeError(f"attribution must be a tensor (N, C, H, W) or (N, 1, H, W), got {type(attribution).__name__}")
    if attribution.dim() != 4 or attribution.shape[0] != x.shape[0] or attribution.shape[-2:] != x.shape[-2:] \
            or attribution.shape[1] not in (1, x.shape[1]):
        raise ValueError(f"attribution of shape {tuple(attribution.shape)} does not fit x of shape {tuple(x.shape)}; "
                         f"expected ({x.shape[0]}, {x.shape[1]} or 1, {x.shape[2]}, {x.shape[3]})")
    a = attribution.detach().to(x.dtype).sum(1)
    if not torch.isfinite(a).all():
        raise ValueError("attribution contains NaN or infinite values")
    return a


def unit_values(a: torch.Tensor, patch: int) -> torch.Tensor:
    """``(N, H, W)`` map → ``(N, U)`` one value per unit (mean over each patch; edge patches may be smaller)."""
    if patch == 1:
        return a.flatten(1)
    return F.avg_pool2d(a[:, None], patch, stride=patch, ceil_mode=True).flatten(1)


def unit_masks(ranks: torch.Tensor, counts: torch.Tensor, hw: tuple[int, int], patch: int) -> torch.Tensor:
    """``(B, 1, H, W)`` boolean masks of the first ``counts[b]`` units of ``ranks[b]``."""
    b, u = ranks.shape
    chosen = torch.arange(u, device=ranks.device)[None] < counts[:, None]
    m = torch.zeros(b, u, dtype=torch.bool, device=ranks.device)
    m.scatter_(1, ranks, chosen)
    h, w = hw
    gh, gw = math.ceil(h / patch), math.ceil(w / patch)
    m = m.view(b, 1, gh, gw)
    if patch > 1:
        m = m.repeat_interleave(patch, 2).repeat_interleave(patch, 3)[..., :h, :w]
    return m


def check_steps(steps: Any, units: int) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if steps > units:
        raise ValueError(f"steps={steps} is more than the {units} units (pixels or patches) to change; "
                         f"use steps <= {units}")
    return steps


def check_patch(patch: Any, hw: tuple[int, int]) -> int:
    if isinstance(patch, bool) or not isinstance(patch, int) or patch < 1 or patch > min(hw):
        raise ValueError(f"patch must be an int in 1..{min(hw)} (pixels), got {patch!r}")
    return patch


def _is_fn(target: Any) -> bool:
    return callable(target) and not isinstance(target, torch.Tensor)


def class_score(out: torch.Tensor, target: torch.Tensor | Callable, score: str) -> torch.Tensor:
    """The explained class's probability or logit; a callable target defines the score itself."""
    if _is_fn(target):
        return target_scores(out, target)
    if score == "probability":
        out = out.softmax(1)
    # ``target`` holds classes resolve_target range-checked once up front: passed as the indices, target_scores
    # skips that check here (a host sync per batch on a GPU)
    return target_scores(out, target, indices=target)


def run_curves(model: nn.Module, x: torch.Tensor, ranks: torch.Tensor, start: torch.Tensor, end: torch.Tensor,
               target: Any, *, steps: int, patch: int, score: str, batch_size: int | str = "auto",
               progress: bool = True, desc: str = "curve") -> torch.Tensor:
    """Scores ``(N, steps + 1)``: image ``i`` after step ``k`` has its first ``ceil(k·U/steps)`` units
    of ``ranks[i]`` taken from ``end[i]``, the rest from ``start[i]``."""
    n, u = ranks.shape
    ranks = ranks.to(x.device)  # the index tables on x's device, once: no host copy per batch on a GPU
    per_step = torch.tensor([math.ceil(k * u / steps) for k in range(steps + 1)], device=x.device)
    hw = (x.shape[2], x.shape[3])

    def fn(a: int, b: int) -> torch.Tensor:
        items = torch.arange(a, b, device=x.device)
        i, k = items // (steps + 1), items % (steps + 1)
        m = unit_masks(ranks[i], per_step[k], hw, patch)
        imgs = torch.where(m, end[i], start[i])
        return class_score(run.model(run.input(imgs)), target if _is_fn(target) else target[i], score)

    with hooks(model), torch.no_grad(), fast(model, x, "forward") as run:  # channels-last in place, restored
        out = run_batched(run.guard(fn), n * (steps + 1), batch_size=batch_size, item_bytes=bytes_per_item(x),
                          device=x.device, key=run.key, progress=progress, desc=desc)
    return out.view(n, steps + 1).detach()


def auc(curve: torch.Tensor) -> torch.Tensor:
    """Area under each curve over [0, 1] with the trapezoid rule: ``(N, K)`` → ``(N,)``.

    >>> auc(torch.tensor([[1.0, 0.0]])).item()
    0.5
    """
    k = curve.shape[1]
    if k < 2:
        return curve[:, 0].clone()
    return torch.trapezoid(curve, dx=1.0 / (k - 1), dim=1)


def aopc(curve: torch.Tensor) -> torch.Tensor:
    """Area over the perturbation curve (Samek et al., 2017): mean of ``f(x⁰) − f(xᵏ)`` over k = 0..L.

    >>> aopc(torch.tensor([[1.0, 0.5, 0.0]])).item()
    0.5
    """
    return (curve[:, :1] - curve).mean(1)


def random_ranks(n: int, u: int, seed: int, device: torch.device) -> torch.Tensor:
    """``n`` different random rankings of ``u`` units, the rows of one seeded stream (text's word curves).

    >>> r = random_ranks(2, 5, 0, torch.device("cpu"))
    >>> r.shape, bool((r[0] != r[1]).any())
    (torch.Size([2, 5]), True)
    """
    gen = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randperm(u, generator=gen) for _ in range(n)]).to(device)


def sample_ranks(n: int, u: int, seed: int, device: torch.device) -> torch.Tensor:
    """One random ranking of ``u`` units for each of ``n`` samples, from each sample's own stream
    (:func:`seethrough.seeding.per_sample`): sample ``i`` gets the ranking it gets alone, whatever its batch.
    A random-ranking baseline's draw ``r`` uses ``seed + r``.

    >>> r = sample_ranks(3, 5, 0, torch.device("cpu"))
    >>> torch.equal(r[2], sample_ranks(1, 5, 0, torch.device("cpu"))[0]), sorted(r[0].tolist())
    (True, [0, 1, 2, 3, 4])
    """
    return per_sample(n, lambda g: torch.randperm(u, generator=g), seed).to(device)


def curve_metric(name: str, model: nn.Module, x: torch.Tensor, attribution: torch.Tensor, target: Any, *,
                 start: torch.Tensor, end: torch.Tensor, order: str, steps: int | None, patch: int, score: str,
                 summary: Callable[[torch.Tensor], torch.Tensor], n_random: int, seed: int,
                 batch_size: int | str, progress: bool) -> CurveResult:
    """Shared checks, ordering, the curve, the random-ranking curves and the summary."""
    from ..attribution.common import resolve_target
    from ..boundary import image_only

    model = image_only(model, f"{name} curves over pixels")  # rows and tokens: deletion/insertion (.positions)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_images(x, model=model)
    a = check_map(x, attribution)
    if order not in ("morf", "lerf"):
        raise ValueError(f"order must be 'morf' (most relevant first) or 'lerf' (least relevant first), got {order!r}")
    if score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(map(repr, SCORES))}, got {score!r}")
    if isinstance(n_random, bool) or not isinstance(n_random, int) or n_random < 0:
        raise ValueError(f"n_random must be an int >= 0, got {n_random!r}")
    hw = (x.shape[2], x.shape[3])
    patch = check_patch(patch, hw)
    values = unit_values(a, patch)
    u = values.shape[1]
    steps = check_steps(min(u, hw[1] // patch or 1) if steps is None else steps, u)
    idx = resolve_target(model, x, target)
    tgt = target if idx is None else idx
    ranks = torch.sort(values, dim=1, descending=order == "morf", stable=True).indices
    common = dict(steps=steps, patch=patch, score=score, batch_size=batch_size, progress=progress)
    curve = run_curves(model, x, ranks, start, end, tgt, desc=name, **common)
    if n_random:
        rand = torch.stack([run_curves(model, x, sample_ranks(len(x), u, seed + r, x.device), start, end, tgt,
                                       desc=f"{name} (random)", **common) for r in range(n_random)])
        rand_curve, rand_score = rand.mean(0), torch.stack([summary(c) for c in rand]).mean(0)
    else:
        rand_curve = torch.full_like(curve, float("nan"))
        rand_score = torch.full((len(x),), float("nan"), dtype=curve.dtype, device=curve.device)
    fraction = torch.tensor([math.ceil(k * u / steps) / u for k in range(steps + 1)], dtype=curve.dtype,
                            device=curve.device)
    return CurveResult(name, order, curve, rand_curve, fraction, summary(curve), rand_score,
                       {"steps": steps, "patch": patch, "score": score, "n_random": n_random, "seed": seed}, seed=seed)
