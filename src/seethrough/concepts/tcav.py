"""TCAV (Kim et al. 2018): does the model's output for a class rise along a concept's direction?

The TCAV score is the fraction of the class's inputs whose directional derivative of the target
score along the CAV is positive. Its significance: R CAVs of the concept against R random sets,
R CAVs of random set i+1 against random set i, a two-sided t-test between the two score
distributions, Bonferroni-corrected over the layers tested.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..deprecation import layer_moved
from ..hooks import hooks
from ..results import ResultProtocol
from ..targets import target_indices, target_scores
from .cav import canonical, fit_cav, layer_activations


@dataclass
class LayerTCAV:
    layer: str
    score: float                 # mean TCAV score over the concept-vs-random CAVs
    concept_scores: torch.Tensor  # (R,)
    random_scores: torch.Tensor   # (R,)
    cav_accuracy: torch.Tensor    # (R,) held-out accuracy of each concept CAV
    pvalue: float                # Bonferroni-corrected
    significant: bool

    def reading(self) -> str:
        """What this layer's numbers say, in words: captions are generated from it, never typed.

        >>> r = LayerTCAV("pool2", 0.2, torch.full((3,), .2), torch.tensor([.5, .6, .4]), torch.ones(3), 0.01, True)
        >>> r.reading()
        'pool2: 0.20 against random 0.50 (p=0.01), significant: below the random CAVs, the concept lowers the class score'
        """
        rand = self.random_scores.double().mean().item()
        head = f"{self.layer}: {self.score:.2f} against random {rand:.2f} (p={self.pvalue:.2g})"
        if not self.significant:
            return head + ", not significant"
        if self.score >= rand:
            return head + ", significant: above the random CAVs, the concept raises the class score"
        return head + ", significant: below the random CAVs, the concept lowers the class score"


@dataclass
class TCAVResult(ResultProtocol):
    concept: str
    target: int
    alpha: float
    layers: dict[str, LayerTCAV] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None

    def __getitem__(self, layer: str) -> LayerTCAV:
        return self.layers[layer]

    def summary(self) -> str:
        """Every layer's :meth:`LayerTCAV.reading`, joined: one sentence per result for a caption."""
        return "; ".join(r.reading() for r in self.layers.values())

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([{"layer": r.layer, "score": r.score, "random_mean": r.random_scores.mean().item(),
                              "pvalue": r.pvalue, "significant": r.significant,
                              "cav_accuracy": r.cav_accuracy.mean().item()} for r in self.layers.values()])


@layer_moved(2)
def directional_grads(model: nn.Module, x: torch.Tensor, layer: str, target) -> torch.Tensor:
    """``(N, D)`` gradients of each input's target score w.r.t. the layer's activations, in one batch pass.

    Samples do not interact in eval mode, so the gradient of the summed scores holds every
    per-sample gradient at once.
    """
    with hooks(model, capture=layer) as rec:
        out = model(x)
        idx = target_indices(out, target)
        scores = target_scores(out, target, idx)
        g, = torch.autograd.grad(scores.sum(), rec[layer])
    return g.flatten(1)


def _cache_key(model: nn.Module, parts: Sequence[Any]) -> str:
    h = hashlib.sha256()
    for p in model.state_dict().values():
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    for part in parts:
        h.update(part.detach().cpu().contiguous().numpy().tobytes() if isinstance(part, torch.Tensor) else repr(part).encode())
    return h.hexdigest()[:20]


