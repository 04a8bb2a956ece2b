"""Attacks on tabular rows: the budget is in the features' own units, the rows stay inside ``ranges``.

Images have one unit (a pixel level, 0-255) and one valid range ([0, 1]); table columns have
neither: a millimetre and a count do not compare. So on a tabular boundary (docs/boundary.md)
``eps`` is in feature units — a number for every column, or one value per column (e.g. a
fraction of each feature's standard deviation) — and every step is clamped to the boundary's
``ranges`` ``(2, F)`` (per-feature min and max; no clamp without them). FGSM, BIM and PGD keep
their step rules (sign of the gradient under L∞, the normalised gradient under L2 with a
single ``eps``); ``ascent`` has no ε-ball and is image-only. The loop and the history are
:func:`seethrough.adversarial.attacks.perturb`'s.
"""
from __future__ import annotations

import math
from numbers import Real
from typing import Any

import torch

from ..boundary import Boundary
from .attacks import ATTACKS, _direction, _flat_norm

TABULAR_ATTACKS = ("fgsm", "bim", "pgd")


def feature_budget(eps: Any, f: int, norm: str) -> torch.Tensor:
    """``eps`` as a ``(F,)`` float64 budget in feature units (one line for anything else).

    >>> feature_budget(0.5, 3, "linf").tolist()
    [0.5, 0.5, 0.5]
    """
    if isinstance(eps, Real) and not isinstance(eps, bool) and math.isfinite(eps) and eps >= 0:
        return torch.full((f,), float(eps), dtype=torch.float64)
    if norm == "linf" and isinstance(eps, torch.Tensor) and eps.shape == (f,) and bool(torch.isfinite(eps).all()) \
            and bool((eps >= 0).all()):
        return eps.detach().double().cpu()
    raise ValueError(f"eps on tabular rows is in the features' own units: a number >= 0, or (norm='linf') one value per "
                     f"feature, shape ({f},); got {eps if not isinstance(eps, torch.Tensor) else tuple(eps.shape)!r}")


def clamp_ranges(x: torch.Tensor, ranges: torch.Tensor | None) -> torch.Tensor:
    """``x`` clamped to the per-feature ``(min, max)`` of ``ranges (2, F)``; unchanged without ranges.

    >>> clamp_ranges(torch.tensor([[5., -5.]]), torch.tensor([[0., 0.], [1., 1.]])).tolist()
    [[1.0, 0.0]]
    """
    if ranges is None:
        return x
    r = ranges.to(device=x.device, dtype=x.dtype)
    return torch.minimum(torch.maximum(x, r[0]), r[1])


def tabular_build(b: Boundary, method: str, x: torch.Tensor, gen: torch.Generator, opts: dict[str, Any]):
    """``(start, step, steps)`` of ``method`` on rows ``x``: the image step rules with a feature-unit budget."""
    if method not in TABULAR_ATTACKS:
        raise ValueError(f"attack {method!r} is defined for images (no ε-ball); on tabular rows use one of "
                         f"{', '.join(TABULAR_ATTACKS)}")
    norm = opts["norm"]
    e = feature_budget(opts["eps"], x.shape[1], norm).to(device=x.device, dtype=x.dtype)
    steps = 1 if method == "fgsm" else opts["steps"]
    size = opts.get("step_size")
    alpha = e if method == "fgsm" else (2.5 * e / steps if size is None else torch.full_like(e, float(size)))
    if b.ranges is not None and b.ranges.shape[-1] != x.shape[1]:
        raise ValueError(f"ranges has {b.ranges.shape[-1]} columns but the rows have {x.shape[1]} features")
    if b.ranges is not None and not bool(((x >= b.ranges[0].to(x)) & (x <= b.ranges[1].to(x))).all()):
        raise ValueError("x has values outside the boundary's ranges; give ranges that contain the rows")

    def project(xk: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        if norm == "linf":
            xk = torch.minimum(torch.maximum(xk, x0 - e), x0 + e)
        else:
            d = xk - x0
            xk = x0 + d * (e[0] / _flat_norm(d).clamp_min(1e-12)).clamp(max=1.0)
        return clamp_ranges(xk, b.ranges)

    def step(xk: torch.Tensor, grad: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        return project(xk + alpha * _direction(grad, norm), x0)

    start = x
    if method == "pgd" and opts.get("random_start", True):
        noise = (torch.rand(tuple(x.shape), generator=gen, dtype=torch.float64) * 2 - 1).to(x) * e
        start = project(x + noise, x)
    return start, step, steps


def tabular_options(method: str, options: dict[str, Any]) -> dict[str, Any]:
    """The method's defaults merged with ``options`` (unknown names are one line); ``eps`` is not checked in
    pixel units here (:func:`feature_budget` checks it in feature units)."""
    if method not in ATTACKS:
        raise ValueError(f"unknown attack method {method!r}; available on tabular rows: {', '.join(TABULAR_ATTACKS)}")
    defaults = ATTACKS[method].defaults
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise TypeError(f"attack {method!r} does not take option(s) {', '.join(unknown)}; it takes: {', '.join(defaults)}")
    opts = {**defaults, **options}
    if opts.get("norm") not in (None, "linf", "l2"):
        raise ValueError(f"norm must be 'linf' or 'l2', got {opts['norm']!r}")
    if "steps" in opts and (isinstance(opts["steps"], bool) or not isinstance(opts["steps"], int) or opts["steps"] < 1):
        raise ValueError(f"steps must be a positive int, got {opts['steps']!r}")
    return opts
