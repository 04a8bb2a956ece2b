"""Backward rules through activation units: deconvnet, guided back-propagation, DeepLIFT.

A rule is a plain function ``rule(module, x, y, grad_y) -> grad_x`` handed to
:func:`seethrough.hooks.hooks`; the attribution is then an ordinary ``torch.autograd.grad``.
With ``s`` the unit's input and ``g`` the gradient arriving from above, the course's three
quantities are

* back-propagation: ``f'(s)·g`` (for a ReLU ``1{s>0}·g``; ReLU6 also cuts at ``s ≥ 6``),
* deconvnet: ``1{g>0}·g`` (the forward mask is ignored),
* guided back-propagation: ``f'(s)·1{g>0}·g``.

``f'`` is the unit's own local derivative, so ReLU6's upper cut and LeakyReLU's slope are kept.
A unit written as a functional call (``torch.relu(x)`` inside ``forward``) has no module to
intercept: those calls - and only those, not the functional call inside an ``nn.ReLU`` module's
own ``forward`` - are counted during the forward and reported in a warning.
"""
from __future__ import annotations

import sys
import warnings
from dataclasses import replace
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ..boundary import KINDS
from ..hooks import hooks
from ..targets import method_score
from .common import reject_unknown
from ..deprecation import renamed
from .registry import register
from .where import baseline_values, finish, resolve, scores_and_gradient, values_of, where

__all__ = ["ACTIVATIONS", "deconvnet_rule", "guided_rule", "deeplift_rules", "deconvnet", "guided_backprop", "deeplift",
           "local_vjp"]

# Element-wise units the rules apply to (a module instance may be called any number of times).
ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.CELU, nn.SELU, nn.GELU, nn.SiLU,
    nn.Hardtanh, nn.Hardswish, nn.Mish, nn.Softplus, nn.Tanh, nn.Sigmoid,
)

_FUNCTIONAL_UNITS = {
    torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_, nn.functional.relu, nn.functional.relu_,
    nn.functional.relu6, nn.functional.leaky_relu, nn.functional.leaky_relu_, nn.functional.elu, nn.functional.gelu,
    nn.functional.silu, nn.functional.hardtanh, nn.functional.hardswish, nn.functional.mish, nn.functional.softplus,
    nn.functional.selu, nn.functional.celu, nn.functional.prelu,
}


