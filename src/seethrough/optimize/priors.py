"""Natural-image priors: penalties ``(N, C, H, W) -> (N,)`` subtracted from the objective.

Each penalty is a per-pixel *mean*, so one weight means the same at 32 and at 224 pixels.

* :func:`l2` - Simonyan et al. (2014): keep the image near mid-grey.
* :func:`total_variation` - Mahendran & Vedaldi (2015): ``mean((dx² + dy²)^(β/2))``.
* :func:`alpha_norm`, :func:`tv_norm` - Mahendran & Vedaldi's two priors with their
  normalisation, so that a weight of about 1 balances them against the normalised
  reconstruction loss: ``mean(‖x(u,v) − ½‖^α) / (B√C)^α`` and ``mean((Σ_c dx² + dy²)^(β/2)) / V^β``,
  ``B = ½`` the pixel range about grey and ``V = B/6.5`` a typical step between neighbours.
* :func:`edge_energy` - the multi-scale edge energy ``h(x) = Σ_s ‖δ^s(x) − g ⊛ δ^s(x)‖²``
  where ``δ^s`` halves the resolution ``s`` times (2×2 average) and ``g`` is a Gaussian:
  what a blur would remove at each scale, i.e. the high-frequency energy of a pyramid.
* :func:`blur` - a Gaussian blur, applied every few steps as a projection (Yosinski et al. 2015).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

Prior = Callable[[torch.Tensor], torch.Tensor]


def l2(x: torch.Tensor) -> torch.Tensor:
    """``mean((x − 0.5)²)`` per image.

    >>> l2(torch.ones(2, 1, 2, 2)).tolist()
    [0.25, 0.25]
    """
    return (x - 0.5).pow(2).flatten(1).mean(1)


def total_variation(x: torch.Tensor, beta: float = 2.0) -> torch.Tensor:
    """``mean((dx² + dy²)^(β/2))`` over the (H−1)×(W−1) grid and the channels, per image.

    >>> x = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
    >>> total_variation(x).tolist()
    [1.0]
    """
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    dx = x[..., :-1, 1:] - x[..., :-1, :-1]
    dy = x[..., 1:, :-1] - x[..., :-1, :-1]
    d2 = dx.pow(2) + dy.pow(2)
    # |d|^β has no gradient at 0 for β < 2; a tiny floor keeps it finite.
    v = d2 if beta == 2 else (d2 + 1e-8).pow(beta / 2)
    return v.flatten(1).mean(1)


B = 0.5  # the pixel range about mid-grey: images live in [0, 1]
V = B / 6.5  # Mahendran & Vedaldi's typical variation between neighbouring pixels, V = B/6.5


def alpha_norm(x: torch.Tensor, alpha: float = 6.0) -> torch.Tensor:
    """``mean over pixels of (‖x(u,v) − ½‖ / (B√C))^α``, ``‖·‖`` over the C colour channels, per image.

    Mahendran & Vedaldi's α-norm ``‖x‖_α^α / (HW B^α)`` with B = ½ per channel: a black or
    white pixel costs 1, a mid-range one almost nothing (α = 6) - a soft box that keeps a
    reconstruction from saturating.

    >>> alpha_norm(torch.ones(1, 3, 2, 2)).tolist(), alpha_norm(torch.full((1, 3, 2, 2), 0.25)).tolist()
    ([1.0], [0.015625])
    """
    if not alpha > 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    r2 = (x - 0.5).pow(2).sum(1) / (x.shape[1] * B ** 2)
    return r2.pow(alpha / 2).flatten(1).mean(1)


def tv_norm(x: torch.Tensor, beta: float = 2.0) -> torch.Tensor:
    """``mean over the (H−1)×(W−1) grid of (Σ_c dx² + dy²)^(β/2) / V^β``, per image.

    Mahendran & Vedaldi's TV^β prior ``R_V^β(x) / (HW V^β)``: a weight of about 1 lets a
    typical natural step of V between neighbours cost as much as the reconstruction loss.

    >>> x = torch.tensor([[[[0.0, V], [0.0, V]]]], dtype=torch.float64)   # one step of V
    >>> tv_norm(x).tolist()
    [1.0]
    """
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    dx = x[..., :-1, 1:] - x[..., :-1, :-1]
    dy = x[..., 1:, :-1] - x[..., :-1, :-1]
    d2 = (dx.pow(2) + dy.pow(2)).sum(1) / V ** 2
    v = d2 if beta == 2 else (d2 + 1e-8).pow(beta / 2)
    return v.flatten(1).mean(1)


def gaussian_kernel(sigma: float, dtype: torch.dtype = torch.float32, device=None, radius: int | None = None) -> torch.Tensor:
    """A normalised 1-D Gaussian of ``radius`` taps each side (default ``ceil(2σ)``).

    >>> gaussian_kernel(1.0).shape, round(gaussian_kernel(1.0).sum().item(), 6)
    (torch.Size([5]), 1.0)
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    r = math.ceil(2 * sigma) if radius is None else radius
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return (k / k.sum()).to(dtype=dtype, device=device)


