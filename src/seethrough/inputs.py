"""Validating the tensors users hand to seethrough: one clear line instead of a traceback.

:func:`check_images` is the gate every image entry point calls first. What an input must be
depends on its ``kind`` (DESIGN.md principle 6): today ``"image"`` (a batch ``(N, C, H, W)`` of
finite floats in [0, 1]), ``"tensor"`` (any batch ``(N, ...)`` of finite floats) and ``"auto"``
(image rules for 4-D batches, tensor rules otherwise — ``predict`` on the 2-D points of
``mlp-2d``). Tabular rows and token ids will be further kinds of the same gate.

Given the ``model``, the gate also compares ``x`` with what the model's parameters and first
convolution expect (dtype, device, channels-first layout), so a float64 image fed to a float32
model, or a channels-last batch, is named before torch fails deep inside the forward.
"""
from __future__ import annotations

import torch
from torch import nn

KINDS = ("image", "tensor", "auto")
RANGE_TOLERANCE = 1e-6  # rounding of a resize or a colour conversion may leave values a hair outside [0, 1]
_CHANNELS = (1, 3, 4)  # gray, RGB, RGBA: what the first dimension of one image plausibly is
_METHODS = {torch.float16: "half", torch.bfloat16: "bfloat16", torch.float32: "float", torch.float64: "double"}


