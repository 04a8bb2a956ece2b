"""Reading a model's output: the one place that knows outputs can be tensors, tuples or dicts.

Class targets, ``predict`` and the attacks need the ``(N, classes)`` score tensor; a model that
returns a tuple, a dict or a ``ModelOutput`` (a dict subclass) gets one line saying what it
returned and what to pass instead. Output *selectors* (``output="logits"``) will be added here,
so every caller already goes through :func:`class_output`.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

TARGET_HINT = "pass target=callable(output) -> (N,) scores, e.g. target=lambda out: {example}[:, 0]"
MODEL_HINT = "wrap the model so that its forward returns the (N, classes) score tensor (here perhaps {example})"


def class_output(output: Any, *, hint: str = TARGET_HINT) -> torch.Tensor:
    """``output`` itself when it is a tensor; otherwise a ``TypeError`` describing it, with ``hint``.

    >>> class_output(torch.zeros(2, 3)).shape
    torch.Size([2, 3])
    >>> class_output({"logits": torch.zeros(2, 3)})
    Traceback (most recent call last):
    ...
    TypeError: the model returns a dict with keys ['logits'] (shapes (2, 3)), not a tensor of class scores: pass target=callable(output) -> (N,) scores, e.g. target=lambda out: out['logits'][:, 0]
    """
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping):
        keys = list(output)
        what = f"a {type(output).__name__} with keys {keys}" + _shapes(output.values())
        example = f"out[{keys[0]!r}]" if keys else "out[...]"
    elif isinstance(output, (tuple, list)):
        what = f"a {type(output).__name__} of {len(output)}" + _shapes(output)
        example = "out[0]"
    else:
        what, example = f"a {type(output).__name__}", "out"
    raise TypeError(f"the model returns {what}, not a tensor of class scores: " + hint.format(example=example))


def _shapes(items) -> str:
    shapes = [tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__ for v in list(items)[:4]]
    return f" (shapes {', '.join(map(str, shapes))})" if shapes else ""


def batch_len(output: Any) -> int | None:
    """The batch size of an output: the first dimension of its first tensor (``None`` without one).

    >>> batch_len((torch.zeros(5, 2), torch.zeros(5)))
    5
    """
    if isinstance(output, torch.Tensor):
        return output.shape[0] if output.dim() else None
    items = output.values() if isinstance(output, Mapping) else output if isinstance(output, (tuple, list)) else ()
    for v in items:
        n = batch_len(v)
        if n is not None:
            return n
    return None


def detach(output: Any) -> Any:
    """``output`` with every tensor in it detached (tensors, and tuples, lists and dicts of them).

    >>> detach({"a": torch.ones(1, requires_grad=True)})["a"].requires_grad
    False
    """
    return _map(lambda t: t.detach(), output)


def rows(output: Any, stop: int) -> Any:
    """The first ``stop`` samples of an output: every tensor in it sliced ``[:stop]`` (the clean half of
    a batch that also holds baselines).

    >>> rows((torch.arange(4), {"b": torch.zeros(4, 2)}), 2)[1]["b"].shape
    torch.Size([2, 2])
    """
    return _map(lambda t: t[:stop] if t.dim() else t, output)


def _map(fn, output: Any) -> Any:
    if isinstance(output, torch.Tensor):
        return fn(output)
    if isinstance(output, Mapping):
        items = {k: _map(fn, v) for k, v in output.items()}
        try:
            return type(output)(items)
        except TypeError:  # a Mapping subclass without a dict constructor
            return items
    if isinstance(output, tuple) and hasattr(output, "_fields"):  # a namedtuple
        return type(output)(*(_map(fn, v) for v in output))
    if isinstance(output, (tuple, list)):
        return type(output)(_map(fn, v) for v in output)
    return output
