"""Attribution: which inputs drove this decision?

Every method is registered in :data:`METHODS` and called the same way::

    see.attribute(model, x, "gradcam", target=285, layer="head")
"""
from __future__ import annotations

import difflib
from typing import Any, Callable

import torch
from torch import nn

from ..boundary import SHAPES, Boundary, as_boundary, split_fields
from ..hooks import require_hooks
from ..inputs import check_images
from .registry import METHODS, Method, register

# Importing the method modules registers them. (One line per module.)
from . import gradient  # noqa: F401,E402  # registers: saliency, grad-x-input, sensitivity, smoothgrad, integrated-gradients
from . import rules  # noqa: F401,E402  # registers: deconvnet, guided-backprop, deeplift
from . import lrp  # noqa: F401,E402  # registers: lrp (its own module: relevance rules and composites)
from . import cam  # noqa: F401,E402  # registers: cam, gradcam, gradcam++, guided-gradcam, gradcam-negative
from . import perturbation  # noqa: F401,E402  # registers: occlusion, lime, kernel-shap, rise

__all__ = ["attribute", "METHODS", "Method", "register", "registered"]

# The trust badge is a layer above attribution: it randomises the model and runs deletion and
# insertion, which call attribute() again. So attribution does not import it; seethrough.sanity.badge
# hands its function over here when it is imported (seethrough/__init__ imports sanity, and any
# ``import seethrough.<x>`` runs that first), and ``trust=True`` calls it. No import cycle (issue 19).
_TRUST_BADGE: Callable[..., Any] | None = None


def set_trust_badge(fn: Callable[..., Any]) -> None:
    """Install ``fn(model, x, method, target, attribution, **options)`` as what ``trust=True`` calls
    (done by :mod:`seethrough.sanity.badge`; a test may install its own and restore the old one).

    >>> import seethrough.sanity.badge as b
    >>> set_trust_badge(b.trust_badge); _TRUST_BADGE is b.trust_badge
    True
    """
    global _TRUST_BADGE
    _TRUST_BADGE = fn


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


def attribute(model: nn.Module | Boundary, x: torch.Tensor, method: str, target: Any = None, *, trust: bool = False,
              **options: Any) -> Any:
    """Attribute the model's ``target`` score for each sample of ``x`` with ``method``.

    ``model`` is an ``nn.Module`` or a :class:`seethrough.Boundary`; the boundary fields
    (``kind``, ``output``, ``extra``, ``feature_names``, ``background``, ``embedding``, ``pad_id``, …,
    docs/boundary.md) may also be given as keywords. The input kind is inferred from ``x`` when not
    given; a method that does not serve it refuses in one line naming the kinds it does
    (``METHODS[name].kinds``), and a method that needs hooks refuses a TorchScript model.

    Shapes: images as before — pixel-level methods return a tensor shaped like ``x``, region-level
    methods (CAM family, occlusion, LIME, SHAP, RISE) ``(N, 1, H, W)`` upsampled to ``x``'s size;
    tabular rows ``(N, features)``; tensors like ``x``; token ids ``(N, L)`` per-token scores (the sum
    over the embedding dimension; ``reduce="none"`` gives the full ``(N, L, D)``). ``layer=`` returns
    the attribution of each unit of that layer's output instead, ``unit=(layer, channel[, position])``
    explains that unit's activation instead of a class score (docs/boundary.md).
    With ``trust=True`` (image inputs) the result is ``(map, badge)``: a :class:`seethrough.sanity.TrustBadge`
    with the cheap checks (the map after randomising the top layer, deletion and insertion
    AUCs against a random ranking, a verdict).

    >>> import seethrough as see
    >>> model, prep = see.zoo.load("lenet-digits")
    >>> x, y = see.zoo.digits("test")
    >>> see.attribute(model, x[:2], "saliency", target=y[:2]).shape
    torch.Size([2, 1, 32, 32])
    >>> see.attribute(torch.nn.Embedding(5, 2), torch.zeros(1, 3, dtype=torch.long), "lrp")
    Traceback (most recent call last):
    ...
    ValueError: lrp supports image, tabular, tensor inputs; this input is tokens ((N, L) integer ids)
    """
    spec = registered(method)
    how, options = split_fields(options)
    if not isinstance(model, (nn.Module, Boundary)):
        raise TypeError(f"model must be a torch.nn.Module or a seethrough Boundary, got {type(model).__name__}")
    b = as_boundary(model, x, **how)
    if b.kind not in spec.kinds:
        raise ValueError(f"{method} supports {', '.join(spec.kinds)} inputs; this input is {b.kind} "
                         f"({SHAPES[b.kind]})")
    if b.kind == "image":
        check_images(x, model=b.model)  # today's image rules, unchanged
    else:
        b.check(x)
    if spec.needs_hooks or options.get("layer") is not None or options.get("unit") is not None:
        require_hooks(b.model, method if spec.needs_hooks else f"{method} with layer=/unit=")
    # Image users and image-only methods keep the plain module; everything else reads the boundary.
    plain = b.kind == "image" and isinstance(model, nn.Module) and not {k for k, v in how.items() if v is not None} - {"kind"}
    arg = model if plain else b
    if trust:
        if b.kind != "image":
            raise ValueError(f"trust=True (the trust badge: top-layer randomisation, deletion and insertion over pixels) "
                             f"is defined for image inputs; this input is {b.kind} — call without trust=True")
        inner = "unit=" if options.get("unit") is not None else (
            "layer=" if options.get("layer") is not None and spec.family != "cam" else None)  # CAM's layer= is where its map is read
        if inner:
            raise ValueError(f"trust=True checks a map over the input's pixels; {method} with {inner} attributes to a "
                             "layer's units — call without trust=True (or without " + inner + ")")
        if _TRUST_BADGE is None:
            raise RuntimeError("trust=True needs the trust badge: import seethrough (or seethrough.sanity) first")
        a = spec.fn(arg, x, target, **options)
        return a, _TRUST_BADGE(arg, x, method, target, a, **options)
    return spec.fn(arg, x, target, **options)
