"""Layer-wise relevance propagation as a modified gradient.

What flows backward is a "gradient" ``g``; the relevance of any tensor ``a`` is ``a ⊙ g``. With
that reading, ops without parameters (max/avg pooling, residual additions, flatten, pad)
conserve relevance with their plain gradient; every activation module passes its relevance
through unchanged (``R_s = R_y``, zennit's ``Pass`` rule: ``g_s = (y / s) ⊙ g_y``, which for a
ReLU is its gradient but keeps the relevance of a saturated ReLU6, whose gradient is 0); and
weighted layers (conv, linear, un-folded BatchNorm) get a rule: from the output relevance
``R = y ⊙ g_y`` the rule computes the input relevance ``R_x`` and returns ``R_x / x``. The
attribution is the relevance at the input of the first weighted layer (a per-pixel
normalisation in front of it keeps each pixel's relevance), or ``x ⊙ g`` when that layer sees a
reshaped input.

Conventions (docs/attribution.md states them with measured numbers):

* LRP starts from the **logit** ``R = f_c(x)`` at the target output (``score="probability"``
  starts from ``p_c`` instead; every rule is linear in the starting relevance, so that is the
  logit map times ``p_c / f_c``).
* ``zplus`` is the z⁺ rule **without the bias**: positive contributions ``x⁺W⁺ + x⁻W⁻`` only, so
  it conserves relevance exactly. Bach et al.'s α1β0 (and zennit's ``ZPlus``) put the positive
  bias ``b⁺`` in the denominator, which absorbs a share ``b⁺ / z⁺`` of the relevance.
* ``epsilon`` and ``gamma`` keep the bias in ``z``: biases (BatchNorm's folded shifts too) absorb
  relevance, so the input relevance sums to less than the logit.

Rules: ``epsilon`` (ε-stabilised z-rule), ``gamma`` (``W + γW⁺``), ``zplus`` (above),
``flat`` and ``wsquare`` (first layer: relevance spread uniformly / by ``W²`` over the
receptive field). A *composite* assigns them per layer.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Mapping

import torch
from torch import nn
from torch.nn.utils.stateless import _reparametrize_module

from ..boundary import Boundary
from ..hooks import hooks
from ..layers import resolve_layer
from ..outputs import OUTPUT_HINT, select_output
from ..runner import as_layout_of, fast
from ..targets import method_score, target_indices, target_scores
from .canonize import Fold, folds
from .common import check_nonneg_float, reject_unknown
from ..deprecation import renamed
from .registry import register
from .rules import ACTIVATIONS, functional_counter, warn_functional

__all__ = ["lrp", "lrp_relevances", "COMPOSITES", "RULES"]

_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
RULES = ("epsilon", "gamma", "zplus", "flat", "wsquare")


def _z(module: nn.Module, x: torch.Tensor, weight: torch.Tensor | None = None, bias: Any = "keep") -> torch.Tensor:
    """The module's forward with replaced parameters; ``module.forward`` so that no hook fires."""
    params, extra = {}, None
    if weight is not None:
        params["weight"] = weight
    if bias != "keep":
        if getattr(module, "bias", None) is not None:
            params["bias"] = torch.zeros_like(module.bias) if bias is None else bias
        elif bias is not None:
            extra = bias  # a folded BatchNorm's shift on a layer built without a bias
    with _reparametrize_module(module, params):
        z = module.forward(x)
    return z if extra is None else z + extra.view(-1, *([1] * (z.dim() - 2)))


def _z_and_vjp(module: nn.Module, x: torch.Tensor, weight, bias, seed: Callable[[torch.Tensor], torch.Tensor],
               ) -> torch.Tensor:
    """``vjp(seed(z))`` of ``z = module(x)`` with the given parameters: one forward serves both ``z`` and
    its pull-back (the rules need ``z`` for their denominator and then the same map's transpose)."""
    with torch.enable_grad():
        xx = x.detach().requires_grad_(True)
        z = _z(module, xx, weight, bias)
        (g,) = torch.autograd.grad(z, xx, seed(z.detach()))
    return g


def passthrough_rule(module: nn.Module, s: torch.Tensor, y: torch.Tensor, grad_y: torch.Tensor) -> torch.Tensor:
    """An element-wise unit passes its relevance through: ``s ⊙ g_s = y ⊙ g_y``.

    >>> s, g = torch.tensor([8.0, 1.0, 0.5]), torch.ones(3)
    >>> passthrough_rule(None, s, torch.nn.functional.relu6(s), g).tolist()   # ReLU6 saturated at 8: s·g_s = 6
    [0.75, 1.0, 1.0]
    """
    return torch.where(s != 0, y / s * grad_y, 0.0)  # y / s where s is 0 is never selected


