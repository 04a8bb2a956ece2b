"""Validating the tensors users hand to seethrough."""
from __future__ import annotations

import torch


def check_images(x: object, *, name: str = "x") -> torch.Tensor:
    """Check that ``x`` is an image batch ``(N, C, H, W)`` of finite floats; return it.

    >>> check_images(torch.zeros(1, 3, 8, 8)).shape
    torch.Size([1, 3, 8, 8])
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, C, H, W) in [0, 1], got {type(x).__name__}")
    if x.dim() == 3:
        raise ValueError(f"{name} has shape {tuple(x.shape)}; add the batch dimension: x.unsqueeze(0) → (1, C, H, W)")
    if x.dim() != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (N = 0); give at least one image")
    return check_finite(x, name=name)


def check_finite(x: torch.Tensor, *, name: str = "x") -> torch.Tensor:
    """Raise a ``ValueError`` naming how many entries of ``x`` are NaN or infinite.

    >>> check_finite(torch.tensor([1.0, float("nan")]))
    Traceback (most recent call last):
    ...
    ValueError: x contains 1 NaN or infinite values; clean the input first
    """
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}; use x.float() / 255 for uint8 images")
    bad = ~torch.isfinite(x)
    if bad.any():
        raise ValueError(f"{name} contains {int(bad.sum())} NaN or infinite values; clean the input first")
    return x
