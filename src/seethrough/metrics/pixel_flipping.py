"""Pixel flipping (Bach et al., 2015; Samek et al., 2017): flip pixels to a baseline in relevance order, summarised by AOPC."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..attribution.common import make_baseline
from .curves import CurveResult, aopc, curve_metric


def pixel_flipping(model: nn.Module, x: torch.Tensor, attribution: torch.Tensor, target: Any = None, *,
                   order: str = "morf", baseline: Any = "black", steps: int | None = None, patch: int = 1,
                   score: str = "probability", n_random: int = 1, seed: int = 0, batch_size: int | str = "auto",
                   progress: bool = True) -> CurveResult:
    """The flipping curve and its AOPC = mean over steps of ``f(x) − f(x after k steps)``.

    ``order="morf"`` (most relevant first: a faithful map gives a *large* AOPC) or ``"lerf"``
    (least relevant first: a faithful map gives a *small* one). Pixels go to ``baseline``.

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> x, y = see.zoo.digits("test")
    >>> a = see.attribute(model, x[:1], "grad-x-input", target=y[:1])
    >>> r = see.metrics.pixel_flipping(model, x[:1], a, y[:1], steps=8, progress=False)
    >>> bool((r.score > r.random_score).all())
    True
    """
    base = make_baseline(x, baseline)
    return curve_metric("pixel_flipping", model, x, attribution, target, start=x.detach(), end=base, order=order,
                        steps=steps, patch=patch, score=score, summary=aopc, n_random=n_random, seed=seed,
                        batch_size=batch_size, progress=progress)
