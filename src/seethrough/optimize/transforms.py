"""Transformation robustness: small random, differentiable changes applied at every step.

An image that excites a unit only in one exact pixel alignment is an adversarial pattern,
not a feature; asking the objective to survive jitter, scaling and rotation removes most
high-frequency artefacts (Mordvintsev et al. 2015, Olah et al. 2017). A transform is a
function ``t(x, generator) -> x``; randomness comes only from the seeded generator.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _choice(values: Sequence, g: torch.Generator):
    return values[int(torch.randint(len(values), (1,), generator=g))]


def pad(p: int, value: float = 0.5) -> Transform:
    """Pad ``p`` pixels of constant ``value`` on every side (so jitter and rotation bring in grey, not edges).

    >>> pad(1)(torch.zeros(1, 1, 2, 2), torch.Generator()).shape
    torch.Size([1, 1, 4, 4])
    """
    _positive(p, "pad", allow_zero=True)
    return lambda x, g: F.pad(x, (p, p, p, p), mode="constant", value=value) if p else x


def jitter(d: int) -> Transform:
    """Crop a random window ``d`` pixels smaller than the image (a random translation by 0..d).

    >>> x = torch.arange(16.0).view(1, 1, 4, 4)
    >>> jitter(1)(x, torch.Generator().manual_seed(0)).shape
    torch.Size([1, 1, 3, 3])
    """
    _positive(d, "jitter", allow_zero=True)

    def t(x, g):
        if d == 0:
            return x
        h, w = x.shape[-2:]
        if d >= min(h, w):
            raise ValueError(f"jitter of {d} px is too large for a {h}×{w} image; use less than {min(h, w)}")
        oy, ox = (int(v) for v in torch.randint(d + 1, (2,), generator=g))
        return x[..., oy:oy + h - d, ox:ox + w - d]

    return t


def roll(d: int) -> Transform:
    """Shift circularly by a random (dy, dx) in [−d, d]²: the jitter of Mahendran & Vedaldi's
    inversion, which keeps the image size (no crop, no resize).

    >>> x = torch.arange(4.0).view(1, 1, 1, 4)
    >>> roll(1)(x, torch.Generator().manual_seed(0)).tolist()
    [[[[1.0, 2.0, 3.0, 0.0]]]]
    """
    _positive(d, "roll", allow_zero=True)

    def t(x, g):
        if d == 0:
            return x
        dy, dx = (int(v) for v in torch.randint(-d, d + 1, (2,), generator=g))
        return torch.roll(x, (dy, dx), (2, 3))

    return t


def scale(factors: Sequence[float]) -> Transform:
    """Resize by a factor drawn from ``factors`` (bilinear).

    >>> scale([2.0])(torch.zeros(1, 1, 3, 3), torch.Generator()).shape
    torch.Size([1, 1, 6, 6])
    """
    factors = [float(f) for f in factors]
    if not factors or any(f <= 0 for f in factors):
        raise ValueError(f"scale factors must be positive numbers, got {factors}")

    def t(x, g):
        f = _choice(factors, g)
        if f == 1.0:
            return x
        size = [max(1, round(s * f)) for s in x.shape[-2:]]
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    return t


def rotate(degrees: Sequence[float]) -> Transform:
    """Rotate counter-clockwise (as displayed) by an angle drawn from ``degrees`` (bilinear, zeros outside).

    >>> x = torch.zeros(1, 1, 5, 5); x[..., 2, 4] = 1
    >>> y = rotate([90.0])(x, torch.Generator())
    >>> (y[0, 0] > 0.5).nonzero().tolist()
    [[0, 2]]
    """
    degrees = [float(a) for a in degrees]
    if not degrees:
        raise ValueError("rotate needs at least one angle in degrees")

    def t(x, g):
        a = math.radians(_choice(degrees, g))
        if a == 0.0:
            return x
        cos, sin = math.cos(a), math.sin(a)
        theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=x.dtype, device=x.device)
        grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    return t


def compose(*transforms: Transform) -> Transform:
    """Apply transforms left to right.

    >>> compose(pad(2), jitter(2))(torch.zeros(1, 1, 4, 4), torch.Generator()).shape
    torch.Size([1, 1, 6, 6])
    """

    def t(x, g):
        for tr in transforms:
            x = tr(x, g)
        return x

    return t


def standard(size: int = 224) -> Transform:
    """Lucent's standard robustness transforms, with pixel amounts scaled to an image of ``size``.

    At 224 px: pad 12, jitter 8, scale 0.9-1.1, rotate ±10°, jitter 4.

    >>> standard(64)(torch.zeros(1, 3, 64, 64), torch.Generator().manual_seed(0)).shape[1]
    3
    """
    k = size / 224
    return compose(
        pad(max(1, round(12 * k))),
        jitter(max(1, round(8 * k))),
        scale([1 + (i - 5) / 50 for i in range(11)]),
        rotate(list(range(-10, 11)) + 5 * [0]),
        jitter(max(1, round(4 * k))),
    )


def resolve(transforms: str | Transform | Sequence[Transform] | None, size: int) -> Transform | None:
    """``"standard"``, ``None``/``"none"``, one transform or a list of them → one transform."""
    if transforms is None or transforms == "none":
        return None
    if transforms == "standard":
        return standard(size)
    if isinstance(transforms, str):
        raise ValueError(f"transforms must be 'standard', 'none', a transform or a list of them; got {transforms!r}")
    if callable(transforms):
        return transforms
    if isinstance(transforms, Sequence) and all(callable(t) for t in transforms):
        return compose(*transforms)
    raise TypeError(f"transforms must be 'standard', None, a transform t(x, generator) or a list of them; got {type(transforms).__name__}")


def _positive(v: object, name: str, allow_zero: bool = False) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < (0 if allow_zero else 1):
        raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} int (pixels), got {v!r}")
