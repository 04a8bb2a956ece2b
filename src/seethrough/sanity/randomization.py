"""Model-parameter randomization test (Adebayo et al., 2018).

An explanation that stays the same when the model's weights are replaced by random ones
cannot be explaining the model. On a *copy* of the model, the parameterised layers are
re-initialised from the output down — in the order the forward pass runs them, taken from a
traced forward, not ``named_modules()`` order (which is only the order of definition) — and
the explanation is recomputed after each step:

* ``mode="cascading"``: each step keeps the layers above it randomised, so the last step is a
  fully random network;
* ``mode="independent"``: one layer at a time, every other layer exactly as trained.

Re-initialisation: a layer with ``reset_parameters()`` (convolutions, linear layers…) gets
its default initialisation, i.e. what an untrained network has. Normalisation layers
(BatchNorm, LayerNorm, GroupNorm) and layers without ``reset_parameters`` have every
parameter *and running statistic* shuffled across its entries instead: resetting BatchNorm
to mean 0 / variance 1 would make activations explode or vanish in a trained network, so a
shuffle keeps their scale while destroying what was learned. Layer ``i`` of the list gets
the same random draw in both modes for a given ``seed``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import torch
from torch import nn

from ..boundary import Boundary, as_boundary
from ..hooks import hooks
from ..layers import resolve_layer
from ..progress import bar as progress_bar
from ..results import ResultProtocol, call_options
from .common import Explainer, explain, fixed_target, score_maps
from .similarity import METRICS, _check_metric, sobel

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)


def parameterised_layers(model: nn.Module, x: torch.Tensor) -> list[str]:
    """Names of the modules that own parameters, in the order a forward pass first calls them.

    >>> net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    >>> parameterised_layers(net, torch.zeros(1, 2))
    ['0', '2']
    """
    if not any(True for _ in model.parameters()):
        raise ValueError("the model has no parameters: there is nothing to randomise")
    names = [n for n, m in model.named_modules() if n and any(True for _ in m.parameters(recurse=False))]
    if not names:  # a bare layer such as nn.Linear: the model itself is the only layer
        return [""]
    with hooks(model, capture=names, detach=True) as rec, torch.no_grad():
        model(x[:1])
    seen: dict[str, None] = {}
    for n in rec.order:
        seen.setdefault(n, None)
    return list(seen)


def randomize_layer(module: nn.Module, seed: int) -> None:
    """Re-initialise ``module``'s own parameters (see the module docstring), in place, seeded."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        if hasattr(module, "reset_parameters") and not isinstance(module, _NORMS):
            module.reset_parameters()
            return
        gen = torch.Generator().manual_seed(seed)
        tensors = [*module.parameters(recurse=False), *(b for b in module.buffers(recurse=False) if b.is_floating_point())]
        for t in tensors:
            perm = torch.randperm(t.numel(), generator=gen).to(t.device)
            t.copy_(t.reshape(-1)[perm].reshape(t.shape))


def layer_seed(seed: int, index: int) -> int:
    """The seed of the ``index``-th parameterised layer (execution order): one draw per layer and seed.

    >>> layer_seed(0, 4)
    4
    """
    return seed * 100_003 + index


