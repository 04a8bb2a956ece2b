"""Procedural patterns and stamped patches: the planted-concept digits (:mod:`seethrough.zoo.planted`)
are trained on them, and :mod:`seethrough.concepts` builds concept sets from them.

They live in the zoo because the zoo's planted twin needs them while the concepts package loads zoo
images and models; kept in ``concepts.sets`` they made zoo and concepts import each other (issue 19).
``seethrough.concepts.sets`` re-exports every name.
"""
from __future__ import annotations

import math

import torch

from ..deprecation import renamed

COLOURS = {
    "red": (1.0, 0.1, 0.1), "green": (0.1, 0.8, 0.1), "blue": (0.1, 0.2, 1.0), "yellow": (1.0, 0.9, 0.1),
    "white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0), "orange": (1.0, 0.55, 0.0), "purple": (0.55, 0.1, 0.8),
}
KINDS = ("stripes", "dots", "checker", *COLOURS)


def pattern(kind: str, size: int, gen: torch.Generator, channels: int = 3) -> torch.Tensor:
    """One ``(channels, size, size)`` instance of ``kind`` in [0, 1], randomised in period, phase and angle.

    >>> p = pattern("stripes", 8, torch.Generator().manual_seed(0), channels=1)
    >>> p.shape, bool(p.min() >= 0 and p.max() <= 1)
    (torch.Size([1, 8, 8]), True)
    """
    if kind not in KINDS:
        raise ValueError(f"unknown concept {kind!r}; procedural concepts are {', '.join(KINDS)}")
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij")
    r = torch.rand(4, generator=gen)
    if kind in COLOURS:
        rgb = torch.tensor(COLOURS[kind]) * (0.85 + 0.15 * r[0]) + 0.05 * (torch.rand(3, generator=gen) - 0.5)
        img = rgb.clamp(0, 1)[:, None, None].expand(3, size, size).clone()
        return img.mean(0, keepdim=True) if channels == 1 else img
    period = max(2.0, size / (3 + 3 * r[0].item()))
    if kind == "stripes":
        angle = (r[1].item() - 0.5) * math.pi / 6  # near-horizontal stripes
        u = yy * math.cos(angle) + xx * math.sin(angle)
        v = (torch.sin(2 * math.pi * (u / period + r[2].item())) > 0).float()
    elif kind == "checker":
        v = ((torch.floor(yy / (period / 2) + r[2].item() * 2) + torch.floor(xx / (period / 2) + r[3].item() * 2)) % 2).float()
    else:  # dots on a lattice
        cy = (yy / period + r[2].item()) % 1 - 0.5
        cx = (xx / period + r[3].item()) % 1 - 0.5
        v = ((cy ** 2 + cx ** 2) < 0.09).float()
    return v.expand(channels, size, size).clone()


_draw = pattern  # procedural() and stamp() name their argument ``pattern``, shadowing the function


@renamed(kind="pattern", n="n_samples")
def procedural(pattern: str, n_samples: int = 50, size: int = 64, *, channels: int = 3, seed: int = 0) -> torch.Tensor:
    """``n_samples`` seeded images ``(n_samples, channels, size, size)`` of a procedural concept ``pattern``:
    ``"stripes"``, ``"dots"``, ``"checker"`` or a colour name (``"red"``, ``"green"``…).

    >>> x = procedural("checker", 4, 16, channels=1)
    >>> x.shape
    torch.Size([4, 1, 16, 16])
    """
    if n_samples < 1 or size < 2:
        raise ValueError(f"a concept set needs n_samples >= 1 images of size >= 2, got n_samples={n_samples}, size={size}")
    gen = torch.Generator().manual_seed(seed)
    return torch.stack([_draw(pattern, size, gen, channels) for _ in range(n_samples)])


@renamed(kind="pattern")
def stamp(x: torch.Tensor, pattern: str = "stripes", size: int = 8, *, corner: tuple[int, int] = (1, 1),
          jitter: int = 2, seed: int = 0) -> torch.Tensor:
    """Images ``x`` with a small ``pattern`` patch drawn over them near ``corner`` (max of image and patch).

    The planted-concept digits use it; stamped digits also make the concept set for TCAV.

    >>> y = stamp(torch.zeros(3, 1, 32, 32), "stripes", 8)
    >>> bool(y.amax(dim=(1, 2, 3)).eq(1).all())
    True
    """
    gen = torch.Generator().manual_seed(seed)
    out = x.clone()
    for i in range(len(x)):
        p = _draw(pattern, size, gen, x.shape[1])
        dy, dx = (torch.randint(0, jitter + 1, (2,), generator=gen) if jitter else torch.zeros(2, dtype=torch.long)).tolist()
        r, c = corner[0] + dy, corner[1] + dx
        region = out[i, :, r:r + size, c:c + size]
        out[i, :, r:r + size, c:c + size] = torch.maximum(region, p[:, :region.shape[1], :region.shape[2]])
    return out


def stamp_mixed(x: torch.Tensor, kinds: tuple[str, ...] | list[str], *, seed: int = 0, **stamp_options) -> torch.Tensor:
    """Every image of ``x`` with a patch of one of ``kinds``, drawn per image (seeded): the random
    "world" of a patch concept. Random sets drawn from it differ from a stamped concept set by the
    pattern only, not by "something in the corner", which any patch shares.

    >>> y = stamp_mixed(torch.zeros(6, 1, 32, 32), ("white", "dots"))
    >>> bool((y.amax(dim=(1, 2, 3)) > 0).all())
    True
    """
    if not kinds:
        raise ValueError("stamp_mixed needs at least one patch kind")
    gen = torch.Generator().manual_seed(seed)
    which = torch.randint(0, len(kinds), (len(x),), generator=gen)
    out = x.clone()
    for i, kind in enumerate(kinds):
        rows = which == i
        if rows.any():
            out[rows] = stamp(x[rows], kind, seed=seed * 1009 + i, **stamp_options)
    return out
