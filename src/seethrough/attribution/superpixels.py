"""Superpixels: the interpretable features LIME and KernelSHAP switch on and off.

The segmentation itself is scikit-image's (SLIC, quickshift) or a plain grid; it works on
numpy, so this module converts at its boundary and returns a torch label map.
"""
from __future__ import annotations

import math
from typing import Any

import torch

SEGMENTERS = ("slic", "quickshift", "grid")


def _grid(h: int, w: int, n_segments: int) -> torch.Tensor:
    rows = max(1, round(math.sqrt(n_segments * h / w)))
    cols = max(1, round(n_segments / rows))
    r = torch.arange(h) * rows // h
    c = torch.arange(w) * cols // w
    return r[:, None] * cols + c[None, :]


def _relabel(labels: torch.Tensor) -> torch.Tensor:
    """Labels 0..K-1 in order of first appearance (segmenters may skip numbers)."""
    _, inverse = torch.unique(labels, return_inverse=True)
    return inverse


def superpixels(x: torch.Tensor, method: str = "slic", n_segments: int = 50, **options: Any) -> torch.Tensor:
    """A label map ``(N, H, W)`` (int64, labels 0..K-1 per image) for each image of ``x``.

    ``method``: ``"slic"`` (scikit-image's SLIC, ``compactness=10`` unless given),
    ``"quickshift"`` (the ``lime`` package's settings: ``kernel_size=4, max_dist=200,
    ratio=0.2``) or ``"grid"`` (about ``n_segments`` equal rectangles). Extra ``options`` go to
    the scikit-image function.

    >>> seg = superpixels(torch.rand(1, 3, 32, 32), "grid", n_segments=16)
    >>> seg.shape, int(seg.max()) + 1
    (torch.Size([1, 32, 32]), 16)
    """
    if method not in SEGMENTERS:
        raise ValueError(f"segments must be one of {', '.join(map(repr, SEGMENTERS))} or a label tensor, got {method!r}")
    if isinstance(n_segments, bool) or not isinstance(n_segments, int) or n_segments < 1:
        raise ValueError(f"n_segments must be a positive int, got {n_segments!r}")
    n, c, h, w = x.shape
    if method == "grid":
        return _grid(h, w, n_segments).expand(n, h, w).clone().to(x.device)
    from skimage.segmentation import quickshift, slic

    images = x.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy().astype("float64")
    out = []
    for img in images:  # segmentation is per image by nature; the model is not called here
        if method == "slic":
            opts = {"compactness": 10.0 if c == 3 else 0.1, "start_label": 0, **options}
            labels = slic(img, n_segments=n_segments, channel_axis=-1, **opts)
        else:
            rgb = img if c == 3 else img[..., :1].repeat(3, axis=-1)
            labels = quickshift(rgb, **{"kernel_size": 4, "max_dist": 200, "ratio": 0.2, **options})
        out.append(_relabel(torch.from_numpy(labels.astype("int64"))))
    return torch.stack(out).to(x.device)


def resolve_segments(x: torch.Tensor, segments: Any, n_segments: int) -> torch.Tensor:
    """``segments`` (a method name or a label tensor ``(H, W)`` / ``(N, H, W)``) as ``(N, H, W)`` labels 0..K-1."""
    if isinstance(segments, str):
        return superpixels(x, segments, n_segments)
    if not isinstance(segments, torch.Tensor):
        raise TypeError(f"segments must be 'slic', 'quickshift', 'grid' or an integer label tensor, got {type(segments).__name__}")
    n, _, h, w = x.shape
    if segments.is_floating_point() or segments.shape[-2:] != (h, w) or segments.dim() not in (2, 3) \
            or (segments.dim() == 3 and segments.shape[0] not in (1, n)):
        raise ValueError(f"segments must be an integer label tensor of shape (H, W) = ({h}, {w}) or (N, H, W), "
                         f"got {tuple(segments.shape)} {segments.dtype}")
    return torch.stack([_relabel(s) for s in segments.long().expand(n, h, w)]).to(x.device)