@dataclass
class SanityResult(ResultProtocol):
    """Similarity of the explanation after each randomisation step to the original one.

    ``scores[l, m, i]``: step ``l`` (layer ``layers[l]``), metric ``metrics[m]``, sample ``i``;
    ``edge[m, i]``: the same score for the Sobel edge map of the input (a model-free reference);
    ``maps[l]``: the explanation after step ``l``; ``original``: before any randomisation.
    """

    method: str
    mode: str
    layers: list[str]
    metrics: tuple[str, ...]
    scores: torch.Tensor
    edge: torch.Tensor
    original: torch.Tensor
    maps: torch.Tensor
    x: torch.Tensor = field(repr=False)
    options: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None

    def summary(self) -> str:
        m = "spearman_abs" if "spearman_abs" in self.metrics else self.metrics[0]
        last = self.mean(m)[-1] if len(self.layers) else float("nan")
        return (f"{self.method} {self.mode} randomization of {len(self.layers)} layers on {self.scores.shape[2]} samples: "
                f"mean {m} {float(last):.3f} after the last step (edge detector {float(self.edge[self.metrics.index(m)].nanmean()):.3f})")

    def to_frame(self):
        """One row per step × metric × sample (plus the edge-detector rows, step ``"edge"``)."""
        import pandas as pd

        rows = [{"method": self.method, "mode": self.mode, "step": l + 1, "layer": layer, "metric": metric,
                 "sample": i, "similarity": float(self.scores[l, m, i])}
                for l, layer in enumerate(self.layers) for m, metric in enumerate(self.metrics)
                for i in range(self.scores.shape[2])]
        rows += [{"method": self.method, "mode": self.mode, "step": "edge", "layer": "sobel(x)", "metric": metric,
                  "sample": i, "similarity": float(self.edge[m, i])}
                 for m, metric in enumerate(self.metrics) for i in range(self.edge.shape[1])]
        return pd.DataFrame(rows)

    def mean(self, metric: str = "spearman_abs") -> torch.Tensor:
        """Mean similarity over samples per step (NaNs ignored)."""
        return self.scores[:, self.metrics.index(metric)].nanmean(1)


def _check_layers(model: nn.Module, order: list[str], layers: Sequence[str] | None) -> list[str]:
    top_down = order[::-1]
    if layers is None:
        return top_down
    if isinstance(layers, str):
        layers = [layers]
    chosen = set()
    for name in layers:
        if name != "" or order != [""]:
            resolve_layer(model, name)  # unknown names: a ValueError listing the closest ones
        if name not in order:
            raise ValueError(f"layer {name!r} has no parameters of its own or is not called in the forward; "
                             f"parameterised layers: {', '.join(order)}")
        chosen.add(name)
    return [n for n in top_down if n in chosen]


def randomization(model: nn.Module, x: torch.Tensor, method: Explainer = "saliency", target: Any = None,
                  mode: str = "cascading", layers: Sequence[str] | None = None,
                  metrics: Sequence[str] = METRICS, seed: int = 0, progress: bool = True,
                  **method_options: Any) -> SanityResult:
    """The model-parameter randomization test for ``method`` on the samples ``x``.

    ``layers``: which parameterised layers to randomise (default: all), always visited from the
    output down in execution order. The explained class is fixed on the trained model
    (``target=None``: its prediction), so every step explains the same decision.

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> x, _ = see.zoo.digits("test")
    >>> r = see.sanity.randomization(model, x[:2], "saliency", metrics=("spearman_abs",), progress=False)
    >>> r.layers, tuple(r.scores.shape)
    (['fc3', 'fc2', 'fc1', 'conv2', 'conv1'], (5, 1, 2))
    """
    if mode not in ("cascading", "independent"):
        raise ValueError(f"mode must be 'cascading' or 'independent', got {mode!r}")
    metrics = tuple([metrics] if isinstance(metrics, str) else metrics)
    if not metrics:
        raise ValueError("metrics must name at least one of " + ", ".join(METRICS))
    for m in metrics:
        _check_metric(m)
    opts = call_options(locals(), "model", "x", "m")
    if isinstance(model, Boundary) or (isinstance(model, nn.Module) and isinstance(x, torch.Tensor) and x.dim() == 2):
        b = as_boundary(model, x)
        if b.kind in ("tabular", "tokens"):  # rows and sequences: a copy of the boundary on the copied model
            r = _randomization_positions(b, x, method, target, mode, layers,
                                         ("spearman", "spearman_abs") if metrics == METRICS else metrics, seed,
                                         progress, method_options)
            return replace(r, options=opts, seed=seed)
        model = b.model
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not any(True for _ in model.parameters()):
        raise ValueError("the model has no parameters: there is nothing to randomise")
    target = fixed_target(model, x, target)
    original = explain(model, x, method, target, method_options)
    twin = copy.deepcopy(model)  # the user's model is never modified
    order = parameterised_layers(twin, x)
    steps = _check_layers(twin, order, layers)
    index = {n: i for i, n in enumerate(order)}  # the seed of a layer depends on the layer, not the step
    # cascading: one twin re-randomised cumulatively, nothing to restore; independent: the trained weights kept once
    trained = {k: v.clone() for k, v in twin.state_dict().items()} if mode == "independent" else None
    maps, scores = [], []
    for name in progress_bar(steps, desc=f"randomising ({mode})", progress=progress):
        if trained is not None:
            twin.load_state_dict(trained)
        randomize_layer(twin if name == "" else resolve_layer(twin, name), layer_seed(seed, index[name]))
        m = explain(twin, x, method, target, method_options)
        maps.append(m)
        scores.append(score_maps(original, m, metrics))
    edge = score_maps(original, sobel(x), metrics)
    name = method if isinstance(method, str) else getattr(method, "__name__", "custom")
    return SanityResult(name, mode, steps, metrics, torch.stack(scores), edge, original, torch.stack(maps), x.detach(),
                        options=opts, seed=seed)


