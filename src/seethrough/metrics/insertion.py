"""Insertion (Petsiuk, Das & Saenko, 2018): put the most relevant pixels back first; a faithful map makes the score rise fast."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..attribution.common import make_baseline
from .curves import CurveResult, auc, curve_metric
from .positions import on_positions, position_curve


def insertion(model: nn.Module, x: torch.Tensor, attribution: torch.Tensor, target: Any = None, *,
              start: Any = "blur", blur_sigma: float | None = None, steps: int | None = None, patch: int = 1,
              score: str = "probability", n_random: int = 1, seed: int = 0, batch_size: int | str = "auto",
              progress: bool = True) -> CurveResult:
    """The insertion curve and its AUC on [0, 1] (higher is better), next to a random ranking's.

    Starts from ``start`` (a blurred copy of ``x`` by default, σ = ``blur_sigma`` or 1/10 of the
    shorter side; ``"black"``, a number or a tensor also work) and copies pixels of ``x`` in, most
    relevant first; steps and patches as in :func:`~seethrough.metrics.deletion` (also for tabular rows and
    token ids: features or tokens, from the background mean or the mask/pad id).

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> x, y = see.zoo.digits("test")
    >>> a = see.attribute(model, x[:1], "grad-x-input", target=y[:1])
    >>> r = see.metrics.insertion(model, x[:1], a, y[:1], start="black", steps=8, progress=False)
    >>> bool((r.score > r.random_score).all())
    True
    """
    if on_positions(model, x):  # tabular rows or token ids: start from the background mean / the mask id
        return position_curve("insertion", model, x, attribution, target, insert=True,
                              baseline=None if isinstance(start, str) else start, steps=steps, score=score,
                              n_random=n_random, seed=seed, batch_size=batch_size, progress=progress)
    first = make_baseline(x, start, blur_sigma)
    return curve_metric("insertion", model, x, attribution, target, start=first, end=x.detach(), order="morf",
                        steps=steps, patch=patch, score=score, summary=auc, n_random=n_random, seed=seed,
                        batch_size=batch_size, progress=progress)
