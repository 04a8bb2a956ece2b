"""Pieces the sanity checks share: one explanation call, a fixed target, scoring against the original."""
from __future__ import annotations

import warnings
from typing import Sequence

import torch

# Moved to metrics (max-sensitivity needs them and sits below sanity); re-exported for the checks.
from ..metrics.explainer import Explainer, explain, explain_seeded, fixed_target  # noqa: F401
from .similarity import similarity


def score_maps(reference: torch.Tensor, other: torch.Tensor, metrics: Sequence[str]) -> torch.Tensor:
    """``(M, N)`` similarities; NaN (undefined) scores warn once, not once per map."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = torch.stack([similarity(reference, other, m) for m in metrics])
    if caught:
        warnings.warn(f"{len(caught)} similarity score(s) undefined (a constant or non-finite map): NaN",
                      RuntimeWarning, stacklevel=3)
    return out
