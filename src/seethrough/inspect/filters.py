"""What a convolution learned: its filters as tensors (pictures are in seethrough.render.grids)."""
from __future__ import annotations

import torch
from torch import nn

from ..layers import resolve_layer


def conv_weight(model: nn.Module, layer: str) -> torch.Tensor:
    """The weight ``(out, in/groups, *kernel)`` of a convolution layer, or a clear error."""
    module = resolve_layer(model, layer)
    w = getattr(module, "weight", None)
    if not isinstance(module, nn.modules.conv._ConvNd) or not isinstance(w, torch.Tensor) or w.dim() < 3:
        raise ValueError(
            f"layer {layer!r} is a {type(module).__name__}, not a convolution; filters need a Conv1d/2d/3d layer "
            "(list them with seethrough.layer_names(model))"
        )
    return w


def filters(model: nn.Module, layer: str, *, filters: int | None = None, channels: int | None = None) -> torch.Tensor:
    """The first ``filters`` filters × first ``channels`` input channels of a conv layer.

    Returns a detached copy ``(filters, channels, kh, kw)``. A first layer on RGB input
    has 3 channels and renders as colour images; deeper layers as a grid of single
    channels (``see.render.filter_grid``).

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> see.filters(model, "conv2", filters=4, channels=2).shape
    torch.Size([4, 2, 5, 5])
    """
    w = conv_weight(model, layer)
    for opt, v in (("filters", filters), ("channels", channels)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError(f"{opt} must be a positive int or None (all), got {v!r}")
    return w.detach()[:filters, :channels].clone()
