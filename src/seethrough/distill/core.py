"""``see.distill``: can a model I can read imitate this one? Trees fitted to the model's own labels."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..batching import run_batched
from ..deprecation import renamed
from ..hooks import hooks
from ..results import ResultProtocol
from .soft_tree import SoftTree, fit_soft_tree

KINDS = ("tree", "soft-tree")
#: the default depth of each kind: a soft tree of depth 4 has 16 leaves for 10 classes and loses the
#: comparison below to noise; at depth 6 the soft targets win it (see :func:`soft_vs_hard`)
DEPTHS = {"tree": 4, "soft-tree": 6}
#: soft-tree defaults that reproduce Frosst & Hinton's direction on lenet-digits (tests/test_distill_soft_targets.py):
#: long enough a training that hard labels overfit, and soft targets at temperature 2
SOFT_EPOCHS, SOFT_TEMPERATURE = 100, 2.0


@dataclass
class Step:
    """One decision on an input's path: at ``node``, feature/filter score ``value`` against ``threshold``."""

    node: int
    feature: int | None
    value: float
    threshold: float
    right: bool
    probability: float | None = None  # soft tree: probability of the branch taken


@dataclass
class Surrogate(ResultProtocol):
    """A readable model imitating ``model``: ``fidelity`` = held-out agreement with the model's labels,
    ``accuracy`` = held-out agreement with the true labels (``None`` without labels)."""

    kind: str
    depth: int
    estimator: Any
    fidelity: float
    accuracy: float | None
    input_shape: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    _transient = ("estimator",)  # a fitted estimator is code, not data: never pickled; a loaded surrogate keeps its scores

    def summary(self) -> str:
        acc = "" if self.accuracy is None else f", accuracy {self.accuracy:.1%}"
        return f"depth-{self.depth} {self.kind} surrogate: fidelity {self.fidelity:.1%} on held-out inputs{acc}"

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Class predicted by the surrogate for each input."""
        self._check_fitted()
        if self.kind == "tree":
            # scikit-learn runs on the host: the inputs go there, the classes come back to x's device
            return torch.from_numpy(self.estimator.predict(x.flatten(1).double().cpu().numpy())).long().to(x.device)
        with torch.no_grad():
            return self.estimator(x.flatten(1).float()).argmax(1)

    def _check_fitted(self) -> None:
        if self.estimator is None:
            raise ValueError("this surrogate was loaded from a file, which keeps its scores but not the fitted "
                             "estimator; refit it with seethrough.distill(...) to predict or trace paths")

    def path(self, x: torch.Tensor) -> list[Step]:
        """The decisions taken for one input ``x`` (shape of one sample, or a batch of one)."""
        self._check_fitted()
        flat = x.reshape(1, -1)
        if self.kind == "tree":
            t = self.estimator.tree_
            nodes = self.estimator.decision_path(flat.double().cpu().numpy()).indices
            steps = []
            for node in nodes[:-1]:
                f, thr = int(t.feature[node]), float(t.threshold[node])
                v = float(flat[0, f])
                steps.append(Step(int(node), f, v, thr, v > thr))
            return steps
        tree: SoftTree = self.estimator
        with torch.no_grad():
            right = tree.right_probs(flat.float())[0]
            z = tree.inner(flat.float())[0]
        steps, node = [], 0
        for d in range(tree.depth):
            i = 2 ** d - 1 + node
            go = bool(right[i] > 0.5)
            steps.append(Step(i, None, float(z[i]), 0.0, go, float(right[i] if go else 1 - right[i])))
            node = 2 * node + int(go)
        return steps

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([{"kind": self.kind, "depth": self.depth, "fidelity": self.fidelity,
                              "accuracy": self.accuracy, **{k: v for k, v in self.options.items() if np.isscalar(v)}}])


def model_outputs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's outputs on ``x``, batched, in eval mode, leaving the model as found; ``model`` may be a
    :class:`~seethrough.boundary.Boundary` (its score tensor is read through its output selector)."""
    from ..boundary import as_boundary

    bound = as_boundary(model, x)

    def fn(a: int, b: int) -> torch.Tensor:
        with hooks(bound.model), torch.no_grad():
            return bound.forward(x[a:b], torch.arange(a, b, device=x.device))

    return run_batched(fn, len(x), progress=False, desc="labelling", device=x.device)


def _tabular(model: Any) -> bool:
    from ..boundary import Boundary

    return isinstance(model, Boundary) and model.kind == "tabular"