@layer_moved(3)
def tcav(
    model: nn.Module,
    concept_x: torch.Tensor,
    class_x: torch.Tensor,
    layer: str | Sequence[str],
    target: int,
    random_sets: int = 10,
    alpha: float = 0.05,
    seed: int = 0,
    *,
    random_x: torch.Tensor | None = None,
    concept: str = "concept",
    cache: str | Path | None = None,
    progress: bool = False,
    n_tests: int | None = None,
) -> TCAVResult:
    """TCAV scores of ``concept_x`` for class ``target`` at one or several layers.

    ``random_x`` is the pool the random sets (each the size of ``concept_x``) are drawn from
    (default: ``class_x`` itself, Kim et al. use random images). With ``cache`` a directory,
    the CAVs are stored there keyed on a hash of the model, inputs and options. ``n_tests`` is
    the number of tests the Bonferroni correction counts (default: the layers of this call); when
    several concepts are tested, pass layers × concepts, or each gets its own 5 % chance of a
    false positive.

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> x, y = see.zoo.digits("test")
    >>> r = see.concepts.tcav(model, see.concepts.stamp(x[:20]), x[y == 7][:20], "relu4", 7, random_sets=2, random_x=x)
    >>> 0 <= r["relu4"].score <= 1
    True
    """
    from scipy.stats import ttest_ind

    from . import sets as _sets

    layers = [layer] if isinstance(layer, str) else list(layer)
    if isinstance(random_sets, bool) or not isinstance(random_sets, int) or random_sets < 2:
        raise ValueError(f"random_sets must be an int >= 2 (the t-test needs two scores per side), got {random_sets!r}")
    if n_tests is not None and (isinstance(n_tests, bool) or not isinstance(n_tests, int) or n_tests < len(layers)):
        raise ValueError(f"n_tests must be an int >= the {len(layers)} layer(s) tested, got {n_tests!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    for name, s in (("concept_x", concept_x), ("class_x", class_x)):
        if not isinstance(s, torch.Tensor) or len(s) < 2:
            raise ValueError(f"{name} must be a tensor of at least 2 inputs")
    pool = class_x if random_x is None else random_x
    concept_x = canonical(concept_x)
    rand = _sets.random_sets(pool, random_sets + 1, len(concept_x), seed=seed)
    result = TCAVResult(concept, int(target), alpha, options={"random_sets": random_sets, "seed": seed, "n": len(concept_x),
                                                              "n_tests": n_tests or len(layers)},
                        seed=seed)
    bar = _bar(layers, progress)
    for name in bar:
        key = _cache_key(model, [name, concept_x, pool, random_sets, seed]) if cache is not None else None
        cavs = _load(cache, key)
        if cavs is None:
            acts_c = layer_activations(model, concept_x, name)
            acts_r = [layer_activations(model, r, name) for r in rand]
            concept_cavs = [fit_cav(name, acts_c, acts_r[i], seed + i, warn=False) for i in range(random_sets)]
            # Disjoint-ish pairs (i, i+1): one shared random 'concept' would give every random CAV its quirks.
            random_cavs = [fit_cav(name, acts_r[i + 1], acts_r[i], seed + i, warn=False) for i in range(random_sets)]
            cavs = (torch.stack([c.vector for c in concept_cavs]), torch.stack([c.vector for c in random_cavs]),
                    torch.tensor([c.accuracy for c in concept_cavs]))
            _save(cache, key, cavs)
        vc, vr, acc = cavs
        if acc.mean() <= 0.6:
            import warnings

            warnings.warn(f"the concept CAVs at {name!r} are at chance (held-out accuracy {acc.mean():.0%}): the "
                          f"concept is not linearly present at that layer", stacklevel=2)
        g = directional_grads(model, class_x, name, target).double()
        vc, vr = vc.to(g.device), vr.to(g.device)  # CAVs from the cache may come from another device
        cs = (g @ vc.T > 0).double().mean(0)
        rs = (g @ vr.T > 0).double().mean(0)
        if torch.equal(cs, rs) or (cs.std() == 0 and rs.std() == 0):
            p = 1.0 if cs.mean() == rs.mean() else 0.0
        else:
            p = float(ttest_ind(cs.cpu().numpy(), rs.cpu().numpy()).pvalue)
        p = min(1.0, p * (n_tests or len(layers)))
        result.layers[name] = LayerTCAV(name, cs.mean().item(), cs, rs, acc.to(cs.device), p, p < alpha)
    return result


def _bar(layers, progress):
    from ..progress import bar

    return bar(layers, desc="tcav", progress=progress)


def _load(cache, key):
    if cache is None:
        return None
    path = Path(cache) / f"tcav-{key}.pt"
    return torch.load(path, weights_only=True) if path.exists() else None


def _save(cache, key, cavs) -> None:
    if cache is None:
        return
    Path(cache).mkdir(parents=True, exist_ok=True)
    torch.save(cavs, Path(cache) / f"tcav-{key}.pt")
