"""The attribution registry: the single list the API, CLI, report and explorer enumerate.

Each entry states the input kinds it serves (``kinds``, from :data:`seethrough.boundary.KINDS`) and
whether it needs hooks on the model (``needs_hooks``: captures, backward rules, ``layer=``/``unit=``);
:func:`seethrough.attribute` refuses another kind, or a TorchScript model for a method that needs
hooks, in one line before any work.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..targets import SCORES

ALL_KINDS = ("image", "tabular", "tokens", "tensor")
# Families whose every method attaches rules or captures a layer (CAM reads a layer's activations).
_HOOKED_FAMILIES = ("rule", "relevance", "cam")


@dataclass(frozen=True)
class Method:
    name: str
    fn: Callable[..., torch.Tensor]
    family: str  # "gradient", "rule", "relevance", "cam", "perturbation"
    paper: str  # short citation, for the README table and captions
    region: bool  # True: returns (N, 1, H, W); False: (N, C, H, W) like x
    score: str = "logit"  # what a class target is read as by default (the ``score`` option): see SCORES
    kinds: tuple[str, ...] = ("image",)  # the input kinds it serves (seethrough.boundary.KINDS)
    needs_hooks: bool = False  # True: refuses TorchScript models (seethrough.hooks.require_hooks)


def register(name: str, *, family: str, paper: str, region: bool = False, score: str = "logit",
             kinds: tuple[str, ...] = ("image",), needs_hooks: bool | None = None, impl: Callable | None = None,
             fixed: tuple[str, ...] = (), options: dict[str, dict] | None = None) -> Callable:
    """Register an attribution function ``fn(model_or_boundary, x, target, **options) -> Tensor``.

    ``score`` is the method's default reading of a class target (``"logit"`` or
    ``"probability"``, as its paper does); every method takes ``score=`` to change it.
    ``kinds``: the input kinds the method serves; an image-kind call with a plain module gets the
    module, any other call gets the :class:`seethrough.boundary.Boundary`. ``needs_hooks``: default
    True for the rule, relevance and CAM families.

    The entry's options (:mod:`seethrough.catalog`: the CLI's ``--steps``, the explorer's controls)
    are read from ``fn``'s signature and docstring; a thin wrapper taking ``**options`` names the
    function it forwards to (``impl``, less the ``fixed`` parameters it sets itself) or declares
    them (``options={"gamma": {"default": 0.25}}``).

    >>> METHODS["saliency"].kinds, METHODS["lrp"].needs_hooks
    (('image', 'tabular', 'tokens', 'tensor'), True)
    """
    if score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(map(repr, SCORES))}, got {score!r}")
    kinds = tuple(kinds)
    bad = [k for k in kinds if k not in ALL_KINDS]
    if bad or not kinds:
        raise ValueError(f"kinds must be a non-empty tuple of {', '.join(map(repr, ALL_KINDS))}, got {kinds!r}")
    hooked = family in _HOOKED_FAMILIES if needs_hooks is None else bool(needs_hooks)

    def wrap(fn: Callable) -> Callable:
        if name in METHODS:
            raise ValueError(f"attribution method {name!r} registered twice")
        METHODS[name] = Method(name, fn, family, paper, region, score, kinds, hooked)
        if impl is not None:
            fn.__seethrough_impl__ = impl
        if fixed:
            fn.__seethrough_fixed__ = tuple(fixed)
        if options:
            fn.__seethrough_options__ = {k: dict(v) for k, v in options.items()}
        return fn

    return wrap


METHODS: dict[str, Method] = {}
