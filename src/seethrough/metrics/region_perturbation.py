"""Region perturbation (Samek et al., 2017): replace square regions by uniform noise in relevance order; AOPC."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..seeding import per_sample
from .curves import CurveResult, aopc, curve_metric


def region_perturbation(model: nn.Module, x: torch.Tensor, attribution: torch.Tensor, target: Any = None, *,
                        order: str = "morf", patch: int = 9, steps: int | None = None, score: str = "probability",
                        n_random: int = 1, seed: int = 0, batch_size: int | str = "auto",
                        progress: bool = True) -> CurveResult:
    """AOPC of replacing ``patch``×``patch`` regions (9×9 as the paper) by seeded uniform noise in [0, 1].

    Regions are ranked by their mean relevance; ``order`` as in
    :func:`~seethrough.metrics.pixel_flipping`.

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> x, y = see.zoo.digits("test")
    >>> a = see.attribute(model, x[:2], "grad-x-input", target=y[:2])
    >>> r = see.metrics.region_perturbation(model, x[:2], a, y[:2], patch=4, progress=False)
    >>> r.options["steps"]
    8
    """
    # every image's noise from its own stream (the same for each): an image's curve never depends on its batch
    noise = per_sample(len(x), lambda g: torch.rand(x.shape[1:], generator=g, dtype=x.dtype), seed).to(x.device)
    return curve_metric("region_perturbation", model, x, attribution, target, start=x.detach(), end=noise,
                        order=order, steps=steps, patch=patch, score=score, summary=aopc, n_random=n_random,
                        seed=seed, batch_size=batch_size, progress=progress)