def local_vjp(module: nn.Module, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``v`` pulled back through ``module`` at ``x`` (``f'(x)·v`` for an element-wise unit).

    Calls ``module.forward`` directly, so no hook fires and an inplace unit works on a copy;
    the ReLU family uses its closed-form derivative (no extra autograd pass).
    """
    kind = type(module)
    if kind is nn.ReLU:
        return v * (x > 0)
    if kind in (nn.ReLU6, nn.Hardtanh):
        return v * ((x > module.min_val) & (x < module.max_val))
    if kind is nn.LeakyReLU:
        return torch.where(x > 0, v, v * module.negative_slope)
    with torch.enable_grad():
        xx = x.detach().requires_grad_(True)
        y = module.forward(xx.clone())
        (g,) = torch.autograd.grad(y, xx, v)
    return g


def deconvnet_rule(module: nn.Module, x: torch.Tensor, y: torch.Tensor, grad_y: torch.Tensor) -> torch.Tensor:
    """Deconvnet: ``1{g>0}·g``, whatever the unit's input was."""
    return grad_y.clamp_min(0)


def guided_rule(module: nn.Module, x: torch.Tensor, y: torch.Tensor, grad_y: torch.Tensor) -> torch.Tensor:
    """Guided back-propagation: ``f'(s)·1{g>0}·g``."""
    return local_vjp(module, x, grad_y.clamp_min(0))


def _caller_module(frame) -> nn.Module | None:
    """The module whose ``forward`` (or call machinery) is the nearest enclosing frame, if any."""
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, nn.Module):
            return owner
        frame = frame.f_back
    return None


class CountFunctional(TorchFunctionMode):
    """Counts the activation calls of a forward that no activation module owns.

    ``nn.ReLU.forward`` itself calls ``F.relu``: such a call belongs to a module whose backward
    the rules replace, so it is not counted; ``torch.relu(x)`` written in a model's ``forward``
    is. (Comparing all calls with the rules fired in the backward would also count the modules
    that are not on the path to the score, e.g. those above a hidden unit being projected.)

    >>> class Net(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.act = nn.ReLU()
    ...     def forward(self, x):
    ...         return torch.relu(self.act(x) - 1)
    >>> with CountFunctional() as counter:
    ...     _ = Net()(torch.ones(2))
    >>> counter.count
    1
    """

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _FUNCTIONAL_UNITS and not isinstance(_caller_module(sys._getframe(1)), ACTIVATIONS):
            self.count += 1
        return func(*args, **(kwargs or {}))


def warn_functional(method: str, count: int) -> None:
    """One ``RuntimeWarning`` when ``count`` activation calls escaped the rules (see :class:`CountFunctional`)."""
    if count:
        warnings.warn(
            f"{method}: {count} activation call(s) in the forward are functional (torch.relu, F.relu, …), "
            "not modules, so their backward could not be changed and they pass the plain gradient; "
            "write them as nn.ReLU() modules for a faithful result",
            RuntimeWarning, stacklevel=3,
        )


def _rule_gradient(method: str, model: nn.Module, x: torch.Tensor, target: Any, rule, score: str | None,
                   layer: str | None = None, unit: Any = None, reduce: str | None = None) -> torch.Tensor:
    w = where(model, x, layer, unit, method)
    score = method_score(score, target, "logit")
    counter = CountFunctional()
    with hooks(w.b.model):
        idx = resolve(w, x, target)
        v = values_of(w, x)
        # The backward runs outside the counter: rules call the unit's forward again.
        g, _ = scores_and_gradient(w, v, x, target, idx, score, rules={ACTIVATIONS: rule}, counter=counter)
    warn_functional(method, counter.count)
    return finish(w, x, g, reduce)


@register("deconvnet", family="rule", paper="Zeiler & Fergus, 2014", kinds=KINDS)
def deconvnet(model: nn.Module, x: torch.Tensor, target: Any = None, *, score: str | None = None,
              layer: str | None = None, unit: Any = None, reduce: str | None = None) -> torch.Tensor:
    """The input "gradient" with every activation's backward replaced by ``1{g>0}·g``; ``score``
    the logit (default), ``"probability"`` or ``"log-probability"``. ``unit=(layer, channel[, position])``
    projects that unit's activation back (Zeiler & Fergus's visualisation of a feature);
    ``layer=`` stops at that layer's output.

    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2, 2, bias=False), torch.nn.ReLU(),
    ...                           torch.nn.Linear(2, 1, bias=False))
    >>> with torch.no_grad():
    ...     _ = net[1].weight.copy_(torch.eye(2)); _ = net[3].weight.copy_(torch.tensor([[1.0, -1.0]]))
    >>> deconvnet(net, torch.tensor([[[[-1.0, 2.0]]]]), 0).flatten().tolist()  # the mask 1{s>0} is ignored
    [1.0, 0.0]
    """
    return _rule_gradient("deconvnet", model, x, target, deconvnet_rule, score, layer, unit, reduce)


@register("guided-backprop", family="rule", paper="Springenberg et al., 2015", kinds=KINDS)
def guided_backprop(model: nn.Module, x: torch.Tensor, target: Any = None, *, score: str | None = None,
                    layer: str | None = None, unit: Any = None, reduce: str | None = None) -> torch.Tensor:
    """The input "gradient" with every activation's backward replaced by ``f'(s)·1{g>0}·g``;
    ``score`` the logit (default), ``"probability"`` or ``"log-probability"``. ``unit=`` explains an
    internal unit (Captum's ``NeuronGuidedBackprop``), ``layer=`` stops at that layer's output.

    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2, 2, bias=False), torch.nn.ReLU(),
    ...                           torch.nn.Linear(2, 1, bias=False))
    >>> with torch.no_grad():
    ...     _ = net[1].weight.copy_(torch.eye(2)); _ = net[3].weight.copy_(torch.tensor([[1.0, -1.0]]))
    >>> guided_backprop(net, torch.tensor([[[[-1.0, 2.0]]]]), 0).flatten().tolist()
    [0.0, 0.0]
    """
    return _rule_gradient("guided-backprop", model, x, target, guided_rule, score, layer, unit, reduce)


# ------------------------------------------------------------------------------------ DeepLIFT
# The batch holds [inputs; references] so every rule sees both halves of its input and output.
_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)