@renamed(kind="method", queries="n_samples", noise="noise_std")
def distill(
    model: nn.Module,
    data: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
    method: str = "tree",
    depth: int | None = None,
    seed: int = 0,
    *,
    fit_to: str = "model",
    n_samples: int | None = None,
    noise_std: float = 0.1,
    held_out: float = 0.25,
    beta: float = 1.0,
    penalty: float = 0.1,
    epochs: int = SOFT_EPOCHS,
    temperature: float = SOFT_TEMPERATURE,
    progress: bool = True,
) -> Surrogate:
    """Fit a decision tree (``"tree"``, scikit-learn) or a soft decision tree (``"soft-tree"``) to ``model``.

    ``data``: inputs, or ``(inputs, true labels)``. A seeded ``held_out`` share is kept aside for
    ``fidelity`` and ``accuracy``. ``method="tree"`` also fits ``n_samples`` extra query inputs (default:
    as many as the training part) sampled around the data (Gaussian, std ``noise_std`` in input units, clamped to the
    data's range) and labelled by the model. ``fit_to="labels"`` fits the true labels instead
    (the baseline the model's labels should beat on fidelity). With a tabular boundary
    (``see.boundary(model, kind="tabular", ...)``) the query noise is ``noise_std`` × each feature's std
    and queries are clamped to each feature's range (the boundary's ``ranges``, else the data's),
    since table columns have no common unit.

    ``depth`` defaults to 4 for a tree, 6 for a soft tree. The soft tree is trained on the model's
    probabilities at ``temperature`` (softmax of logits / T) for ``epochs`` epochs; with
    ``fit_to="labels"`` on one-hot true labels instead. The defaults (depth 6, T = 2, 100 epochs)
    reproduce the direction of Frosst & Hinton 2017: on lenet-digits the soft tree trained on the
    model's soft targets is more accurate on held-out digits than the same tree trained on the
    true labels (:func:`soft_vs_hard` measures both). ``progress``: a bar over the soft tree's epochs.

    >>> import seethrough as see
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> s = see.distill(model, see.zoo.toy_2d(400), depth=6)
    >>> s.fidelity > 0.8, len(s.path(torch.zeros(2))) <= 6
    (True, True)
    """
    if method not in KINDS:
        raise ValueError(f"unknown surrogate method {method!r}; choose one of {', '.join(KINDS)}")
    depth = DEPTHS[method] if depth is None else depth
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be a number > 0 (the model's logits are divided by it), got {temperature!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be an int >= 1, got {depth!r}")
    if fit_to not in ("model", "labels"):
        raise ValueError(f"fit_to must be 'model' or 'labels', got {fit_to!r}")
    x, y = (data if isinstance(data, (tuple, list)) else (data, None))
    if not isinstance(x, torch.Tensor) or len(x) == 0:
        raise ValueError("distill needs a non-empty tensor of inputs")
    if _tabular(model):
        model.check(x)  # a row with the wrong number of features: one line
    if fit_to == "labels" and y is None:
        raise ValueError("fit_to='labels' needs data=(inputs, labels)")
    if not 0 < held_out < 1 or len(x) < 4:
        raise ValueError(f"held_out must be in (0, 1) and the data at least 4 inputs, got {held_out} and {len(x)}")
    probs = (model_outputs(model, x) / temperature).softmax(1)
    pred = probs.argmax(1)
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(x), generator=gen)
    cut = max(1, int(round(held_out * len(x))))
    test, train = order[:cut], order[cut:]
    options: dict[str, Any] = {"seed": seed, "fit_to": fit_to, "held_out": held_out}
    if method == "tree":
        from sklearn.tree import DecisionTreeClassifier

        fx, fy = x[train], (pred if fit_to == "model" else y)[train]
        nq = len(train) if n_samples is None else n_samples
        if nq and fit_to == "model":
            base = x[train][torch.randint(0, len(train), (nq,), generator=gen)]
            if _tabular(model):  # rows: noise in units of each feature's std, clamped to each feature's range
                lo, hi = (model.ranges[0], model.ranges[1]) if model.ranges is not None else (x.amin(0), x.amax(0))
                lo, hi = (torch.as_tensor(v).to(x) for v in (lo, hi))  # the boundary's ranges may be on the host
                noise = torch.randn(base.shape, generator=gen).to(base)  # drawn on the CPU: the same on every device
                q = torch.minimum(torch.maximum(base + noise_std * x.std(0) * noise, lo), hi)
            else:
                q = (base + noise_std * torch.randn(base.shape, generator=gen).to(base)).clamp(x.min(), x.max())
            fx, fy = torch.cat([fx, q]), torch.cat([fy, model_outputs(model, q).argmax(1)])
        options.update(n_samples=nq if fit_to == "model" else 0, noise_std=noise_std)
        est = DecisionTreeClassifier(max_depth=depth, random_state=seed)
        est.fit(fx.flatten(1).double().cpu().numpy(), fy.cpu().numpy())
    else:
        targets = probs if fit_to == "model" else torch.nn.functional.one_hot(y, probs.shape[1]).float()
        est = fit_soft_tree(x[train].float(), targets[train].float(), depth, beta=beta, penalty=penalty,
                            epochs=epochs, seed=seed, progress=progress)
        options.update(beta=beta, penalty=penalty, epochs=epochs, temperature=temperature)
    s = Surrogate(method, depth, est, 0.0, None, tuple(x.shape[1:]), options, seed=seed)
    got = s.predict(x[test])
    s.fidelity = (got == pred[test]).float().mean().item()
    if y is not None:
        s.accuracy = (got == y[test]).float().mean().item()
    return s


def soft_vs_hard(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], **options: Any) -> tuple[Surrogate, Surrogate]:
    """Frosst & Hinton's comparison: ``(soft, hard)``, the soft tree trained on the model's soft targets
    and the same tree (same split, initialisation and schedule) trained on the true labels; compare
    their held-out ``accuracy``. ``options`` go to :func:`distill` for both.

    >>> import seethrough as see
    >>> mlp, _ = see.zoo.load("mlp-2d")
    >>> soft, hard = soft_vs_hard(mlp, see.zoo.toy_2d(200), depth=2, epochs=2)
    >>> soft.options["fit_to"], hard.options["fit_to"]
    ('model', 'labels')
    """
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError("soft_vs_hard needs data=(inputs, true labels): the hard-label tree is fitted to the labels")
    soft = distill(model, data, method="soft-tree", **options)
    hard = distill(model, data, method="soft-tree", fit_to="labels", **options)
    return soft, hard
