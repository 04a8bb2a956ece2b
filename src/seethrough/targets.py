"""Turning a ``target`` argument into one scalar score per sample.

A class target is read from the model's ``(N, classes)`` output as one of :data:`SCORES`:
the ``"logit"`` itself, the softmax ``"probability"`` or the ``"log-probability"``; the softmax
runs over each sample's own row, so a batch whose samples explain different classes is scored
per sample (what a callable target cannot do: it sees the whole output, not the class of each
row). A callable target returns its own scores; ``score`` does not apply to it.
"""
from __future__ import annotations

from typing import Callable, Sequence, Union

import torch

from .outputs import batch_len, class_output

Target = Union[None, int, Sequence[int], torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]

SCORES = ("logit", "probability", "log-probability")


def is_callable_target(target: Target) -> bool:
    """True for a target ``output -> (N,)`` scores (a tensor is callable-free even though it has methods)."""
    return callable(target) and not isinstance(target, torch.Tensor)


def method_score(score: str | None, target: Target, default: str) -> str | None:
    """The score an attribution method reads: ``default`` unless ``score`` is given.

    With a callable target the callable's output *is* the score, so an explicit ``score`` is
    rejected (one clear error, never silently ignored) and ``None`` is returned.

    >>> method_score(None, 3, "probability"), method_score("logit", 3, "probability")
    ('probability', 'logit')
    >>> method_score(None, lambda out: out[:, 0], "probability") is None
    True
    """
    if score is not None and score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(map(repr, SCORES))}, got {score!r}")
    if is_callable_target(target):
        if score is not None:
            raise ValueError(f"score={score!r} applies to class targets; a callable target returns its own scores "
                             "(apply the softmax inside it, or give the class as target=int)")
        return None
    return default if score is None else score


def target_indices(output: torch.Tensor, target: Target) -> torch.Tensor | None:
    """The class index per sample as a ``(N,)`` long tensor (``None`` for a callable target).

    ``None`` picks each sample's predicted class; an int is broadcast; a sequence gives
    one class per sample. Out-of-range classes are a ``ValueError``.

    >>> out = torch.tensor([[0.1, 2.0], [3.0, 0.0]])
    >>> target_indices(out, None).tolist()
    [1, 0]
    >>> target_indices(out, 1).tolist()
    [1, 1]
    """
    if is_callable_target(target):
        return None
    output = class_output(output)  # a tuple or dict output: one line on what to pass instead
    if output.dim() != 2:
        raise ValueError(
            f"a class target needs a model output of shape (N, classes), got {tuple(output.shape)}; "
            "pass target=callable(output) -> (N,) scores for other outputs"
        )
    n, classes = output.shape
    if target is None:
        return output.detach().argmax(dim=1)
    if isinstance(target, bool):
        raise TypeError("target must be None, an int, one int per sample, or a callable; got a bool")
    if isinstance(target, int):
        idx = torch.full((n,), target, dtype=torch.long, device=output.device)
    else:
        try:
            idx = torch.as_tensor(target, device=output.device)
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError(f"target must be None, an int, one int per sample, or a callable; got {type(target).__name__}") from e
        if idx.is_floating_point() or idx.is_complex():
            raise TypeError(f"class targets must be integers, got dtype {idx.dtype}")
        idx = idx.long().flatten()
        if idx.numel() == 1:
            idx = idx.expand(n).clone()
        if idx.numel() != n:
            raise ValueError(f"got {idx.numel()} targets for {n} samples; give one class per sample or a single int")
    bad = (idx < 0) | (idx >= classes)
    if bad.any():
        raise ValueError(f"target {idx[bad][0].item()} is out of range: the model has {classes} classes (0..{classes - 1})")
    return idx


def target_scores(output: torch.Tensor, target: Target, indices: torch.Tensor | None = None,
                  score: str | None = None) -> torch.Tensor:
    """One score per sample, ``(N,)``: the target class's ``score`` (default the logit), or what a
    callable target returns.

    ``score``: ``"logit"``, ``"probability"`` (softmax over the classes of each sample, then
    that sample's class) or ``"log-probability"``; not allowed with a callable target.
    Pass ``indices`` (from :func:`target_indices`) to reuse a resolved target, e.g. the
    predicted class of the clean input when scoring perturbed copies of it.

    >>> out = torch.tensor([[0.1, 2.0], [3.0, 0.0]])
    >>> target_scores(out, [0, 0]).tolist()
    [0.10000000149011612, 3.0]
    >>> [round(p, 4) for p in target_scores(out, [1, 0], score="probability").tolist()]
    [0.8699, 0.9526]
    >>> target_scores(out, lambda o: o.sum(1)).tolist()
    [2.0999999046325684, 3.0]
    """
    if is_callable_target(target):
        if score is not None:
            method_score(score, target, "logit")  # raises the one clear error
        scores = target(output)
        n = batch_len(output)  # the output may be a tuple or dict: the callable picks from it
        if not isinstance(scores, torch.Tensor) or scores.dim() != 1 or (n is not None and scores.shape[0] != n):
            got = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
            raise ValueError(f"a callable target must return one score per sample, shape ({'N' if n is None else n},); got {got}")
        return scores
    output = class_output(output)
    if score is not None and score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(map(repr, SCORES))}, got {score!r}")
    if indices is None:
        indices = target_indices(output, target)
    if indices.shape[0] != output.shape[0]:
        indices = indices.repeat_interleave(output.shape[0] // indices.shape[0])
    if score == "probability":
        output = output.softmax(1)
    elif score == "log-probability":
        output = output.log_softmax(1)
    return output.gather(1, indices.view(-1, 1)).squeeze(1)
