"""Model hygiene: prove that a call left the model exactly as found (DESIGN.md principle 2).

Every method's test wraps its call in :func:`untouched`::

    with untouched(model):
        see.attribute(model, x, "saliency")
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_state_dict_hooks",
    "_state_dict_pre_hooks",
    "_load_state_dict_pre_hooks",
    "_load_state_dict_post_hooks",
)


@dataclass
class ModelSnapshot:
    training: dict[str, bool]
    requires_grad: dict[str, bool]
    tensors: dict[str, bytes]
    grads: dict[str, bytes | None]
    hooks: dict[str, tuple]
    tensor_hooks: dict[str, tuple]


def _bytes(t: torch.Tensor) -> bytes:
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""


def snapshot(model: nn.Module) -> ModelSnapshot:
    """Record everything a method must leave unchanged.

    >>> net = torch.nn.Linear(2, 2)
    >>> s = snapshot(net)
    >>> assert_unchanged(net, s)
    """
    params = dict(model.named_parameters())
    return ModelSnapshot(
        training={n: m.training for n, m in model.named_modules()},
        requires_grad={n: p.requires_grad for n, p in params.items()},
        tensors={n: _bytes(t) for n, t in [*params.items(), *model.named_buffers()]},
        grads={n: None if p.grad is None else _bytes(p.grad) for n, p in params.items()},
        hooks={f"{n}.{d}": tuple(getattr(m, d, {}) or {}) for n, m in model.named_modules() for d in _HOOK_DICTS},
        tensor_hooks={n: tuple(p._backward_hooks or {}) for n, p in params.items()},
    )


def assert_unchanged(model: nn.Module, before: ModelSnapshot) -> None:
    """Raise ``AssertionError`` naming the first thing that differs from ``before``."""
    after = snapshot(model)
    for field in ("training", "requires_grad", "tensors", "grads", "hooks", "tensor_hooks"):
        old, new = getattr(before, field), getattr(after, field)
        if old.keys() != new.keys():
            raise AssertionError(f"model structure changed ({field}): {sorted(set(old) ^ set(new))[:5]}")
        changed = [k for k in old if old[k] != new[k]]
        if changed:
            raise AssertionError(f"model {field} changed at {changed[:5]}")


@contextmanager
def untouched(model: nn.Module, *, allow_raise: type[BaseException] | tuple = ()) -> Iterator[None]:
    """Assert the model is unchanged after the block; exceptions in ``allow_raise`` are
    swallowed *after* the check, so a failing call is tested for hygiene too.

    >>> net = torch.nn.Linear(2, 2)
    >>> with untouched(net, allow_raise=ValueError):
    ...     raise ValueError("a method failing midway")
    """
    before = snapshot(model)
    try:
        yield
    except allow_raise if allow_raise else () as e:  # noqa: B030 - empty tuple catches nothing
        assert_unchanged(model, before)
        return
    assert_unchanged(model, before)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` intra-op torch threads, then restore the count.

    The Dask engine's workers run one thread each; a local reference computed with another
    count may differ in the last float bits (kernels block their sums by thread), so a
    bit-for-bit comparison computes the reference under ``torch_threads(1)``.

    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
