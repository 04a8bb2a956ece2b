"""Canonization for LRP: BatchNorm folded into the convolution or linear layer before it.

Done on a deep copy, so the user's model is never touched; the fold is checked to leave the
outputs unchanged on the very input being explained, and skipped (with a warning) otherwise.
"""
from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from ..hooks import hooks

__all__ = ["fold_batchnorm"]

_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _fold(layer: nn.Module, bn: nn.Module) -> None:
    with torch.no_grad():
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else 1 / torch.sqrt(bn.running_var + bn.eps)
        shift = (bn.bias if bn.affine else 0) - bn.running_mean * scale
        w = layer.weight
        layer.weight.copy_(w * scale.view(-1, *([1] * (w.dim() - 1))))
        old_bias = layer.bias if layer.bias is not None else torch.zeros_like(scale)
        new_bias = old_bias * scale + shift
        if layer.bias is None:
            layer.bias = nn.Parameter(new_bias.to(w.dtype))
        else:
            layer.bias.copy_(new_bias)


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