def _randomization_positions(b: Boundary, x: torch.Tensor, method: Explainer, target: Any, mode: str,
                             layers: Sequence[str] | None, metrics: tuple[str, ...], seed: int, progress: bool,
                             options: dict[str, Any]) -> SanityResult:
    """:func:`randomization` on tabular rows or token ids: maps ``(N, F)`` / ``(N, L)`` are compared by rank
    (Spearman of the signed and absolute maps; SSIM and HOG are image measures and refused); ``edge`` is NaN
    (there is no edge detector for a row)."""
    from ..attribution.masking import clean_forward

    bad = [m for m in metrics if m not in ("spearman", "spearman_abs")]
    if bad:
        raise ValueError(f"metric(s) {', '.join(bad)} compare pictures; on {b.kind} input use 'spearman' or 'spearman_abs'")
    b.check(x)
    if not any(True for _ in b.model.parameters()):
        raise ValueError("the model has no parameters: there is nothing to randomise")
    idx, _ = clean_forward(b, x, target)
    target = target if idx is None else idx
    as_maps = lambda a: a.reshape(a.shape[0], 1, 1, -1)  # noqa: E731 - (N, P) as one-row pictures for similarity
    original = explain(b, x, method, target, options)
    twin = replace(b, model=copy.deepcopy(b.model))  # the user's model is never modified
    with hooks(twin.model, capture=[n for n, m in twin.model.named_modules()
                                    if n and any(True for _ in m.parameters(recurse=False))], detach=True) as rec, \
            torch.no_grad():
        twin.call(x[:1], torch.zeros(1, dtype=torch.long))
    order = list(dict.fromkeys(rec.order)) or [""]
    steps = _check_layers(twin.model, order, layers)
    index = {n: i for i, n in enumerate(order)}
    trained = {k: v.clone() for k, v in twin.model.state_dict().items()}
    maps, scores = [], []
    for name in progress_bar(steps, desc=f"randomising ({mode})", progress=progress):
        if mode == "independent":
            twin.model.load_state_dict(trained)
        randomize_layer(twin.model if name == "" else resolve_layer(twin.model, name), layer_seed(seed, index[name]))
        m = explain(twin, x, method, target, options)
        maps.append(m)
        scores.append(score_maps(as_maps(original), as_maps(m), metrics))
    edge = torch.full((len(metrics), x.shape[0]), float("nan"), dtype=torch.float64)
    name = method if isinstance(method, str) else getattr(method, "__name__", "custom")
    return SanityResult(name, mode, steps, metrics, torch.stack(scores), edge, original, torch.stack(maps), x.detach())
