"""Does a stamped patch change the decision? The behavioural check beside TCAV's directional one.

TCAV says whether a class score rises along a concept's direction; stamping the concept on
inputs of other classes and counting how many the model now assigns to the class says whether
the concept alone *decides*. Both are needed to tell a planted pattern from a control: a twin
that learned "bright corner ⇒ 7" flips as many digits with a solid square as with stripes.
"""
from __future__ import annotations

import torch
from torch import nn

from ..batching import run_batched
from ..deprecation import renamed
from ..hooks import hooks
from .sets import stamp


def _predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    def fn(a: int, b: int) -> torch.Tensor:
        with hooks(model), torch.no_grad():
            return model(x[a:b]).argmax(1)

    return run_batched(fn, len(x), progress=False, desc="predict", device=x.device)


@renamed(kind="pattern")
def flip_rate(model: nn.Module, x: torch.Tensor, pattern: str, target: int, *, seed: int = 0, **stamp_options) -> float:
    """Share of ``x`` not predicted as ``target`` that the model predicts as ``target`` once a
    ``pattern`` patch is stamped on them (:func:`~seethrough.concepts.stamp`, same options).

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> x, y = see.zoo.digits("test")
    >>> 0.0 <= see.concepts.flip_rate(model, x[y != 7][:40], "stripes", 7) <= 1.0
    True
    """
    if not isinstance(x, torch.Tensor) or len(x) == 0:
        raise ValueError("flip_rate needs a non-empty tensor of inputs")
    before = _predict(model, x) != target
    if not before.any():
        raise ValueError(f"every input is already predicted as class {target}: nothing can flip")
    after = _predict(model, stamp(x[before], pattern, seed=seed, **stamp_options))
    return (after == target).double().mean().item()
