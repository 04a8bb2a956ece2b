"""Canonization for LRP: BatchNorm folded into the convolution or linear layer before it.

Two forms. :func:`folds` gives the folded parameters of each (layer, BatchNorm) pair without touching
or copying the model: LRP applies them inside its rules (what a folded copy's layer would compute), and
checks in the forward that the BatchNorm really reads that layer's output. :func:`fold_batchnorm` makes
a folded deep copy, checked to leave the outputs unchanged on a given input (the reference the tests
compare the in-rule fold with).
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from ..hooks import hooks

__all__ = ["fold_batchnorm", "folds", "Fold"]

_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _scale_shift(bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """BatchNorm in eval mode as ``y = scale·x + shift`` per channel."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else 1 / torch.sqrt(bn.running_var + bn.eps)
    return scale, (bn.bias if bn.affine else 0) - bn.running_mean * scale


def _folded(layer: nn.Module, bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(weight, bias, scale, shift)`` of ``bn(layer(x))`` as one layer."""
    with torch.no_grad():
        scale, shift = _scale_shift(bn)
        w = layer.weight
        old_bias = layer.bias if layer.bias is not None else torch.zeros_like(scale)
        return (w * scale.view(-1, *([1] * (w.dim() - 1))), (old_bias * scale + shift).to(w.dtype), scale, shift)


def _fold(layer: nn.Module, bn: nn.Module) -> None:
    weight, bias, _, _ = _folded(layer, bn)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if layer.bias is None:
            layer.bias = nn.Parameter(bias)
        else:
            layer.bias.copy_(bias)


@dataclass(frozen=True)
class Fold:
    """A weighted layer with the BatchNorm that follows it, as one layer: its folded ``weight`` and
    ``bias``, and the BatchNorm's per-channel ``scale``/``shift`` (``bn(y) = scale·y + shift``)."""

    layer: nn.Module
    bn: nn.Module
    weight: torch.Tensor
    bias: torch.Tensor
    scale: torch.Tensor
    shift: torch.Tensor

    def scale_like(self, y: torch.Tensor) -> torch.Tensor:
        """``scale`` broadcastable to a layer output ``(N, C, *positions)``."""
        return self.scale.view(-1, *([1] * (y.dim() - 2)))

    def after_bn(self, y: torch.Tensor) -> torch.Tensor:
        """The BatchNorm's output for the layer's output ``y``."""
        return y * self.scale_like(y) + self.shift.view(-1, *([1] * (y.dim() - 2)))


def folds(model: nn.Module) -> dict[nn.Module, Fold]:
    """``{layer: Fold}`` for every BatchNorm that directly follows a conv/linear layer among its parent's
    children (:func:`fold_batchnorm`'s pairs), computed from the model's current parameters; nothing is
    copied or changed.

    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2)).eval()
    >>> f = folds(net)[net[0]]
    >>> x = torch.rand(1, 1, 5, 5)
    >>> torch.allclose(torch.nn.functional.conv2d(x, f.weight, f.bias), net(x), atol=1e-6)
    True
    """
    return {layer: Fold(layer, bn, *_folded(layer, bn)) for _, _, layer, bn in _pairs(model)}


def _pairs(model: nn.Module) -> list[tuple[nn.Module, str, nn.Module, nn.Module]]:
    """(parent, bn name, layer, bn) for every BatchNorm that directly follows a weighted layer
    among its parent's children (the layout of ``Sequential(conv, bn, act)`` blocks)."""
    found = []
    for parent in model.modules():
        children = list(parent.named_children())
        for (_, prev), (name, bn) in zip(children, children[1:]):
            if isinstance(bn, _NORMS) and isinstance(prev, _WEIGHTED) and bn.track_running_stats \
                    and prev.weight.shape[0] == bn.num_features:
                found.append((parent, name, prev, bn))
    return found


def fold_batchnorm(model: nn.Module, x: torch.Tensor | None = None, *, rtol: float = 1e-4) -> nn.Module:
    """A copy of ``model`` in eval mode with each BatchNorm merged into the preceding conv/linear.

    With ``x``, the copy's outputs are compared to the original's (within ``rtol`` of the
    output scale); if they differ (a BatchNorm that does not actually follow its neighbour
    in the data flow) the unfolded copy is returned with a warning.

    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.ReLU()).eval()
    >>> net[1].running_mean.fill_(0.5); net[1].running_var.fill_(2.0)  # doctest: +ELLIPSIS
    tensor(...)
    >>> folded = fold_batchnorm(net)
    >>> x = torch.rand(1, 1, 5, 5)
    >>> type(folded[1]).__name__, torch.allclose(folded(x), net(x), atol=1e-6)
    ('Identity', True)
    """
    work = copy.deepcopy(model).eval()
    for p in work.parameters():
        p.requires_grad_(False)
    pairs = _pairs(work)
    for parent, name, layer, bn in pairs:
        _fold(layer, bn)
        setattr(parent, name, nn.Identity())
    if x is not None and pairs:
        with torch.no_grad():
            with hooks(model):  # eval mode for the reference pass; every flag restored after
                ref = model(x)
            got = work(x)
        if not torch.allclose(got, ref, rtol=rtol, atol=rtol * float(ref.abs().max().clamp_min(1e-12))):
            warnings.warn("BatchNorm folding changed the model's outputs (a BatchNorm does not follow the layer "
                          "listed before it); LRP runs on the unfolded model", RuntimeWarning, stacklevel=2)
            work = copy.deepcopy(model).eval()
    return work
