"""One explanation call and a fixed target: what every check of an attribution method needs.

They sit in :mod:`seethrough.metrics` (below :mod:`seethrough.sanity`) because both the metrics
(max-sensitivity) and the sanity checks call them; in ``sanity.common`` they made metrics import
sanity while sanity imported metrics (an import cycle, issue 19). ``seethrough.sanity.common``
re-exports them under their old names.
"""
from __future__ import annotations

from typing import Any, Callable, Union

import torch
from torch import nn

from ..attribution.common import resolve_target

Explainer = Union[str, Callable[[nn.Module, torch.Tensor, Any], torch.Tensor]]


def explain(model: nn.Module, x: torch.Tensor, method: Explainer, target: Any, options: dict[str, Any]) -> torch.Tensor:
    """``method`` is a registered attribution name or a callable ``(model, x, target) -> map``."""
    if callable(method):
        return method(model, x, target, **options).detach()
    from ..attribution import registered

    # The entry point checked the clean x; perturbed copies (max-sensitivity) may leave [0, 1].
    return registered(method).fn(model, x, target, **options).detach()


def explain_seeded(model: nn.Module, x: torch.Tensor, method: Explainer, target: Any, options: dict[str, Any],
                   seed: int | None) -> torch.Tensor:
    """:func:`explain` with a check's ``seed`` forwarded to the method when it takes one: random methods
    (LIME, RISE, SmoothGrad) then draw the same noise for the model and its variants; a deterministic
    method that refuses the option (it names ``seed`` in its TypeError) is called without it.

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> x, y = see.zoo.digits("test")
    >>> explain_seeded(model, x[:1], "grad-x-input", y[:1], {}, seed=3).shape
    torch.Size([1, 1, 32, 32])
    """
    if seed is None:
        return explain(model, x, method, target, options)
    try:
        return explain(model, x, method, target, {**options, "seed": seed})
    except TypeError as e:
        if "seed" not in str(e):
            raise
        return explain(model, x, method, target, options)


def fixed_target(model: nn.Module, x: torch.Tensor, target: Any) -> Any:
    """The class per sample decided once on the trained model: every variant explains that decision."""
    from ..inputs import check_images

    check_images(x, model=model)
    idx = resolve_target(model, x, target)
    return target if idx is None else idx
