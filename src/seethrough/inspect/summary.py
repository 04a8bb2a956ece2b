"""A model card: every leaf layer with its type, output shape and parameter count."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..hooks import hooks


@dataclass(frozen=True)
class LayerInfo:
    name: str
    kind: str
    output_shape: tuple[int, ...] | None
    params: int
    calls: int


def summary(model: nn.Module, x: torch.Tensor, *, containers: bool = False) -> list[LayerInfo]:
    """One forward pass of ``x`` recording each leaf layer's output shape (per sample).

    Layers not called in the forward, or (``containers=True``, which lists every named
    module such as ``blocks.3``) whose output is not a tensor, have ``output_shape=None``.

    >>> import seethrough as see
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU())
    >>> [(i.name, i.output_shape, i.params) for i in see.inspect.summary(net, torch.ones(1, 2))]
    [('0', (3,), 9), ('1', (3,), 0)]
    >>> [i.name for i in see.inspect.summary(torch.nn.Sequential(net), torch.ones(1, 2), containers=True)]
    ['0', '0.0', '0.1']
    """
    leaves = [n for n, m in model.named_modules() if n and (containers or not any(True for _ in m.children()))]
    with torch.no_grad(), hooks(model, capture=leaves, detach=True, strict=not containers) as rec:
        model(x)
    modules = dict(model.named_modules())
    out = []
    for n in leaves:
        acts = rec.activations[n]
        shape = tuple(acts[0].shape[1:]) if acts else None
        params = sum(p.numel() for p in modules[n].parameters(recurse=False))
        out.append(LayerInfo(n, type(modules[n]).__name__, shape, params, rec.calls[n]))
    return out
