"""Deletion (Petsiuk, Das & Saenko, 2018): remove the most relevant pixels first; a faithful map makes the score fall fast."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..attribution.common import make_baseline
from .curves import CurveResult, auc, curve_metric
from .positions import on_positions, position_curve


def deletion(model: nn.Module, x: torch.Tensor, attribution: torch.Tensor, target: Any = None, *,
             baseline: Any = "black", steps: int | None = None, patch: int = 1, score: str = "probability",
             n_random: int = 1, seed: int = 0, batch_size: int | str = "auto", progress: bool = True) -> CurveResult:
    """The deletion curve and its AUC on [0, 1] (lower is better), next to a random ranking's.

    Petsiuk et al.'s protocol by default: the explained class's probability, pixels ranked by the
    map (summed over channels) and replaced by ``baseline`` (black) a fixed number per step —
    ``steps=None`` is one image row's worth of pixels per step (``W`` steps); ``patch=p`` ranks
    ``p``×``p`` squares instead of pixels. On tabular rows and token ids (a boundary, or the fields as
    keywords of the boundary) the units are features or tokens and a removed one takes the background
    mean or the mask/pad id (:mod:`seethrough.metrics.positions`); ``steps=None`` is one unit per step.

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> x, y = see.zoo.digits("test")
    >>> a = see.attribute(model, x[:1], "grad-x-input", target=y[:1])
    >>> r = see.metrics.deletion(model, x[:1], a, y[:1], steps=8, progress=False)
    >>> bool((r.score < r.random_score).all())
    True
    """
    if on_positions(model, x):  # tabular rows or token ids: features/tokens take the background mean / mask id
        return position_curve("deletion", model, x, attribution, target, insert=False,
                              baseline=None if isinstance(baseline, str) else baseline, steps=steps, score=score,
                              n_random=n_random, seed=seed, batch_size=batch_size, progress=progress)
    base = make_baseline(x, baseline)
    return curve_metric("deletion", model, x, attribution, target, start=x.detach(), end=base, order="morf",
                        steps=steps, patch=patch, score=score, summary=auc, n_random=n_random, seed=seed,
                        batch_size=batch_size, progress=progress)
