"""The trust badge: the cheap checks shown next to every attribution map.

Three numbers, each against a reference, and a short verdict:

* the map's rank correlation (Spearman of absolute maps) with the map of a copy whose *top*
  parameterised layer is randomised — a map that does not change (ρ ≥ 0.5) does not explain the
  model's decision (Adebayo et al., 2018);
* its deletion AUC against a random ranking's (lower is better) and
* its insertion AUC against a random ranking's (higher is better) (Petsiuk et al., 2018),
  at 16 steps of square patches so the badge costs about 70 forward passes per image.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..layers import resolve_layer
from .common import explain, fixed_target
from .randomization import layer_seed, parameterised_layers, randomize_layer
from .similarity import similarity

BADGE_STEPS = 16
DEPENDS_ON_MODEL = 0.5  # ρ below this after randomising the top layer: the map depends on the model


@dataclass
class TrustBadge:
    """Per-sample ``(N,)`` tensors: ``randomized_top`` (ρ with the top layer random), deletion and
    insertion AUCs and their random-ranking references; ``verdict`` one short line per sample."""

    top_layer: str
    randomized_top: torch.Tensor
    deletion: torch.Tensor
    deletion_random: torch.Tensor
    insertion: torch.Tensor
    insertion_random: torch.Tensor
    verdict: list[str]

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame({"sample": range(len(self.verdict)), "top_layer": self.top_layer,
                             "spearman_randomized_top": self.randomized_top.tolist(),
                             "deletion_auc": self.deletion.tolist(), "deletion_random": self.deletion_random.tolist(),
                             "insertion_auc": self.insertion.tolist(), "insertion_random": self.insertion_random.tolist(),
                             "verdict": self.verdict})

    def summary(self, i: int = 0) -> str:
        """One line for sample ``i``, for captions and the CLI."""
        return (f"ρ(top layer random) {self.randomized_top[i]:.2f} · deletion {self.deletion[i]:.2f} "
                f"(random {self.deletion_random[i]:.2f}) · insertion {self.insertion[i]:.2f} "
                f"(random {self.insertion_random[i]:.2f}) → {self.verdict[i]}")


def verdict(rho: float, deletion: float, deletion_random: float, insertion: float, insertion_random: float) -> str:
    """A short reading of the three checks.

    >>> verdict(0.1, 0.2, 0.4, 0.7, 0.5)
    'passes: depends on the model, beats random on deletion and insertion'
    """
    problems = []
    if not rho < DEPENDS_ON_MODEL:  # NaN (a constant map) is a problem too
        problems.append("barely changes when the top layer is randomised")
    beats = [name for name, ok in (("deletion", deletion < deletion_random), ("insertion", insertion > insertion_random)) if ok]
    misses = [name for name in ("deletion", "insertion") if name not in beats]
    if misses:
        problems.append(f"no better than random on {' and '.join(misses)}")
    if not problems:
        return "passes: depends on the model, beats random on deletion and insertion"
    return "caution: " + "; ".join(problems)


def badge_patch(h: int, w: int) -> int:
    """Patch side so the image has ≥ 16 × 16 units: 1 px up to 32 px images, 7 px at 224."""
    return max(1, min(h, w) // 32)


def trust_badge(model: nn.Module, x: torch.Tensor, method: Any, target: Any = None,
                attribution: torch.Tensor | None = None, **method_options: Any) -> TrustBadge:
    """The cheap checks for ``method``'s map of ``x`` (computed unless ``attribution`` is given).

    The method's own ``seed`` option, when given, also seeds the random layer and ranking.

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> x, y = see.zoo.digits("test")
    >>> a, badge = see.attribute(model, x[:1], "grad-x-input", target=y[:1], trust=True)
    >>> badge.verdict[0].split(":")[0] in ("passes", "caution")
    True
    """
    from ..metrics import deletion, insertion

    seed = method_options.get("seed", 0)
    seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else 0
    target = fixed_target(model, x, target)
    if attribution is None:
        attribution = explain(model, x, method, target, method_options)
    twin = copy.deepcopy(model)  # the user's model is never modified
    order = parameterised_layers(twin, x)
    top = order[-1]  # the same draw as the first step of see.sanity.randomization with this seed
    randomize_layer(twin if top == "" else resolve_layer(twin, top), layer_seed(seed, len(order) - 1))
    rho = similarity(attribution, explain(twin, x, method, target, method_options), "spearman_abs")
    if rho.dim() == 0:
        rho = rho[None]
    patch = badge_patch(*x.shape[-2:])
    units = -(-x.shape[-2] // patch) * -(-x.shape[-1] // patch)
    opts = dict(steps=min(BADGE_STEPS, units), patch=patch, n_random=1, seed=seed, progress=False)
    d = deletion(model, x, attribution, target, **opts)
    i = insertion(model, x, attribution, target, **opts)
    words = [verdict(float(rho[k]), float(d.score[k]), float(d.random_score[k]), float(i.score[k]),
                     float(i.random_score[k])) for k in range(len(x))]
    return TrustBadge(top or "(the model)", rho.float(), d.score, d.random_score, i.score, i.random_score, words)
