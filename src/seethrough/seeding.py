"""Per-sample random streams: a sample's random draws never depend on the other samples of its batch.

The project's convention (DESIGN.md, principle 4), followed by LIME, KernelSHAP, RISE, SmoothGrad,
PGD's random start and the metrics: every sample draws from its own generator, seeded by the call's
``seed`` (plus what is drawn, e.g. the number of a random draw), never by the sample's position.
N samples at once therefore give what N one-sample calls give, and every sample of a batch sees the
same stream; different draws of one sample (``seed + r``) see different streams.
"""
from __future__ import annotations

from typing import Callable

import torch


def stream(seed: int) -> torch.Generator:
    """A fresh CPU generator seeded by ``seed``: one sample's random stream (CPU, so seeds match across devices).

    >>> torch.equal(torch.rand(3, generator=stream(5)), torch.rand(3, generator=stream(5)))
    True
    """
    return torch.Generator().manual_seed(seed)


def per_sample(n: int, draw: Callable[[torch.Generator], torch.Tensor], seed: int) -> torch.Tensor:
    """``draw(stream(seed))`` for each of ``n`` samples, stacked ``(n, ...)``: sample ``i`` gets what it gets
    alone. Every sample's stream starts at ``seed``, so the ``n`` draws are one draw (made once, expanded).

    >>> r = per_sample(3, lambda g: torch.randperm(4, generator=g), 0)
    >>> r.shape, torch.equal(r[2], per_sample(1, lambda g: torch.randperm(4, generator=g), 0)[0])
    (torch.Size([3, 4]), True)
    """
    one = draw(stream(seed))
    return one.unsqueeze(0).expand(n, *one.shape)
