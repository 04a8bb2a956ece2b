"""Helpers the gradient, rule and CAM methods share: one input gradient, baselines, option checks."""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..hooks import forward
from ..outputs import detach
from ..targets import target_indices, target_scores


def input_gradient(model: nn.Module, x: torch.Tensor, target: Any, indices: torch.Tensor | None = None,
                   score: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(∂score/∂x, output)`` for a batch; call it inside :func:`seethrough.hooks.hooks`.

    ``score`` is how a class target is read (:data:`seethrough.targets.SCORES`; default the logit).

    Only the input gets a gradient (parameters are frozen by ``hooks``), so this is the cost of
    one forward and one input-gradient pass, never a ``.backward()`` touching ``.grad``.
    """
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        out = model(xg)
        scores = target_scores(out, target, indices, score)
        (g,) = torch.autograd.grad(scores.sum(), xg, allow_unused=True)
    if g is None:  # the score does not depend on the input at all
        g = torch.zeros_like(x)
    return g, detach(out)  # a tuple or dict output is fine for a callable target


def resolve_target(model: nn.Module, x: torch.Tensor, target: Any) -> torch.Tensor | None:
    """The class per sample, fixed on the clean input (``None`` for a callable target).

    Noisy or interpolated copies of a sample are scored for the class chosen here, so
    ``target=None`` means "the class predicted for x", not "whatever each copy predicts".
    The forward runs inside :func:`seethrough.hooks.hooks` (eval mode): a model in train mode
    keeps its BatchNorm statistics and the class does not depend on a Dropout draw.

    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Dropout(0.5)).train()
    >>> x = torch.rand(4, 2)
    >>> torch.equal(resolve_target(net, x, None), net.eval()(x).argmax(1))
    True
    """
    if callable(target) and not isinstance(target, torch.Tensor):
        return None
    return target_indices(forward(model, x), target)


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def check_nonneg_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of an image batch with reflected borders (torch only)."""
    if sigma <= 0:
        return x.clone()
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    pad_h, pad_w = min(radius, x.shape[2] - 1), min(radius, x.shape[3] - 1)
    out = x
    if pad_w > 0:
        kw = k[radius - pad_w: radius + pad_w + 1]
        out = torch.nn.functional.pad(out, (pad_w, pad_w, 0, 0), mode="reflect")
        out = torch.nn.functional.conv2d(out, (kw / kw.sum()).view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    if pad_h > 0:
        kh = k[radius - pad_h: radius + pad_h + 1]
        out = torch.nn.functional.pad(out, (0, 0, pad_h, pad_h), mode="reflect")
        out = torch.nn.functional.conv2d(out, (kh / kh.sum()).view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return out


BASELINES = ("zeros", "black", "blur")


def make_baseline(x: torch.Tensor, baseline: Any, blur_sigma: float | None = None) -> torch.Tensor:
    """The reference input: ``"zeros"``/``"black"`` (the same thing for images in [0, 1]),
    ``"blur"`` (x blurred, σ = ``blur_sigma`` pixels, default 1/10 of the shorter side) or a
    tensor broadcastable to ``x``.

    >>> make_baseline(torch.ones(1, 1, 4, 4), "black").sum().item()
    0.0
    """
    if isinstance(baseline, torch.Tensor):
        try:
            b = torch.broadcast_to(baseline.to(device=x.device, dtype=x.dtype), x.shape)
        except RuntimeError as e:
            raise ValueError(f"baseline of shape {tuple(baseline.shape)} does not broadcast to x's shape {tuple(x.shape)}") from e
        if not torch.isfinite(b).all():
            raise ValueError("baseline contains NaN or infinite values")
        return b.detach().clone()
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        return torch.full_like(x, float(baseline))
    if baseline in ("zeros", "black"):
        return torch.zeros_like(x)
    if baseline == "blur":
        sigma = min(x.shape[-2:]) / 10 if blur_sigma is None else check_nonneg_float("blur_sigma", blur_sigma)
        return gaussian_blur(x.detach(), sigma)
    raise ValueError(f"baseline must be one of {', '.join(map(repr, BASELINES))}, a number or a tensor broadcastable to x; got {baseline!r}")


def reject_unknown(method: str, options: dict[str, Any], allowed: tuple[str, ...]) -> None:
    """A misspelt option is an error that lists what the method accepts, never silently ignored."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"{method} got unknown option(s) {', '.join(unknown)}; it accepts: {', '.join(allowed) or 'none'}")
