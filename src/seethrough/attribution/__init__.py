"""Attribution: which inputs drove this decision?

Every method is registered in :data:`METHODS` and called the same way::

    see.attribute(model, x, "gradcam", target=285, layer="head")
"""
from __future__ import annotations

import difflib
from typing import Any

import torch
from torch import nn

from ..inputs import check_images
from .registry import METHODS, Method, register

# Importing the method modules registers them. (One line per module.)
from . import gradient  # noqa: F401,E402  # registers: saliency, grad-x-input, sensitivity, smoothgrad, integrated-gradients
from . import rules  # noqa: F401,E402  # registers: deconvnet, guided-backprop, deeplift
from . import lrp  # noqa: F401,E402  # registers: lrp (its own module: relevance rules and composites)
from . import cam  # noqa: F401,E402  # registers: cam, gradcam, gradcam++, guided-gradcam, gradcam-negative
from . import perturbation  # noqa: F401,E402  # registers: occlusion, lime, kernel-shap, rise

__all__ = ["attribute", "METHODS", "Method", "register", "registered"]


def registered(method: str) -> Method:
    """The registry entry of ``method``; an unknown name is a ``ValueError`` naming the close ones.

    Callers that already checked ``x`` (max-sensitivity explains perturbed copies of a checked
    image, which may step outside [0, 1] by the radius) call ``registered(name).fn`` directly.

    >>> registered("saliency").family
    'gradient'
    """
    if method not in METHODS:
        close = difflib.get_close_matches(str(method), list(METHODS), n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        raise ValueError(f"unknown attribution method {method!r}{hint}; available: {', '.join(METHODS)}")
    return METHODS[method]


def attribute(model: nn.Module, x: torch.Tensor, method: str, target: Any = None, *, trust: bool = False,
              **options: Any) -> Any:
    """Attribute the model's ``target`` score for each sample of ``x`` with ``method``.

    Pixel-level methods return a tensor shaped like ``x``; region-level methods (CAM family,
    occlusion, LIME, SHAP, RISE) return ``(N, 1, H, W)`` upsampled to ``x``'s size.
    With ``trust=True`` the result is ``(map, badge)``: a :class:`seethrough.sanity.TrustBadge`
    with the cheap checks (the map after randomising the top layer, deletion and insertion
    AUCs against a random ranking, a verdict).

    >>> import seethrough as see
    >>> model, prep = see.zoo.load("lenet-digits")
    >>> x, y = see.zoo.digits("test")
    >>> see.attribute(model, x[:2], "saliency", target=y[:2]).shape
    torch.Size([2, 1, 32, 32])
    """
    registered(method)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_images(x, model=model)
    if trust:
        from ..sanity.badge import trust_badge

        a = METHODS[method].fn(model, x, target, **options)
        return a, trust_badge(model, x, method, target, a, **options)
    return METHODS[method].fn(model, x, target, **options)
