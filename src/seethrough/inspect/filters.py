"""What a layer learned: conv filters, or a Linear layer's weight rows as images.

The pictures are in :mod:`seethrough.render.grids` (``see.render.filter_grid``).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from ..boundary import image_only
from ..layers import resolve_layer


def _square(n: int) -> int | None:
    s = math.isqrt(n)
    return s if s * s == n else None


def linear_shape(in_features: int, shape: Sequence[int] | None = None) -> tuple[int, int, int]:
    """The image shape ``(C, H, W)`` one weight row of a Linear layer is shown as.

    ``shape`` if given (it must multiply to ``in_features``); otherwise a square grey image
    when ``in_features`` is a square (784 → 1×28×28, an MNIST MLP), else a square RGB image
    when it is 3 × a square (3072 → 3×32×32); anything else needs ``shape``.

    >>> linear_shape(784), linear_shape(3072), linear_shape(400, (16, 5, 5))
    ((1, 28, 28), (3, 32, 32), (16, 5, 5))
    """
    if shape is not None:
        ok = (isinstance(shape, (tuple, list)) and len(shape) == 3
              and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape))
        if not ok:
            raise ValueError(f"shape must be (C, H, W), three positive ints, got {shape!r}")
        if math.prod(shape) != in_features:
            raise ValueError(f"shape {tuple(shape)} holds {math.prod(shape)} values but the layer has {in_features} "
                             "inputs; give a (C, H, W) whose product is the number of inputs")
        return tuple(shape)
    s = _square(in_features)
    if s is not None:
        return (1, s, s)
    s = _square(in_features // 3) if in_features % 3 == 0 else None
    if s is not None:
        return (3, s, s)
    raise ValueError(f"a Linear layer with {in_features} inputs is neither a square image nor 3 × a square one; "
                     "pass shape=(C, H, W) with C·H·W = in_features")


def layer_weight(model: nn.Module, layer: str, shape: Sequence[int] | None = None) -> torch.Tensor:
    """The weight of a convolution ``(out, in/groups, *kernel)``, or of a Linear layer with each
    row reshaped to an image ``(out, C, H, W)`` (see :func:`linear_shape`); else a clear error."""
    module = resolve_layer(model, layer)
    w = getattr(module, "weight", None)
    if isinstance(module, nn.Linear) and isinstance(w, torch.Tensor):
        return w.reshape(w.shape[0], *linear_shape(w.shape[1], shape))
    if not isinstance(module, nn.modules.conv._ConvNd) or not isinstance(w, torch.Tensor) or w.dim() < 3:
        raise ValueError(
            f"layer {layer!r} is a {type(module).__name__}; filters need a Conv1d/2d/3d or a Linear layer "
            "(list them with seethrough.layer_names(model))"
        )
    if shape is not None:
        raise ValueError(f"shape= reshapes a Linear layer's rows; {layer!r} is a convolution, whose filters have their own shape")
    return w


def filters(model: nn.Module, layer: str, *, filters: int | None = None, channels: int | None = None,
            shape: Sequence[int] | None = None) -> torch.Tensor:
    """The first ``filters`` filters × first ``channels`` input channels of a conv or Linear layer.

    Returns a detached copy ``(filters, channels, kh, kw)``. A first layer on RGB input
    has 3 channels and renders as colour images; deeper layers as a grid of single
    channels (``see.render.filter_grid``). A Linear layer's weight rows are its filters,
    each reshaped to an image of ``shape=(C, H, W)`` (default: inferred when the number of
    inputs is a square or 3 × a square) - the first-layer weights of an MLP as pictures.

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> see.filters(model, "conv2", filters=4, channels=2).shape
    torch.Size([4, 2, 5, 5])
    >>> mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10))
    >>> see.filters(mlp, "1").shape
    torch.Size([10, 1, 28, 28])
    >>> see.filters(model, "fc1", shape=(16, 5, 5), filters=3).shape
    torch.Size([3, 16, 5, 5])
    """
    model = image_only(model, "filters as images")
    for opt, v in (("filters", filters), ("channels", channels)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError(f"{opt} must be a positive int or None (all), got {v!r}")
    w = layer_weight(model, layer, shape)
    return w.detach()[:filters, :channels].clone()