def _rescale_rule(eps: float):
    def rule(module, x, y, grad_y):
        (s, s0), (o, o0), (g, _) = x.chunk(2), y.chunk(2), grad_y.chunk(2)
        ds = s - s0
        m = torch.where(ds.abs() > eps, (o - o0) / torch.where(ds.abs() > eps, ds, torch.ones_like(ds)),
                        local_vjp(module, s, torch.ones_like(s)))
        return torch.cat([m * g, torch.zeros_like(s)])

    return rule


def _maxpool_rule(eps: float):
    """Captum's max-pool rule: ``Δy`` is split between the input's and the reference's winners."""

    def rule(module, x, y, grad_y):
        (s, s0), (o, o0), (g, _) = x.chunk(2), y.chunk(2), grad_y.chunk(2)
        top = torch.maximum(o, o0)
        contrib = local_vjp(module, s, g * (top - o0)) + local_vjp(module, s0, g * (o - top))
        ds = s - s0
        plain = local_vjp(module, s, g)
        m = torch.where(ds.abs() > eps, contrib / torch.where(ds.abs() > eps, ds, torch.ones_like(ds)), plain)
        return torch.cat([m, torch.zeros_like(m)])

    return rule


def deeplift_rules(eps: float = 1e-10) -> dict:
    """The DeepLIFT rescale rules, for :func:`seethrough.hooks.hooks` on a ``[x; reference]`` batch."""
    return {ACTIVATIONS: _rescale_rule(eps), _POOLS: _maxpool_rule(eps)}


@register("deeplift", family="relevance", paper="Shrikumar, Greenside & Kundaje, 2017", kinds=("image", "tabular", "tensor"))
@renamed(eps="stabilizer")
def deeplift(model: nn.Module, x: torch.Tensor, target: Any = None, **options: Any) -> torch.Tensor:
    """DeepLIFT with the rescale rule: contributions that sum to ``f(x) − f(reference)``.

    ``baseline`` (the reference): ``"zeros"``/``"black"`` (default), ``"blur"``, a number or a
    tensor; tabular rows also ``"background"`` (the background's mean row, the default when the
    boundary has one). Linear layers, BatchNorm in eval mode and residual additions need no rule; every
    activation module and max-pool gets the rescale rule, so any stack of Linear (or conv) and activation
    layers — an MLP on tabular rows — is served. Summation-to-delta is exact when all
    non-linearities are modules (functional ones are reported in a warning). ``score``: the logit
    (default; summation-to-delta holds for it), ``"probability"`` or ``"log-probability"`` (the
    softmax is not a module, so it passes its plain gradient and the sum is only first-order).
    ``layer=``: the contributions of that layer's units, ``(a(x) − a(x̄)) ⊙ m`` (they sum to the same
    delta); ``unit=``: the unit's activation is the score explained. ``stabilizer`` (default 1e-10): a
    difference of inputs smaller than it takes the plain gradient instead of the rescaled ratio.

    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    >>> x = torch.rand(2, 1, 2, 2)
    >>> a = deeplift(net, x, target=1)
    >>> torch.allclose(a.flatten(1).sum(1), net(x)[:, 1] - net(torch.zeros_like(x))[:, 1], atol=1e-5)
    True
    """
    reject_unknown("deeplift", options, ("baseline", "blur_sigma", "stabilizer", "score", "layer", "unit"))
    score = method_score(options.get("score"), target, "logit")
    w = where(model, x, options.get("layer"), options.get("unit"), "deeplift")
    stabilizer = float(options.get("stabilizer", 1e-10))
    n = x.shape[0]
    counter = CountFunctional()
    with hooks(w.b.model):
        idx = resolve(w, x, target)
        base = baseline_values(replace(w, layer=None), x, options.get("baseline"), options.get("blur_sigma"))
        both = torch.cat([x.detach(), base])
        rows = torch.arange(n, device=x.device).repeat(2)
        v = values_of(w, both, rows)
        g, _ = scores_and_gradient(w, v, both, target, None if idx is None else idx[rows], score, rows,
                                   rules=deeplift_rules(stabilizer), counter=counter, seed_rows=n)
    warn_functional("deeplift", counter.count)
    return (v[:n] - v[n:]) * g[:n]
