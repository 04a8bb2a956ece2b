"""Feature inversion (Mahendran & Vedaldi, 2015): what does a layer's code still know of the image?

Starting from grey noise, find an image whose representation at ``layer`` matches the
original's - minimising ``‖Φ(x̂) − Φ(x)‖² / ‖Φ(x)‖²`` plus total-variation and norm priors.
Shallow layers give back the photo; deep ones keep the parts that matter for the class
and lose the rest, which :func:`invert` measures as SSIM with the original per depth.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from ..hooks import hooks
from ..inputs import check_images
from . import transforms as T
from .engine import Visualization, ascend, check_positive, check_steps, chunked, new_param
from .priors import penalty as _penalty
from .similarity import ssim

DEFAULT_PRIORS = {"tv": 0.5, "l2": 0.05}


@dataclass
class Inversion(Visualization):
    """A reconstruction from ``layer``: ``x`` ``(N, C, H, W)``, ``trace`` the relative
    representation distance ``‖Φ(x̂) − Φ(x)‖² / ‖Φ(x)‖²`` before each step, ``similarity``
    the SSIM of ``x`` with the original per image (``None`` for images under 11 px)."""

    layer: str = ""
    similarity: torch.Tensor | None = field(default=None)


def invert(
    model: nn.Module,
    x: torch.Tensor,
    layer: str | Sequence[str],
    *,
    steps: int = 200,
    lr: float = 0.05,
    param: str = "pixel",
    priors: dict | None = None,
    transforms=None,
    seed: int = 0,
    batch_size: int | str = "auto",
) -> Inversion | list[Inversion]:
    """Reconstruct ``x`` ``(N, C, H, W)`` in [0, 1] from its representation at ``layer``.

    Several layers (a list) are inverted in one batched optimisation and give a list of
    :class:`Inversion`, one per layer. ``priors`` default to ``{"tv": 0.5, "l2": 0.05}``
    (see :mod:`seethrough.optimize.priors`); ``param`` and ``transforms`` as in
    :func:`~seethrough.optimize.maximize.visualize`.

    >>> import torch, seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    >>> inv = see.invert(model, x, "relu1", steps=30)
    >>> bool((inv.trace[:, -1] < inv.trace[:, 0]).all())
    True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    x = check_images(x)
    if x.min() < 0 or x.max() > 1:
        raise ValueError("x must be images in [0, 1]; normalisation belongs inside the model")
    single = isinstance(layer, str)
    layers = [layer] if single else list(layer)
    if not layers or not all(isinstance(l, str) for l in layers):
        raise ValueError(f"layer must be a layer name or a non-empty list of them, got {layer!r}")
    steps, lr = check_steps(steps), check_positive(lr, "lr")
    prior = _penalty(DEFAULT_PRIORS if priors is None else priors)
    transform = T.resolve(transforms, max(x.shape[-2:]))
    n = x.shape[0]
    with torch.no_grad(), hooks(model, capture=layers, detach=True) as rec:
        model(x)
        targets = {l: rec[l] for l in layers}
    norms = {l: t.pow(2).flatten(1).sum(1).clamp_min(1e-12) for l, t in targets.items()}
    shape = tuple(x.shape[1:])

    def run(start: int, stop: int):
        rows = torch.arange(start, stop)
        which, src = rows // n, rows % n

        def score(acts, out):
            s = out.new_zeros(stop - start)
            for li in which.unique().tolist():
                sel = (which == li).nonzero().flatten()
                l = layers[li]
                d = (acts[l][sel] - targets[l][src[sel]]).pow(2).flatten(1).sum(1) / norms[l][src[sel]]
                s[sel] = -d
            return s

        p = new_param(param, (stop - start, *shape), start, seed, None, x.device, x.dtype)
        trace = ascend(model, p, score, layers, steps=steps, lr=lr, transform=transform, penalty=prior,
                       generator=torch.Generator().manual_seed(seed), desc="invert step")
        return p.image().detach(), -trace

    xs, trace = chunked(run, n * len(layers), x, model, "invert", batch_size, "invert")
    settings = {"steps": steps, "lr": lr, "param": param, "priors": {getattr(k, "__name__", k): v for k, v in
                (DEFAULT_PRIORS if priors is None else priors).items()}, "transforms": transforms if isinstance(transforms, str) or transforms is None else "custom", "seed": seed}
    results = []
    for li, l in enumerate(layers):
        xi = xs[li * n:(li + 1) * n]
        sim = ssim(xi, x) if min(shape[1:]) >= 11 else None
        results.append(Inversion(xi, trace[li * n:(li + 1) * n], [f"invert:{l}"] * n, {**settings, "layer": l}, l, sim))
    return results[0] if single else results
