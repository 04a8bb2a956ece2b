"""Data randomization test (Adebayo et al., 2018): the same explanation on a twin trained on permuted labels.

If a method draws the same map for a model that learned the task and for one that could only
memorise shuffled labels, the map does not depend on the relation between data and labels.
Zoo models get their twin from ``see.zoo.load(name, labels="permuted")``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import nn

from ..results import ResultProtocol, call_options
from .common import Explainer, explain, fixed_target, score_maps
from .similarity import METRICS, _check_metric, sobel


@dataclass
class DataRandomization(ResultProtocol):
    """``scores[m, i]``: similarity of the twin's map to the model's (metric ``metrics[m]``, sample ``i``);
    ``edge[m, i]``: the same for the Sobel edge map of the input."""

    method: str
    metrics: tuple[str, ...]
    scores: torch.Tensor
    edge: torch.Tensor
    original: torch.Tensor
    randomized: torch.Tensor
    x: torch.Tensor = field(repr=False)
    options: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None  # the comparison draws nothing at random (a random method's own seed is in options)

    def summary(self) -> str:
        return (f"{self.method} on the model vs its permuted-label twin, {self.scores.shape[1]} samples: mean "
                f"{self.metrics[0]} {float(self.scores[0].nanmean()):.3f} (edge detector {float(self.edge[0].nanmean()):.3f})")

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([{"method": self.method, "metric": metric, "sample": i,
                              "similarity": float(self.scores[m, i]), "edge_similarity": float(self.edge[m, i])}
                             for m, metric in enumerate(self.metrics) for i in range(self.scores.shape[1])])


def data_randomization(model: nn.Module, random_label_model: nn.Module, x: torch.Tensor,
                       method: Explainer = "saliency", target: Any = None,
                       metrics: Sequence[str] = METRICS, **method_options: Any) -> DataRandomization:
    """Compare ``method``'s maps on ``model`` and on its permuted-label twin, for the same class.

    The class explained on both is the trained model's (``target=None``: its prediction).

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> twin, _ = see.zoo.load("lenet-digits", labels="permuted")
    >>> x, _ = see.zoo.digits("test")
    >>> r = see.sanity.data_randomization(model, twin, x[:3], "saliency", metrics=("spearman_abs",))
    >>> tuple(r.scores.shape)
    (1, 3)
    """
    opts = call_options(locals(), "model", "random_label_model", "x")
    for name, m in (("model", model), ("random_label_model", random_label_model)):
        if not isinstance(m, nn.Module):
            raise TypeError(f"{name} must be a torch.nn.Module, got {type(m).__name__}")
    metrics = tuple([metrics] if isinstance(metrics, str) else metrics)
    if not metrics:
        raise ValueError("metrics must name at least one of " + ", ".join(METRICS))
    for m in metrics:
        _check_metric(m)
    target = fixed_target(model, x, target)
    original = explain(model, x, method, target, method_options)
    randomized = explain(random_label_model, x, method, target, method_options)
    if randomized.shape != original.shape:
        raise ValueError(f"the twin's map has shape {tuple(randomized.shape)}, the model's {tuple(original.shape)}: "
                         "the two models must share the input and output shapes")
    name = method if isinstance(method, str) else getattr(method, "__name__", "custom")
    return DataRandomization(name, metrics, score_maps(original, randomized, metrics),
                             score_maps(original, sobel(x), metrics), original, randomized, x.detach(),
                             options=opts, seed=method_options.get("seed"))
