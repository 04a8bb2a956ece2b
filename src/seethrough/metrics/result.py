"""A per-sample score with the options that produced it (infidelity, max-sensitivity, pointing game)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..results import ResultProtocol


@dataclass
class ScoreResult(ResultProtocol):
    """``values[i]``: the metric for sample ``i``; ``baseline`` a reference value per sample when the
    metric has one (the chance level of the pointing game), else NaN."""

    metric: str
    values: torch.Tensor
    baseline: torch.Tensor | None = None
    options: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None

    def summary(self) -> str:
        return f"{self.metric}: mean {self.mean():.3f} over {len(self.values)} samples"

    def mean(self) -> float:
        return float(self.values.double().nanmean())

    def to_frame(self):
        import pandas as pd

        base = self.baseline if self.baseline is not None else torch.full_like(self.values.double(), float("nan"))
        return pd.DataFrame({"metric": self.metric, "sample": range(len(self.values)),
                             "value": self.values.double().tolist(), "baseline": base.double().tolist()})