def _stab(z: torch.Tensor, eps: float) -> torch.Tensor:
    # sign(z) in z's own dtype: a float32 ±1 would round ε to float32 in a float64 computation
    return z + eps * (2 * (z >= 0).to(z.dtype) - 1)


def _per_input(x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(R_x, R_x / x)`` of a rule whose relevance has the form ``R_x = x ⊙ g`` (0 where ``x`` is 0)."""
    return x * g, torch.where(x != 0, g, 0.0)


def _relevance_in(kind: str, module: nn.Module, x: torch.Tensor, y: torch.Tensor, r: torch.Tensor,
                  epsilon: float, gamma: float, fold: Fold | None = None, y_graph: torch.Tensor | None = None,
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The rule proper: ``(R_x, R_x / x)`` from the output relevance ``r`` (``y``: the layer's output, the
    BatchNorm after it included when ``fold`` merges it; ``y_graph``: the module's own output in the
    forward's graph from ``x``, for the ε rule's pull-back). ``R_x / x`` is what flows down (0 where x is)."""
    w = getattr(module, "weight", None) if fold is None else fold.weight
    b = getattr(module, "bias", None) if fold is None else fold.bias
    xd = x.detach()
    if kind == "epsilon" or isinstance(module, _NORMS) or w is None:
        v = r / _stab(y, epsilon)
        if y_graph is not None and x.requires_grad and y_graph.grad_fn is not None:
            # the plain pull-back of the forward's own graph, no second forward; a folded layer's map is
            # the layer's with its output scaled per channel
            (g,) = torch.autograd.grad(y_graph, x, v if fold is None else v * fold.scale_like(v), retain_graph=True)
            return _per_input(xd, g)  # retained: the engine still visits the node after this rule
        return _per_input(xd, _z_and_vjp(module, xd, w if fold is not None else None,
                                         b if fold is not None else "keep", lambda z: v))
    if kind == "gamma":
        wg = w + gamma * w.clamp_min(0)
        bg = None if b is None else b + gamma * b.clamp_min(0)
        return _per_input(xd, _z_and_vjp(module, xd, wg, bg if b is not None else "keep", lambda z: r / _stab(z, 1e-9)))
    if kind == "zplus":
        wp = w.clamp_min(0)
        if bool((xd >= 0).all()):  # after a ReLU: x⁻ = 0 and its term x⁻W⁻ vanishes exactly; one map, not two
            return _per_input(xd, _z_and_vjp(module, xd, wp, None, lambda z: r / (z + 1e-9)))
        with torch.enable_grad():  # z = x⁺W⁺ + x⁻W⁻, and both pull-backs from the same two maps
            xp, xn = xd.clamp_min(0).requires_grad_(True), xd.clamp_max(0).requires_grad_(True)
            zp, zn = _z(module, xp, wp, None), _z(module, xn, w.clamp_max(0), None)
            s = r / (zp.detach() + zn.detach() + 1e-9)
            gp, gn = torch.autograd.grad((zp, zn), (xp, xn), (s, s))
        return xp.detach() * gp + xn.detach() * gn, torch.where(xd > 0, gp, torch.where(xd < 0, gn, 0.0))
    if kind in ("flat", "wsquare"):
        ones = torch.ones_like(xd)
        r_x = _z_and_vjp(module, ones, torch.ones_like(w) if kind == "flat" else w * w, None, lambda z: r / (z + 1e-12))
        return r_x, torch.where(xd != 0, r_x / torch.where(xd != 0, xd, 1.0), 0.0)
    raise ValueError(f"unknown LRP rule {kind!r}; choose from {', '.join(RULES)}")


# A composite: (layer name, module, is_first) -> rule name, or None for "no rule" (plain gradient).
Composite = Callable[[str, nn.Module, bool], str | None]


def _composite(dense: str, conv: str, first: str | None) -> Composite:
    def assign(name: str, module: nn.Module, is_first: bool) -> str | None:
        if isinstance(module, _NORMS):
            return "epsilon"
        if not isinstance(module, _WEIGHTED):
            return None
        if is_first and first:
            return first
        return dense if isinstance(module, nn.Linear) else conv

    return assign


COMPOSITES: dict[str, Composite] = {
    "epsilon-plus-flat": _composite("epsilon", "zplus", "flat"),  # the default: Kohlbrenner et al., 2020
    "epsilon-gamma-flat": _composite("epsilon", "gamma", "flat"),
    "epsilon-plus": _composite("epsilon", "zplus", None),
    "epsilon": _composite("epsilon", "epsilon", None),
}


def _assignment(model: nn.Module, composite: str | Composite, overrides: Mapping | None) -> dict[nn.Module, tuple[str, str]]:
    if isinstance(composite, str):
        if composite not in COMPOSITES:
            raise ValueError(f"composite must be one of {', '.join(map(repr, COMPOSITES))} or a callable, got {composite!r}")
        composite = COMPOSITES[composite]
    elif not callable(composite):
        raise TypeError(f"composite must be a name or a callable (name, module, is_first) -> rule, got {type(composite).__name__}")
    named = [(n, m) for n, m in model.named_modules() if n]
    first = next((m for _, m in named if isinstance(m, _WEIGHTED)), None)
    table: dict[nn.Module, tuple[str, str]] = {}
    for name, module in named:
        kind = composite(name, module, module is first)
        if kind is not None:
            table[module] = (name, kind)
    for key, kind in (overrides or {}).items():
        if kind not in RULES and kind is not None:
            raise ValueError(f"rules[{key!r}] must be one of {', '.join(RULES)} (or None for the plain gradient), got {kind!r}")
        if isinstance(key, type):
            hits = [(n, m) for n, m in named if isinstance(m, key)]
            if not hits:
                raise ValueError(f"rules: the model has no {key.__name__} layer")
        else:
            hits = [(key, resolve_layer(model, key))]
        for n, m in hits:
            if kind is None:
                table.pop(m, None)
            else:
                table[m] = (n, kind)
    return table


@renamed(epsilon="stabilizer")
def lrp_relevances(model: nn.Module, x: torch.Tensor, target: Any = None, *, composite: str | Composite = "epsilon-plus-flat",
                   rules: Mapping | None = None, stabilizer: float = 1e-6, gamma: float = 0.25,
                   canonize: bool = True, score: str | None = None, output: Any = None,
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """LRP attribution plus, per rule layer, the summed input relevance ``(N,)`` (for conservation checks).

    Returns ``(attribution, {layer name: relevance sum per sample})``; the layers are listed from
    the output down, the last one is the first layer. The backward starts from relevance
    ``score`` at the target output: the logit (default), or ``"probability"`` /
    ``"log-probability"`` of the target class.

    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3, bias=False), torch.nn.ReLU(),
    ...                           torch.nn.Linear(3, 2, bias=False))
    >>> x = torch.rand(1, 1, 2, 2)
    >>> a, sums = lrp_relevances(net, x, target=0, composite="epsilon", stabilizer=1e-9)
    >>> list(sums), torch.allclose(sums["1"], net(x)[:, 0], rtol=1e-4)
    (['3', '1'], True)
    """
    check_nonneg_float("stabilizer", stabilizer)
    check_nonneg_float("gamma", gamma)
    score = method_score(score, target, "logit")
    table = _assignment(model, composite, rules)
    # BatchNorm folded inside the rules, no model copy: the layer's rule uses the folded parameters and the
    # relevance at the BatchNorm's output; the BatchNorm passes it down unchanged. A layer without a rule
    # keeps the plain gradient through both (what a folded copy would give).
    fold_of: dict[nn.Module, Fold] = {}
    own: dict[nn.Module, tuple[str, str]] = {}  # a folded BatchNorm's own rule, for when the fold is broken
    names = {m: n for n, m in model.named_modules()}
    for layer, f in (folds(model) if canonize else {}).items():
        if layer in table:
            fold_of[layer] = f
        own[f.bn] = table.pop(f.bn, None) or (names[f.bn], "epsilon")
    bn_of = {f.bn: f for f in fold_of.values()}
    last_out: dict[nn.Module, torch.Tensor] = {}
    broken: set[nn.Module] = set()  # BatchNorms that read something else than their layer's output
    sums: dict[str, torch.Tensor] = {}
    inputs: list[torch.Tensor] = []

    def observe(module, xin, out):
        if module in fold_of:
            last_out[module] = out
        f = bn_of.get(module)
        if f is not None and xin is not last_out.get(f.layer):
            broken.add(module)

    def rule(module, xin, y, grad_y):
        f = bn_of.get(module)
        if f is not None:
            if module not in broken:
                return grad_y  # folded: its layer's rule takes the relevance at this output
            (name, kind), fold = own[module], None
        else:
            name, kind = table[module]
            fold = fold_of.get(module)
            fold = None if fold is None or fold.bn in broken else fold
        y_eff = (y if fold is None else fold.after_bn(y)).detach()
        r_x, down = _relevance_in(kind, module, xin, y_eff, y_eff * grad_y, stabilizer, gamma, fold, y_graph=y)
        sums[name] = r_x.flatten(1).sum(1)
        inputs[:] = [r_x]  # the last rule to run is the first layer's: its input relevance is the attribution
        return down

    rule.observe = observe
    for f in fold_of.values():
        table.setdefault(f.bn, None)  # the BatchNorm gets the rule (pass-through when folded)

    # Weighted layers get their rule; every activation module passes its relevance through.
    counter = functional_counter(model)
    with hooks(model, rules={(lambda n, m: m in table): rule, ACTIVATIONS: passthrough_rule}), torch.enable_grad(), \
            fast(model, x, "grad", single=True) as run:
        xg = run.input(x.detach()).requires_grad_(True)
        with counter:
            out = run.guard(model)(xg)
        if score is None:  # a callable target: its score's gradient seeds the backward
            (g,) = torch.autograd.grad(target_scores(out, target).sum(), xg, allow_unused=True)
        else:
            # Relevance out ⊙ seed = the chosen score at the target, 0 elsewhere. For the logit the
            # seed is exactly 1 (no division); otherwise score / logit (every rule is linear in it).
            out = select_output(out, output, hint=OUTPUT_HINT)  # a dict's "logits" by name; a tuple: one line
            idx = target_indices(out.detach(), target).view(-1, 1)
            logit = out.detach().gather(1, idx)
            value = target_scores(out.detach(), target, idx.view(-1), score).view(-1, 1)
            scale = torch.ones_like(logit) if score == "logit" else torch.where(
                logit != 0, value / torch.where(logit != 0, logit, torch.ones_like(logit)), torch.zeros_like(logit))
            (g,) = torch.autograd.grad(out, xg, torch.zeros_like(out).scatter(1, idx, scale), allow_unused=True)
    warn_functional("lrp", counter.count)
    if broken:
        warnings.warn(f"BatchNorm folding skipped for {len(broken)} BatchNorm(s) that do not read the output of the "
                      "layer listed before them; those run unfolded (their own ε rule)", RuntimeWarning, stacklevel=2)
    g = torch.zeros_like(x) if g is None else g
    attribution = inputs[-1] if inputs and inputs[-1].shape == x.shape else x * g
    return as_layout_of(attribution.detach(), x), sums  # computed channels-last, handed back as x came


@register("lrp", family="relevance", paper="Bach et al., 2015; Montavon et al., 2019", kinds=("image", "tabular", "tensor"),
          impl=lrp_relevances, fixed=("output",))
@renamed(epsilon="stabilizer")
def lrp(model: nn.Module, x: torch.Tensor, target: Any = None, **options: Any) -> torch.Tensor:
    """Layer-wise relevance propagation; options ``composite`` (default ``"epsilon-plus-flat"``:
    ε for linear layers, z⁺ for convolutions, flat for the first layer), ``rules`` (overrides
    ``{layer name or module type: rule name or None}``), ``stabilizer`` (the ε of the ε-rule, default
    1e-6; the rule keeps its name ``"epsilon"``), ``gamma``, ``canonize``
    (fold BatchNorm on a copy, default True), ``score`` (the starting relevance: the logit by
    default, or ``"probability"`` / ``"log-probability"``). Activation modules pass relevance
    through; see the module docstring for the conventions (z⁺ without bias, biases absorbing
    relevance in the ε rule).

    >>> _ = torch.manual_seed(0)  # a fixed net and input: a logit near 0 would let ε absorb more than 1e-3 of it
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, bias=False), torch.nn.ReLU(), torch.nn.Flatten(),
    ...                           torch.nn.Linear(8, 2, bias=False))
    >>> x = torch.rand(1, 1, 4, 4)
    >>> r = lrp(net, x, target=1, composite="epsilon-plus")
    >>> bool(net(x)[0, 1] <= 0) or torch.allclose(r.sum(), net(x)[0, 1], rtol=1e-3)
    True
    """
    reject_unknown("lrp", options, ("composite", "rules", "stabilizer", "gamma", "canonize", "score"))
    module, output = _plain_model(model)
    return lrp_relevances(module, x, target, output=output, **options)[0]


def _plain_model(model: nn.Module | Boundary) -> tuple[nn.Module, Any]:
    """The module LRP runs as ``model(x)`` and the boundary's output selector: tabular rows and tensors go through
    any stack of Linear, conv and activation layers; extra forward arguments are refused in one line."""
    if not isinstance(model, Boundary):
        return model, None
    if model.extra or model.static:
        raise ValueError("lrp runs the model as model(x): extra forward arguments are not supported by it; "
                         "use deeplift or integrated-gradients")
    return model.model, model.output
