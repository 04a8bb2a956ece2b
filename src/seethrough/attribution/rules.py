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
import weakref
from dataclasses import replace
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ..boundary import KINDS
from ..hooks import GradRule, hooks
from ..runner import fast
from ..targets import method_score
from .common import reject_unknown
from ..deprecation import renamed
from .registry import register
from .where import baseline_values, finish, forward_at, gradient_at, values_of, where

__all__ = ["ACTIVATIONS", "deconvnet_rule", "guided_rule", "deeplift_rules", "deconvnet", "guided_backprop", "deeplift",
           "local_vjp", "functional_counter"]

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

    >>> local_vjp(nn.ReLU6(), torch.tensor([-1.0, 3.0, 7.0]), torch.ones(3)).tolist()
    [0.0, 1.0, 0.0]
    """
    kind = type(module)
    # The kernels autograd itself runs for these units: one fused pass, no boolean masks.
    if kind is nn.ReLU:
        return torch.ops.aten.threshold_backward(v, x, 0)  # v·1{x>0}
    if kind in (nn.ReLU6, nn.Hardtanh):
        return torch.ops.aten.hardtanh_backward(v, x, module.min_val, module.max_val)  # v·1{min<x<max}
    if kind is nn.LeakyReLU:
        return torch.ops.aten.leaky_relu_backward(v, x, module.negative_slope, False)
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


# guided_rule as a gradient-at-output rule: the unit's own backward applies f'(s) to the clamped gradient
# (the same kernels local_vjp calls), with no copy of the output and no custom autograd Function.
GUIDED = GradRule(lambda module, grad_y: grad_y.clamp_min(0))


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


# model -> (code key, count): counting runs a Python check on every op of a forward (≈ +10 % on
# EfficientNet-Lite0), so it is done once per model and its code; the warning still fires on every call.
_COUNTS: "weakref.WeakKeyDictionary[nn.Module, tuple[tuple, int]]" = weakref.WeakKeyDictionary()


def _code_key(model: nn.Module) -> tuple:
    """What the count depends on: the class of every submodule and any ``forward`` set on an instance
    (as plain functions: a bound method would keep the model alive in the cache)."""
    return tuple((type(m), getattr(m.__dict__.get("forward"), "__func__", m.__dict__.get("forward")))
                 for m in model.modules())


class _Known:
    """A count already taken for this model's code: the forward runs without the counting mode."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __enter__(self) -> "_Known":
        return self

    def __exit__(self, *exc) -> bool:
        return False


class _Recording(CountFunctional):
    """Counts one forward and remembers the count for the model (only when the forward succeeded)."""

    def __init__(self, model: nn.Module, key: tuple) -> None:
        super().__init__()
        self._model, self._key = model, key

    def __exit__(self, kind, value, tb):
        out = super().__exit__(kind, value, tb)
        if kind is None:
            _COUNTS[self._model] = (self._key, self.count)
        return out


def functional_counter(model: nn.Module) -> CountFunctional | _Known:
    """The context manager to wrap a forward in, whose ``.count`` is the functional activation calls
    (:class:`CountFunctional`): counted on the first call for a model, then read from a cache keyed
    on the model and its code (its submodules' classes and instance-level ``forward`` methods).

    >>> net = nn.Sequential(nn.Linear(2, 2))
    >>> with functional_counter(net) as c:
    ...     _ = torch.relu(net(torch.ones(1, 2)))
    >>> c.count, functional_counter(net).count   # the second call reads the count taken by the first
    (1, 1)
    """
    key = _code_key(model)
    hit = _COUNTS.get(model)
    if hit is not None and hit[0] == key:
        return _Known(hit[1])
    return _Recording(model, key)


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
    counter = functional_counter(w.b.model)
    with hooks(w.b.model):
        # One forward (the class read from it); the backward runs outside the counter: rules may call
        # the unit's forward again.
        _, g, _ = gradient_at(w, x, target, score, rules={ACTIVATIONS: rule}, counter=counter)
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
    return _rule_gradient("guided-backprop", model, x, target, GUIDED, score, layer, unit, reduce)