def check_images(x: object, *, name: str = "x", model: nn.Module | None = None, kind: str = "image") -> torch.Tensor:
    """Check that ``x`` is a batch of the given ``kind`` (see the module docstring); return it.

    ``kind="image"``: ``(N, C, H, W)`` finite floats in [0, 1]; ``"tensor"``: ``(N, ...)`` finite
    floats; ``"auto"``: the image rules for a 4-D batch, the tensor rules otherwise. With
    ``model``, ``x`` must also match the model's parameter dtype and device and, for images, the
    channel count of its first convolution.

    >>> check_images(torch.zeros(1, 3, 8, 8)).shape
    torch.Size([1, 3, 8, 8])
    >>> check_images(torch.full((1, 3, 8, 8), 255.0))
    Traceback (most recent call last):
    ...
    ValueError: x has values in [255, 255]: seethrough expects images in [0, 1]; divide by 255 (or pass the model's preprocessing)
    >>> check_images(torch.rand(4, 2), kind="auto").shape    # not an image batch: no range rule
    torch.Size([4, 2])
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}, got {kind!r}")
    if not isinstance(x, torch.Tensor):
        want = "of shape (N, C, H, W) in [0, 1]" if kind == "image" else "with one sample per row (N, ...)"
        raise TypeError(f"{name} must be a torch.Tensor {want}, got {type(x).__name__}")
    image = kind == "image" or (kind == "auto" and x.dim() == 4)
    if image and x.dim() != 4:
        raise ValueError(_not_an_image_batch(x, name, first_conv(model) if model is not None else None))
    if x.dim() == 0:
        raise ValueError(f"{name} is a scalar; give a batch (N, ...) with one sample per row")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (N = 0); give at least one {'image' if image else 'sample'}")
    check_finite(x, name=name)
    if model is not None:
        check_matches_model(x, model, name=name, image=image)
    if image:
        check_range(x, name=name)
    return x


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


def check_range(x: torch.Tensor, *, name: str = "x") -> torch.Tensor:
    """Images are in [0, 1] (normalisation belongs to the model, DESIGN.md principle 6): a 0-255 or
    standardised image would make ε, baselines and clamps mean something else, silently.

    >>> check_range(torch.tensor([[[[-0.5, 2.0]]]]))
    Traceback (most recent call last):
    ...
    ValueError: x has values in [-0.5, 2]: seethrough expects images in [0, 1]; the image looks normalised: pass the unnormalised image and put the normalisation in the model (see.zoo.with_normalization(model, mean, std))
    """
    lo, hi = float(x.min()), float(x.max())
    if lo >= -RANGE_TOLERANCE and hi <= 1 + RANGE_TOLERANCE:
        return x
    if lo < -RANGE_TOLERANCE:
        fix = ("the image looks normalised: pass the unnormalised image and put the normalisation in the model "
               "(see.zoo.with_normalization(model, mean, std))")
    else:
        fix = "divide by 255 (or pass the model's preprocessing)" if hi > 1.5 else "clamp it to [0, 1]"
    raise ValueError(f"{name} has values in [{lo:.4g}, {hi:.4g}]: seethrough expects images in [0, 1]; {fix}")


def check_matches_model(x: torch.Tensor, model: nn.Module, *, name: str = "x", image: bool = True) -> torch.Tensor:
    """``x``'s dtype and device are those of the model's parameters, and an image batch is
    channels-first with the channel count of the model's first convolution.

    Only unambiguous mismatches are refused: a model with mixed dtypes or devices, or without
    a convolution, is left to its own forward.

    >>> check_matches_model(torch.zeros(1, 2, dtype=torch.float64), nn.Linear(2, 1))
    Traceback (most recent call last):
    ...
    ValueError: x is float64 but the model's parameters are float32: pass x.float() or model.double()
    """
    floats = [p for p in model.parameters() if p.is_floating_point()]
    dtypes = {p.dtype for p in floats}
    if len(dtypes) == 1 and x.dtype not in dtypes:
        (want,) = dtypes
        have, need = _short(x.dtype), _short(want)
        raise ValueError(f"{name} is {have} but the model's parameters are {need}: pass {name}.{_METHODS.get(want, 'to')}() "
                         f"or model.{_METHODS.get(x.dtype, 'to')}()")
    devices = {p.device for p in floats}
    if len(devices) == 1 and x.device not in devices:
        (want,) = devices
        raise ValueError(f"{name} is on {x.device} but the model is on {want}: pass {name}.to('{want}')")
    conv = first_conv(model) if image else None
    if isinstance(conv, nn.Conv2d) and x.dim() == 4 and x.shape[1] != conv.in_channels:
        c = conv.in_channels
        if x.shape[-1] == c and c in _CHANNELS:
            raise ValueError(f"{name} looks channels-last (N, H, W, C) = {tuple(x.shape)}: the model's first convolution "
                             f"takes {c} channel(s) first; use {name}.permute(0, 3, 1, 2)")
    return x


def first_conv(model: nn.Module) -> nn.Module | None:
    """The first convolution module in definition order (``None`` without one): what the input feeds, usually.

    >>> first_conv(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3)))
    Conv2d(3, 4, kernel_size=(3, 3), stride=(1, 1))
    """
    return next((m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d))), None)


def _not_an_image_batch(x: torch.Tensor, name: str, conv: nn.Module | None) -> str:
    shape = tuple(x.shape)
    if x.dim() == 3:
        if isinstance(conv, nn.Conv1d):
            return (f"{name} has shape {shape}, a batch of 1-D signals (N, C, L) for the model's Conv1d: these methods "
                    "take images (N, C, H, W) only")
        channels = (conv.in_channels,) if isinstance(conv, nn.Conv2d) else _CHANNELS
        if shape[0] in channels:  # one image (C, H, W) without its batch dimension
            return f"{name} has shape {shape}; add the batch dimension: {name}.unsqueeze(0) → (1, C, H, W)"
        looks_gray = 1 in channels and min(shape[1:]) > max(_CHANNELS)  # (N, H, W): a gray batch without its channel
        gray = f"; for a batch of gray images (N, H, W) use {name}.unsqueeze(1)" if looks_gray else ""
        return (f"{name} has shape {shape}: seethrough expects a batch of images (N, C, H, W); a 3-D tensor is one image "
                f"(C, H, W) only when its first size is a channel count ({', '.join(map(str, channels))}), "
                f"and {shape[0]} is not{gray}")
    return f"{name} must have shape (N, C, H, W), a batch of images, got {x.dim()}-D {shape}"


def _short(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
