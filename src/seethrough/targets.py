"""Turning a ``target`` argument into one scalar score per sample."""
from __future__ import annotations

from typing import Callable, Sequence, Union

import torch

Target = Union[None, int, Sequence[int], torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]


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
    if callable(target) and not isinstance(target, torch.Tensor):
        return None
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


def target_scores(output: torch.Tensor, target: Target, indices: torch.Tensor | None = None) -> torch.Tensor:
    """One score per sample, ``(N,)``: the target logits, or what a callable target returns.

    Pass ``indices`` (from :func:`target_indices`) to reuse a resolved target, e.g. the
    predicted class of the clean input when scoring perturbed copies of it.

    >>> out = torch.tensor([[0.1, 2.0], [3.0, 0.0]])
    >>> target_scores(out, [0, 0]).tolist()
    [0.10000000149011612, 3.0]
    >>> target_scores(out, lambda o: o.sum(1)).tolist()
    [2.0999999046325684, 3.0]
    """
    if callable(target) and not isinstance(target, torch.Tensor):
        scores = target(output)
        if not isinstance(scores, torch.Tensor) or scores.shape != (output.shape[0],):
            got = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
            raise ValueError(f"a callable target must return one score per sample, shape ({output.shape[0]},); got {got}")
        return scores
    if indices is None:
        indices = target_indices(output, target)
    if indices.shape[0] != output.shape[0]:
        indices = indices.repeat_interleave(output.shape[0] // indices.shape[0])
    return output.gather(1, indices.view(-1, 1)).squeeze(1)
