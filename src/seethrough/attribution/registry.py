"""The attribution registry: the single list the API, CLI, report and explorer enumerate."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..targets import SCORES


@dataclass(frozen=True)
class Method:
    name: str
    fn: Callable[..., torch.Tensor]
    family: str  # "gradient", "rule", "relevance", "cam", "perturbation"
    paper: str  # short citation, for the README table and captions
    region: bool  # True: returns (N, 1, H, W); False: (N, C, H, W) like x
    score: str = "logit"  # what a class target is read as by default (the ``score`` option): see SCORES


def register(name: str, *, family: str, paper: str, region: bool = False, score: str = "logit") -> Callable:
    """Register an attribution function ``fn(model, x, target, **options) -> Tensor``.

    ``score`` is the method's default reading of a class target (``"logit"`` or
    ``"probability"``, as its paper does); every method takes ``score=`` to change it.
    """
    if score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(map(repr, SCORES))}, got {score!r}")

    def wrap(fn: Callable) -> Callable:
        if name in METHODS:
            raise ValueError(f"attribution method {name!r} registered twice")
        METHODS[name] = Method(name, fn, family, paper, region, score)
        return fn

    return wrap


METHODS: dict[str, Method] = {}