# ------------------------------------------------------------------------------------ DeepLIFT
# The reference runs first without autograd, recording each rule unit's input and output per call; the
# forward of x then pairs every call with the same call of the reference (``bind``), so the backward runs
# over x's batch only (a [x; reference] batch would run it over both halves, the reference's for nothing).
_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)


def _safe_ratio(num: torch.Tensor, ds: torch.Tensor, eps: float, fallback) -> torch.Tensor:
    """``num / ds`` where ``|ds| > eps``, ``fallback()`` elsewhere (only computed when some ``|ds|`` is that small)."""
    big = ds.abs() > eps
    if bool(big.all()):
        return num / ds
    return torch.where(big, num / torch.where(big, ds, 1.0), fallback())


def _rescale(eps: float, s0: torch.Tensor, o0: torch.Tensor):
    def rule(module, s, o, g):
        return _safe_ratio(o - o0, s - s0, eps, lambda: local_vjp(module, s, torch.ones_like(s))) * g

    return rule


def _maxpool(eps: float, s0: torch.Tensor, o0: torch.Tensor):
    """Captum's max-pool rule: ``Δy`` is split between the input's and the reference's winners."""

    def rule(module, s, o, g):
        top = torch.maximum(o, o0)
        contrib = local_vjp(module, s, g * (top - o0)) + local_vjp(module, s0, g * (o - top))
        return _safe_ratio(contrib, s - s0, eps, lambda: local_vjp(module, s, g))

    return rule


def deeplift_rules(eps: float = 1e-10) -> tuple[dict, dict]:
    """``(record, rules)`` for :func:`seethrough.hooks.hooks`: ``record`` on the reference's forward (without
    autograd) keeps each unit's input and output per call; ``rules`` on x's forward then give every call
    the rescale (or max-pool) rule against the same call of the reference."""
    seen: dict[nn.Module, list] = {}
    calls: dict[nn.Module, int] = {}  # x's pass: calls so far per module (below a layer= too, where no rule binds)

    def observe(module, s, o):
        if torch.is_grad_enabled():
            calls[module] = calls.get(module, 0) + 1
        else:
            seen.setdefault(module, []).append((s.clone(), o.clone()))  # a later inplace op must not change them

    def bind(module, s, o):
        k, ref = calls.get(module, 0), seen.get(module, [])
        if k >= len(ref):
            raise RuntimeError(f"deeplift: {type(module).__name__} ran more often on x than on the reference; "
                               "the model's forward must take the same path for both")
        s0, o0 = ref[k]
        return (_maxpool if isinstance(module, _POOLS) else _rescale)(eps, s0, o0)

    def unused(module, x, y, grad_y):  # every call is bound; the rule itself never runs
        raise AssertionError("deeplift rule called unbound")

    record = lambda module, x, y, grad_y: unused(module, x, y, grad_y)  # noqa: E731
    record.observe = observe
    unused.observe, unused.bind = observe, bind
    units = (*ACTIVATIONS, *_POOLS)
    return {units: record}, {units: unused}


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
    counter = functional_counter(w.b.model)
    record, rules = deeplift_rules(stabilizer)
    with hooks(w.b.model):
        base = baseline_values(replace(w, layer=None), x, options.get("baseline"), options.get("blur_sigma"))
        v0 = values_of(w, base)
        # The reference pass, without autograd, in the layout x's pass runs in (channels-last for a conv model;
        # gradient_at's own fast() then finds the model converted already).
        with fast(w.b.model, v0, "grad", single=True) as run:
            run.guard(lambda: forward_at(w, run.input(v0), base, rules=record))()
            # x's pass: one forward and one backward, the class read from it
            v, g, _ = gradient_at(w, x, target, score, rules=rules, counter=counter)
    warn_functional("deeplift", counter.count)
    return (v - v0) * g
