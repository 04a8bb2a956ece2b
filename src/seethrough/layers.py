"""Addressing layers by their ``named_modules()`` name, with helpful errors."""
from __future__ import annotations

import difflib
from typing import Iterable

from torch import nn


def layer_names(model: nn.Module) -> list[str]:
    """Every addressable layer name of ``model`` (its ``named_modules()`` names, root excluded).

    >>> import torch
    >>> layer_names(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU()))
    ['0', '1']
    """
    return [name for name, _ in model.named_modules() if name]


def resolve_layer(model: nn.Module, name: str) -> nn.Module:
    """Return the sub-module called ``name``; an unknown name lists the closest valid ones.

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2))
    >>> resolve_layer(net, "0")
    Linear(in_features=2, out_features=2, bias=True)
    """
    if isinstance(name, nn.Module):
        if not any(m is name for m in model.modules()):
            raise ValueError("the module given as a layer is not part of this model")
        return name
    if not isinstance(name, str):
        raise TypeError(f"a layer is addressed by its name (a str such as 'features.3'), got {type(name).__name__}")
    modules = dict(model.named_modules())
    if name in modules and name:
        return modules[name]
    names = layer_names(model)
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
    hint = f"closest: {', '.join(close)}" if close else f"valid names include: {', '.join(names[:8])}{' …' if len(names) > 8 else ''}"
    raise ValueError(f"unknown layer {name!r}; {hint}")


def resolve_layers(model: nn.Module, names: str | Iterable[str]) -> dict[str, nn.Module]:
    """Resolve one name or several into ``{name: module}``, keeping the order given."""
    if isinstance(names, str):
        names = [names]
    return {n: resolve_layer(model, n) for n in names}


def name_of(model: nn.Module, module: nn.Module) -> str:
    """The ``named_modules()`` name of ``module`` inside ``model``."""
    for n, m in model.named_modules():
        if m is module:
            return n
    raise ValueError("module is not part of this model")
