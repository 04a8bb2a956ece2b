"""Concept activation vectors (Kim et al. 2018): a linear classifier on a layer's activations."""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..batching import run_batched
from ..deprecation import layer_moved
from ..hooks import hooks

#: held-out accuracy at or below which a CAV is "at chance": the concept is not linearly present
CHANCE = 0.6


@dataclass
class CAV:
    """The unit normal of the concept-vs-negative boundary at ``layer`` (pointing to the concept),
    with the classifier's held-out accuracy."""

    layer: str
    vector: torch.Tensor
    accuracy: float


def layer_activations(model: nn.Module, x: torch.Tensor, layer: str, batch_size: int | str = "auto") -> torch.Tensor:
    """Flattened activations ``(N, D)`` of ``layer`` for inputs ``x``, batched, without gradients."""
    def fn(a: int, b: int) -> torch.Tensor:
        with hooks(model, capture=layer, detach=True) as rec, torch.no_grad():
            model(x[a:b])
        return rec[layer].flatten(1)

    return run_batched(fn, len(x), batch_size=batch_size, progress=False, desc="activations", device=x.device)


def canonical(x: torch.Tensor) -> torch.Tensor:
    """``x`` in an order that depends only on its rows' content, so a shuffled set gives the same CAV
    (the inputs are sorted, not their activations: those can differ in the last bit with the batching)."""
    keys = [hashlib.sha1(r.detach().cpu().contiguous().numpy().tobytes()).hexdigest() for r in x]
    return x[torch.tensor(sorted(range(len(keys)), key=keys.__getitem__))]


def fit_cav(layer: str, pos: torch.Tensor, neg: torch.Tensor, seed: int = 0, *, held_out: float = 0.25,
            warn: bool = True) -> CAV:
    """Fit the linear classifier (scikit-learn logistic regression) on activations ``pos`` vs ``neg``."""
    from sklearn.linear_model import LogisticRegression

    feats = torch.cat([pos, neg]).double().cpu().numpy()  # scikit-learn fits on the host, from any device
    labels = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    cut = max(1, int(round(held_out * len(labels))))
    test, train = order[:cut], order[cut:]
    scale = feats[train].std() + 1e-12  # one global scale: keeps the direction, helps the solver
    clf = LogisticRegression(C=1.0, solver="liblinear", max_iter=2000)  # lbfgs-b: ~3 ms a step here, 100× slower
    clf.fit(feats[train] / scale, labels[train])
    acc = float(clf.score(feats[test] / scale, labels[test]))
    if warn and acc <= CHANCE:
        warnings.warn(f"CAV at {layer!r} has held-out accuracy {acc:.0%} (chance): the concept is not linearly "
                      f"present at that layer", stacklevel=3)
    w = torch.from_numpy(clf.coef_[0].copy()).to(pos.device)  # the CAV lives where the activations do
    return CAV(layer, w / w.norm().clamp_min(1e-300), acc)


@layer_moved(3)
def cav(model: nn.Module, concept_x: torch.Tensor, negative_x: torch.Tensor, layer: str, seed: int = 0) -> CAV:
    """The concept activation vector of ``concept_x`` against ``negative_x`` at ``layer``. The former
    order ``(model, layer, concept_x, negative_x)`` still works for one release, with a ``FutureWarning``.

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> x, _ = see.zoo.digits("test")
    >>> c = see.concepts.cav(model, see.concepts.stamp(x[:60]), x[60:120], "relu2")
    >>> c.accuracy > 0.8, c.vector.shape
    (True, torch.Size([1600]))
    """
    for name, s in (("concept_x", concept_x), ("negative_x", negative_x)):
        if not isinstance(s, torch.Tensor) or len(s) < 2:
            raise ValueError(f"{name} must be a tensor of at least 2 inputs, got {len(s) if isinstance(s, torch.Tensor) else type(s).__name__}")
    return fit_cav(layer, layer_activations(model, canonical(concept_x), layer),
                   layer_activations(model, canonical(negative_x), layer), seed)
