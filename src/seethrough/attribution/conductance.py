"""Layer conductance (Dhamdhere, Sundararajan & Yan, 2018): how much of the integrated-gradients path
from the baseline to ``x`` flows through each unit of a layer.

The path runs in the *input* space (for token ids: the embedding space), as integrated gradients'
does; at each of ``steps + 1`` points ``x_k`` the layer's output ``a_k`` and the gradient of the score
with respect to it ``g_k`` are read in one pass, and

    conductance = Σ_k g_k ⊙ (a_{k+1} − a_k),

Captum's ``LayerConductance`` discretisation (the points are the quadrature nodes of ``rule``, here
with ``steps + 1`` of them). Summed over the layer's units it approximates f(x) − f(baseline) when
every path from the input to the score crosses the layer. Layer integrated gradients
(``integrated-gradients`` with ``layer=``) instead runs the path in the layer's own output space.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import nn

from ..hooks import hooks
from ..targets import method_score
from .gradient import ig_weights
from .where import baseline_values, finish, read_score, resolve, values_of, where

__all__ = ["conductance"]


def _layer_eval_and_grad(w, layer: str, v: torch.Tensor, x: torch.Tensor, target, indices, score, rows):
    """(the layer's output, ∂score/∂output) for a batch of points ``v`` of the input space."""
    name = w.space
    kwargs: dict[str, Any] = {"capture": [layer]}
    if name is not None:
        kwargs["replace"] = {name: v}
    with torch.enable_grad(), hooks(w.b.model, **kwargs) as rec:
        out = w.b.call(v if name is None else x, rows)
        s = read_score(w, out, None, x, rows, target, indices, score)
        a = rec[layer]
        (g,) = torch.autograd.grad(s.sum(), a, allow_unused=True)
    return a.detach(), (torch.zeros_like(a) if g is None else g)


def conductance(model: nn.Module, x: torch.Tensor, target: Any = None, *, layer: str | None = None,
                baseline: Any = None, steps: int = 50, rule: str = "gauss-legendre", blur_sigma: float | None = None,
                score: str | None = None, reduce: str | None = None) -> torch.Tensor:
    """The conductance of each unit of ``layer``'s output, shaped like that output (module docstring).

    ``baseline`` as for integrated gradients (zeros for images, the background's mean row for tabular
    rows with a background, the pad embedding for token ids with a pad id). ``layer`` is required.
    Through the registry: ``see.attribute(model, x, "integrated-gradients", layer=..., conductance=True)``.

    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    >>> x = torch.rand(2, 3)
    >>> c = conductance(net, x, 1, layer="1", steps=64)
    >>> bool(torch.allclose(c.sum(1), net(x)[:, 1] - net(torch.zeros_like(x))[:, 1], atol=1e-3))
    True
    """
    if layer is None:
        raise ValueError("conductance is a layer attribution: pass layer='name' (the layer whose units are scored)")
    score = method_score(score, target, "logit")
    w = where(model, x, None, None, "conductance")
    where(model, x, layer, None, "conductance")  # checks the layer name and that the model takes hooks
    alphas, _ = ig_weights(steps + 1, rule, dtype=torch.float64)
    n, k = x.shape[0], steps + 1
    # One batch of every path point (steps + 1 per sample): conductance is for layers of small models.
    with hooks(w.b.model):
        idx = resolve(w, x, target)
        v = values_of(w, x)
        base = baseline_values(w, x, baseline, blur_sigma)
        al = alphas.to(device=v.device, dtype=v.dtype).view(-1, *([1] * v.dim()))
        path = (base.unsqueeze(0) + al * (v - base).unsqueeze(0)).flatten(0, 1)  # (k·n, ...) step-major
        rows = torch.arange(n, device=x.device).repeat(k)
        a, g = _layer_eval_and_grad(w, layer, path, x[rows], target, None if idx is None else idx[rows], score, rows)
    a, g = a.view(k, n, *a.shape[1:]), g.view(k, n, *g.shape[1:])
    out = (g[:-1] * (a[1:] - a[:-1])).sum(0)
    return finish(replace(w, layer=layer), x, out, reduce)
