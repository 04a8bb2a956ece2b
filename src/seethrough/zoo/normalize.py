"""Normalisation as part of the model (DESIGN.md principle 6): inputs stay in [0, 1]."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """Subtract a per-channel mean and divide by a per-channel std.

    Kept as buffers so the module moves with the model and is saved in its state dict.

    >>> n = Normalize((0.5,), (0.25,))
    >>> n(torch.ones(1, 1, 2, 2)).flatten().tolist()
    [2.0, 2.0, 2.0, 2.0]
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"mean has {len(mean)} channels but std has {len(std)}; give one value per channel in both")
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive per channel, got {tuple(std)}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.mean.shape[1]:
            raise ValueError(
                f"expected an image batch (N, {self.mean.shape[1]}, H, W) in [0, 1], got shape {tuple(x.shape)}"
            )
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


class WithNormalization(nn.Module):
    """A user's model that expects normalised input, wrapped to take images in [0, 1]."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.normalize(x))


def with_normalization(
    model: nn.Module, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> nn.Module:
    """Wrap ``model`` so it takes images in [0, 1] and normalises them itself.

    The wrapped model's layers keep their names under the ``model.`` prefix
    (``"model.features.3"``), and its training flag is carried over.

    >>> import torch, seethrough as see
    >>> net = torch.nn.Conv2d(3, 4, 3)
    >>> wrapped = see.zoo.with_normalization(net, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    >>> wrapped(torch.zeros(1, 3, 8, 8)).shape
    torch.Size([1, 4, 6, 6])
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"with_normalization expects an nn.Module, got {type(model).__name__}")
    wrapped = WithNormalization(model, mean, std)
    wrapped.train(model.training)
    return wrapped
