"""A model card: every leaf layer with its type, output shape and parameter count."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..boundary import Boundary, as_boundary, capture


@dataclass(frozen=True)
class LayerInfo:
    name: str
    kind: str
    output_shape: tuple[int, ...] | None
    params: int
    calls: int


def summary(model: nn.Module | Boundary, x: torch.Tensor, *, containers: bool = False, **how: Any) -> list[LayerInfo]:
    """One forward pass of ``x`` recording each leaf layer's output shape (per sample).

    ``containers=True`` lists every named module (such as ``blocks.3``). A layer whose output is a
    tuple or dict shows its first tensor's shape; layers not called in the forward, or whose output
    holds no tensor, have ``output_shape=None``. ``how`` takes the boundary's fields (``kind=``,
    ``extra=``, ...; docs/boundary.md), so token ids or rows with extra arguments work too.

    >>> import seethrough as see
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU())
    >>> [(i.name, i.output_shape, i.params) for i in see.inspect.summary(net, torch.ones(1, 2))]
    [('0', (3,), 9), ('1', (3,), 0)]
    >>> [i.name for i in see.inspect.summary(torch.nn.Sequential(net), torch.ones(1, 2), containers=True)]
    ['0', '0.0', '0.1']
    """
    b = as_boundary(model, x, **how)
    x, model = b.check(x), b.model
    leaves = [n for n, m in model.named_modules() if n and (containers or not any(True for _ in m.children()))]
    rec = capture(b, x, leaves, strict=False)  # a layer the forward skips is listed without a shape
    modules = dict(model.named_modules())
    out = []
    for n in leaves:
        acts = rec.activations[n]
        shape = tuple(acts[0].shape[1:]) if acts else None
        params = sum(p.numel() for p in modules[n].parameters(recurse=False))
        out.append(LayerInfo(n, type(modules[n]).__name__, shape, params, rec.calls[n]))
    return out
