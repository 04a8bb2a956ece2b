"""Top-k predictions, the first question anyone asks of a classifier."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import nn

from .boundary import Boundary, as_boundary
from .hooks import hooks
from .results import ResultProtocol


@dataclass(frozen=True)
class Prediction(ResultProtocol):
    """One of a sample's top classes: its index, its label and its softmax probability (``options``: ``k``)."""

    index: int
    label: str
    probability: float
    options: dict = field(default_factory=dict, compare=False)
    seed: None = field(default=None, compare=False)  # nothing is random

    def summary(self) -> str:
        """``"espresso (967): 0.412"``."""
        return f"{self.label} ({self.index}): {self.probability:.3f}"


def predict(model: nn.Module | Boundary, x: torch.Tensor, k: int = 5, labels: Sequence[str] | None = None,
            **how: Any) -> list[list[Prediction]]:
    """The ``k`` most probable classes of each sample (softmax over the model's logits).

    ``model`` is an ``nn.Module`` or a :class:`~seethrough.boundary.Boundary`; ``how`` takes the
    boundary's fields (``kind=``, ``output="logits"`` for a dict or ``ModelOutput``, ``extra=`` such as
    an ``attention_mask``; docs/boundary.md). An image batch ``(N, C, H, W)`` must be in [0, 1];
    tabular rows, token ids and other tensors follow their kind's rules. The forward runs in eval
    mode and leaves the model as found.

    >>> import seethrough as see
    >>> model, prep = see.zoo.load("efficientnet-lite0")
    >>> see.predict(model, prep(see.zoo.image("coffee")), k=1, labels=see.zoo.labels("efficientnet-lite0"))[0][0].label
    'espresso'
    """
    b = as_boundary(model, x, **how)
    x = b.check(x)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    with hooks(b.model), torch.no_grad():
        out = b.forward(x)
    if out.dim() != 2:
        raise ValueError(f"predict needs a classifier output (N, classes), got {tuple(out.shape)}")
    probs = out.float().softmax(dim=1)
    k = min(k, probs.shape[1])
    top = probs.topk(k, dim=1)
    names = list(labels) if labels is not None else [str(i) for i in range(probs.shape[1])]
    return [
        [Prediction(int(i), names[int(i)] if int(i) < len(names) else str(int(i)), float(p), {"k": k})
         for p, i in zip(ps, idx)]
        for ps, idx in zip(top.values, top.indices)
    ]
