"""The attribution registry: the single list the API, CLI, report and explorer enumerate."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class Method:
    name: str
    fn: Callable[..., torch.Tensor]
    family: str  # "gradient", "rule", "relevance", "cam", "perturbation"
    paper: str  # short citation, for the README table and captions
    region: bool  # True: returns (N, 1, H, W); False: (N, C, H, W) like x


METHODS: dict[str, Method] = {}


def register(name: str, *, family: str, paper: str, region: bool = False) -> Callable:
    """Register an attribution function ``fn(model, x, target, **options) -> Tensor``."""

    def wrap(fn: Callable) -> Callable:
        if name in METHODS:
            raise ValueError(f"attribution method {name!r} registered twice")
        METHODS[name] = Method(name, fn, family, paper, region)
        return fn

    return wrap