def blur(x: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Separable Gaussian blur with mirror padding (``d c b | a b c d``), per channel.

    >>> x = torch.zeros(1, 1, 9, 9); x[..., 4, 4] = 1
    >>> round(blur(x).sum().item(), 5)
    1.0
    """
    k = gaussian_kernel(sigma, x.dtype, x.device)
    r = (k.numel() - 1) // 2
    h, w = x.shape[-2:]
    if min(h, w) <= r:
        raise ValueError(f"a {h}×{w} image is too small for a blur of sigma {sigma} (needs more than {r} px a side)")
    c = x.shape[1]
    y = F.pad(x, (r, r, r, r), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def edge_energy(x: torch.Tensor, scales: int = 3, sigma: float = 1.0) -> torch.Tensor:
    """``Σ_s mean((δ^s x − g ⊛ δ^s x)²)`` for ``s = 0 … scales−1``, per image.

    >>> flat = torch.full((1, 1, 16, 16), 0.3)
    >>> edge_energy(flat).tolist()
    [0.0]
    """
    if isinstance(scales, bool) or not isinstance(scales, int) or scales < 1:
        raise ValueError(f"scales must be a positive int, got {scales!r}")
    smallest = min(x.shape[-2:]) // 2 ** (scales - 1)
    if smallest <= math.ceil(2 * sigma):
        raise ValueError(f"a {x.shape[-2]}×{x.shape[-1]} image halved {scales - 1} times is {smallest} px, too small "
                         f"for a blur of sigma {sigma}; use fewer scales")
    total = x.new_zeros(x.shape[0])
    d = x
    for s in range(scales):
        if s:
            d = F.avg_pool2d(d, 2)
        total = total + (d - blur(d, sigma)).pow(2).flatten(1).mean(1)
    return total


PRIORS: dict[str, Prior] = {"l2": l2, "tv": total_variation, "edge": edge_energy, "alpha": alpha_norm, "tv_norm": tv_norm}


def penalty(priors: dict | None) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """``{"tv": 0.5, "l2": 1e-2}`` (names or callables → weights) → one weighted ``(N,)`` penalty.

    >>> penalty({"l2": 2.0})(torch.ones(1, 1, 2, 2)).tolist()
    [0.5]
    """
    if not priors:
        return None
    if not isinstance(priors, dict):
        raise TypeError(f"priors must be a dict of prior name (or callable) → weight, e.g. {{'tv': 0.5}}; got {type(priors).__name__}")
    terms = []
    for key, weight in priors.items():
        fn = PRIORS.get(key) if isinstance(key, str) else key if callable(key) else None
        if fn is None:
            raise ValueError(f"unknown prior {key!r}; choose from {', '.join(map(repr, PRIORS))} or pass a callable x -> (N,)")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise ValueError(f"the weight of prior {key!r} must be a finite number, got {weight!r}")
        terms.append((fn, float(weight)))
    return lambda x: sum(w * fn(x) for fn, w in terms)
