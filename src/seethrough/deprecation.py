"""Old option names and argument orders, accepted for one release (issue 19, item 5).

One spelling per concept (docs/attribution.md, "Spellings"): ``n_samples``, ``batch_size``,
``step_size``, ``eps`` (attack budget) vs ``stabilizer`` (a numerical guard), ``relative_noise`` vs
``noise_std``, ``method`` (an algorithm; ``kind`` is an input kind), ``(model, x, ...)``.
:func:`renamed` maps an old keyword onto its new name and :func:`layer_moved` swaps the old
``(model, layer, x)`` order back, each with a ``FutureWarning``. We warn with ``FutureWarning``,
not ``DeprecationWarning``: Python hides DeprecationWarning unless it is raised in ``__main__``, so
a user calling us from a notebook or a script would never see it; FutureWarning is shown by default
and is the category Python documents for deprecated features meant for end users.

>>> import warnings
>>> @renamed(n_perturbations="n_samples")
... def count(x, n_samples=4):
...     '''>>> count(1)'''
...     return x * n_samples
>>> with warnings.catch_warnings(record=True) as w:
...     warnings.simplefilter("always")
...     count(2, n_perturbations=3), str(w[0].message)
(6, 'count(n_perturbations=...) is renamed n_samples=...; the old name is removed in the next release')
>>> import inspect; list(inspect.signature(count).parameters)
['x', 'n_samples']
"""
from __future__ import annotations

import functools
import inspect
import warnings
from typing import Any, Callable

import torch  # noqa: F401 (the doctests)
from torch import nn


def _warn(message: str, what: str = "name", stacklevel: int = 3) -> None:
    # stacklevel: the warning points at the user's call, not at this helper or the wrapper.
    warnings.warn(f"{message}; the old {what} is removed in the next release", FutureWarning, stacklevel=stacklevel)


def _renamed_keys(name: str, options: dict[str, Any], old_to_new: dict[str, str], stacklevel: int) -> dict[str, Any]:
    out = dict(options)
    for old, new in old_to_new.items():
        if old in out:
            if new in out:
                raise TypeError(f"{name}() got both {old}= (the old name) and {new}=; pass {new}= only")
            _warn(f"{name}({old}=...) is renamed {new}=...", stacklevel=stacklevel)
            out[new] = out.pop(old)
    return out


def rename_keys(name: str, options: dict[str, Any], **old_to_new: str) -> dict[str, Any]:
    """A copy of an options dict with old keys mapped to new ones (a ``FutureWarning`` each), for the
    option dicts that a registry forwards (the attacks' ``**options``) rather than a signature.

    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     rename_keys("ascent", {"lr": 0.1, "steps": 3}, lr="step_size")
    {'steps': 3, 'step_size': 0.1}
    """
    return _renamed_keys(name, options, old_to_new, stacklevel=4)


def renamed(**old_to_new: str) -> Callable[[Callable], Callable]:
    """Decorator: accept each old keyword for its new name, with a ``FutureWarning`` naming both.

    Giving the old and the new name together is a ``TypeError`` naming both. The wrapped function
    keeps the new function's signature (``__signature__``), so the spec registry, ``--help`` and the
    explorer, which read signatures, see the new names only. Works on ``**options`` functions too.

    >>> @renamed(batch="batch_size")
    ... def f(*, batch_size=8):
    ...     return batch_size
    >>> f(batch_size=2, batch=3)
    Traceback (most recent call last):
    TypeError: f() got both batch= (the old name) and batch_size=; pass batch_size= only
    """
    def wrap(fn: Callable) -> Callable:
        name = getattr(fn, "__name__", "function")

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            return fn(*args, **_renamed_keys(name, kwargs, old_to_new, stacklevel=4))

        call.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
        call.__seethrough_renamed__ = {**getattr(fn, "__seethrough_renamed__", {}), **old_to_new}  # type: ignore[attr-defined]
        return call

    return wrap


def _is_layer(v: Any) -> bool:
    """A layer address: a name, a module, or a non-empty list/tuple of names (never a tensor)."""
    if isinstance(v, (str, nn.Module)):
        return True
    return isinstance(v, (list, tuple)) and len(v) > 0 and all(isinstance(e, (str, nn.Module)) for e in v)


def layer_moved(new: int, old: int = 1, param: str = "layer") -> Callable[[Callable], Callable]:
    """Decorator for a function whose layer moved from positional slot ``old`` (the former
    ``(model, layer, x)``) to slot ``new`` (``(model, x, layer)``): a call in the old order — a layer
    address at ``old`` and data (not a layer) after it — is moved back with a ``FutureWarning``.

    >>> import warnings
    >>> @layer_moved(2)
    ... def grab(model, x, layer):
    ...     return layer, x
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     grab(nn.Identity(), "fc1", torch.ones(1))
    ('fc1', tensor([1.]))
    """
    def wrap(fn: Callable) -> Callable:
        name = getattr(fn, "__name__", "function")

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            if len(args) > old and _is_layer(args[old]) and (len(args) <= old + 1 or not _is_layer(args[old + 1])):
                a = list(args)
                layer = a.pop(old)
                if len(a) >= new:
                    a.insert(new, layer)
                elif param in kwargs:
                    raise TypeError(f"{name}() got {param} twice (positionally, in the old order, and as {param}=)")
                else:
                    kwargs[param] = layer
                _warn(f"{name}(model, {param}, x, ...) is the old argument order; "
                      f"call {name}(model, x, ..., {param}=...)", "order")
                args = tuple(a)
            return fn(*args, **kwargs)

        call.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
        return call

    return wrap


__all__ = ["renamed", "rename_keys", "layer_moved"]
