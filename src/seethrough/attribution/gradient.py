"""Gradient methods: saliency, gradient × input, sensitivity, SmoothGrad (+ squared, VarGrad),
integrated gradients — on every input kind of the boundary, at the input or at any layer.

Every pass is a forward plus ``torch.autograd.grad`` with respect to one point of the attribution
space only (:mod:`.where`: the input; the token embeddings for token ids; ``layer=``'s output); the
score is a class, a callable, or ``unit=``'s activation. What each gives with ``layer=``:
``saliency`` the layer gradient, ``grad-x-input`` layer gradient × activation (Captum's
``LayerGradientXActivation``), ``integrated-gradients`` layer integrated gradients (Captum's
``LayerIntegratedGradients``: the path runs in the layer's output space), ``conductance`` (its own
entry, :mod:`.conductance`) the path in input space read at the layer. The many noisy or
interpolated copies of SmoothGrad and integrated gradients run through
:func:`seethrough.batching.run_batched` and are accumulated as they arrive, so memory stays
bounded by one batch. Those many passes run through :func:`seethrough.runner.fast`: a conv model is
converted to channels-last in place for them and restored exactly afterwards, and ``compile=True``
compiles its forward and backward (docs/speed.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..batching import grad_sizes, run_batched
from ..boundary import KINDS  # every gradient method serves every kind
from ..hooks import hooks
from ..runner import fast
from ..results import ResultProtocol, call_options
from ..targets import method_score
from .common import check_positive_int, reject_unknown
from ..deprecation import renamed
from .registry import register
from .where import (Where, baseline_values, finish, gradient_at, noise_scale, resolve, scores_and_gradient, scores_at,
                    values_of, where)

__all__ = ["saliency", "grad_x_input", "sensitivity", "smoothgrad", "integrated_gradients", "IGResult", "ig_weights"]

_WHERE = ("layer", "unit", "reduce")  # where the attribution is taken (.where), accepted by every gradient method


def _gradient(model, x, target, score, layer, unit, method) -> tuple[Where, torch.Tensor, torch.Tensor]:
    """``(where, v, ∂score/∂v)`` at the point ``v`` of the space that ``x`` maps to."""
    w = where(model, x, layer, unit, method)
    score = method_score(score, target, "logit")
    with hooks(w.b.model):
        v, g, _ = gradient_at(w, x, target, score)  # one forward: the class is read from the pass itself
    return w, v, g


@register("saliency", family="gradient", paper="Simonyan, Vedaldi & Zisserman, 2014", kinds=KINDS)
def saliency(model: nn.Module, x: torch.Tensor, target: Any = None, *, abs: bool = True,
             score: str | None = None, layer: str | None = None, unit: Any = None,
             reduce: str | None = None) -> torch.Tensor:
    """∂score/∂x, by default its absolute value (``abs=False`` keeps the sign).

    ``score``: how a class target is read, ``"logit"`` (default), ``"probability"`` or
    ``"log-probability"`` (:data:`seethrough.targets.SCORES`); the same option on every method.
    ``layer=``: the gradient at that layer's output; ``unit=``: explain that unit's activation;
    token ids: the per-token sum over the embedding dimension (``reduce="none"``: ``(N, L, D)``).

    Shaped like ``x``; :func:`seethrough.render.overlay` reduces the channels for display.

    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    >>> with torch.no_grad():
    ...     _ = net[1].weight.copy_(torch.tensor([[1., -2, 3, -4], [0, 0, 0, 0]]))
    >>> saliency(net, torch.ones(1, 1, 2, 2), target=0, abs=False).flatten().tolist()
    [1.0, -2.0, 3.0, -4.0]
    """
    w, _, g = _gradient(model, x, target, score, layer, unit, "saliency")
    return finish(w, x, g.abs() if abs else g, reduce)


@register("grad-x-input", family="gradient", paper="Shrikumar et al., 2016", kinds=KINDS)
def grad_x_input(model: nn.Module, x: torch.Tensor, target: Any = None, *, score: str | None = None,
                 layer: str | None = None, unit: Any = None, reduce: str | None = None) -> torch.Tensor:
    """Gradient × input: each feature's first-order contribution to the score (default: the logit).

    With ``layer=``: layer gradient × activation (Captum's ``LayerGradientXActivation``); token ids:
    gradient × embedding summed over the embedding dimension per token.

    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2, 1, bias=False))
    >>> with torch.no_grad():
    ...     _ = net[1].weight.fill_(3.0)
    >>> grad_x_input(net, torch.tensor([[[[1.0, 2.0]]]]), target=0).flatten().tolist()
    [3.0, 6.0]
    """
    w, v, g = _gradient(model, x, target, score, layer, unit, "grad-x-input")
    return finish(w, x, g * v, reduce)


@register("sensitivity", family="gradient", paper="Baehrens et al., 2010; Montavon, Samek & Müller, 2018", kinds=KINDS)
def sensitivity(model: nn.Module, x: torch.Tensor, target: Any = None, *, score: str | None = None,
                layer: str | None = None, unit: Any = None, reduce: str | None = None) -> torch.Tensor:
    """Squared gradient (sensitivity analysis): its sum over pixels is ‖∇f(x)‖² (f: the logit by default).

    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2, 1, bias=False))
    >>> with torch.no_grad():
    ...     _ = net[1].weight.copy_(torch.tensor([[3.0, -4.0]]))
    >>> sensitivity(net, torch.zeros(1, 1, 1, 2), target=0).sum().item()
    25.0
    """
    w, _, g = _gradient(model, x, target, score, layer, unit, "sensitivity")
    return finish(w, x, g * g, reduce)


def _on(w: Where, run: Any) -> Where:
    """The same place on the model :func:`seethrough.runner.fast` runs (the model itself, or its compiled form)."""
    return w if run.model is w.b.model else w.on(run.model)


def _compilable(w: Where, compile: bool) -> bool:
    """``compile=True`` applies to plain input-space passes: ``layer=``/``unit=`` need hooks on the model's
    modules and extra forward arguments would change the compiled call."""
    if not isinstance(compile, bool):
        raise ValueError(f"compile must be True or False, got {compile!r}")
    return compile and w.layer is None and w.unit is None and w.space is None and not w.b.extra


# ----------------------------------------------------------------------------------- SmoothGrad
_NOISE_STATS = {"smoothgrad": "mean", "smoothgrad-sq": "mean of squares", "vargrad": "variance"}
# abs: where the absolute value goes. Smilkov et al. and Captum (NoiseTunnel over Saliency(abs=True))
# average |∇| ("mean-of-abs", also abs=True); the course takes |mean ∇| ("abs-of-mean").
SG_ABS = (False, True, "mean-of-abs", "abs-of-mean")


@renamed(kind="method", noise="relative_noise")
def smoothgrad(model: nn.Module, x: torch.Tensor, target: Any = None, *, method: str = "smoothgrad",
               n_samples: int = 50, relative_noise: float = 0.15, seed: int = 0, abs: bool | str = False,
               score: str | None = None, batch_size: int | str = "auto", progress: bool = True,
               layer: str | None = None, unit: Any = None, reduce: str | None = None,
               compile: bool = False) -> torch.Tensor:
    """Gradients averaged over noisy copies ``x + N(0, σ²)``, σ = ``relative_noise`` × (x.max − x.min)
    per sample.

    The noise is relative to the scale of the values it is added to (:func:`.where.noise_scale`):
    an image's range as before; for tabular rows each feature's own scale (the background's standard
    deviation, else the width of ``ranges``; the row's range when the boundary has neither); for token
    ids the range of the sample's embedding values (the noise is added in the embedding space); with
    ``layer=`` the range of the sample's activations there.

    ``relative_noise``: the noise's standard deviation as a fraction of that scale.
    ``method``: ``"smoothgrad"`` (mean gradient), ``"smoothgrad-sq"`` (mean squared gradient) or
    ``"vargrad"`` (variance of the gradients). ``abs`` says where an absolute value goes:
    ``False`` (default) keeps the sign, ``"mean-of-abs"`` (or ``True``) averages ``|∇|`` (Smilkov
    et al.'s magnitude maps, Captum's ``NoiseTunnel(Saliency)`` with ``abs=True``),
    ``"abs-of-mean"`` takes ``|mean ∇|`` (the course's SmoothGrad magnitude). ``score``: the
    logit (default), ``"probability"`` or ``"log-probability"``. The noise depends only on ``seed``
    and the sample number (the same ``n_samples`` draws, scaled per image), so a batch gives the
    same maps as single calls and a seed gives the same result at any ``batch_size``.
    ``compile``: compile the model's forward and backward for the noisy passes with torch.compile, once per
    model and shape, the first call paying the compile time (input-space attribution only, docs/speed.md).

    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    >>> x = torch.rand(3, 1, 2, 2)
    >>> a = smoothgrad(net, x, 0, n_samples=8, seed=1, batch_size=5)
    >>> torch.allclose(a[2:], smoothgrad(net, x[2:], 0, n_samples=8, seed=1, batch_size=3))
    True
    >>> inside, outside = (smoothgrad(net, x, 0, n_samples=8, abs=a) for a in ("mean-of-abs", "abs-of-mean"))
    >>> bool((inside >= outside - 1e-7).all())   # |mean ∇| ≤ mean |∇|
    True
    """
    if method not in _NOISE_STATS:
        raise ValueError(f"method must be one of {', '.join(map(repr, _NOISE_STATS))}, got {method!r}")
    if not any(abs is a for a in (False, True)) and abs not in SG_ABS[2:]:
        raise ValueError(f"abs must be one of {', '.join(map(repr, SG_ABS))}, got {abs!r}")
    s = check_positive_int("n_samples", n_samples)
    if method == "vargrad" and s < 2:
        raise ValueError("vargrad needs n_samples >= 2 to estimate a variance")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    score = method_score(score, target, "logit")
    inner = abs is True or abs == "mean-of-abs"
    w = where(model, x, layer, unit, method)
    n = x.shape[0]
    with hooks(w.b.model):
        idx = resolve(w, x, target)
        v = values_of(w, x)
        sigma = noise_scale(w, v, relative_noise)
        # drawn on a CPU generator up front and moved once: the same noise on every device for a seed
        gen = torch.Generator().manual_seed(seed)
        eps = torch.randn((s, *v.shape[1:]), generator=gen, dtype=v.dtype).to(v.device)
        total = torch.zeros_like(v)
        total_sq = torch.zeros_like(v)

        def noisy_grads(start: int, stop: int) -> torch.Tensor:
            item = torch.arange(start, stop, device=v.device)
            img, draw = item // s, item % s
            vs = run.input(v[img] + (sigma if sigma.shape[0] == 1 else sigma[img]) * eps[draw])
            g, _ = scores_and_gradient(_on(w, run), vs, x[img], target, None if idx is None else idx[img], score, rows=img)
            return g.abs() if inner else g

        def accumulate(start: int, stop: int, g: torch.Tensor) -> None:
            img = torch.arange(start, stop, device=v.device) // s
            total.index_add_(0, img, g)
            total_sq.index_add_(0, img, g * g)

        with fast(w.b.model, v, "grad", compile=_compilable(w, compile), n=n * s, batch_size=batch_size) as run:
            run_batched(run.guard(noisy_grads), n * s, batch_size=run.batch_size, **grad_sizes(v),
                        device=v.device,
                        key=run.key, progress=progress, desc=method,
                        on_batch=accumulate)
    mean = total / s
    if method == "smoothgrad":
        out = mean
    elif method == "smoothgrad-sq":
        out = total_sq / s
    else:
        out = (total_sq / s - mean * mean).clamp_min(0)  # population variance, as Captum's NoiseTunnel
    return finish(w, x, out.abs() if abs == "abs-of-mean" else out, reduce)


_SG_OPTIONS = ("n_samples", "relative_noise", "seed", "abs", "score", "batch_size", "progress", "compile", *_WHERE)


@register("smoothgrad", family="gradient", paper="Smilkov et al., 2017", kinds=KINDS, impl=smoothgrad, fixed=("kind", "method"))
@renamed(noise="relative_noise")
def _smoothgrad(model, x, target=None, **options):
    reject_unknown("smoothgrad", options, _SG_OPTIONS)
    return smoothgrad(model, x, target, method="smoothgrad", **options)


@register("smoothgrad-sq", family="gradient", paper="Hooker et al., 2019", kinds=KINDS, impl=smoothgrad, fixed=("kind", "method"))
@renamed(noise="relative_noise")
def _smoothgrad_sq(model, x, target=None, **options):
    reject_unknown("smoothgrad-sq", options, _SG_OPTIONS)
    return smoothgrad(model, x, target, method="smoothgrad-sq", **options)


@register("vargrad", family="gradient", paper="Adebayo et al., 2018", kinds=KINDS, impl=smoothgrad, fixed=("kind", "method"))
@renamed(noise="relative_noise")
def _vargrad(model, x, target=None, **options):
    reject_unknown("vargrad", options, _SG_OPTIONS)
    return smoothgrad(model, x, target, method="vargrad", **options)


# ------------------------------------------------------------------------ integrated gradients
IG_RULES = ("gauss-legendre", "riemann-trapezoid", "riemann-left", "riemann-right", "riemann-middle")


def ig_weights(steps: int, rule: str = "gauss-legendre", dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Quadrature nodes α ∈ [0, 1] and weights (summing to 1) for the path integral.

    Gauss–Legendre nodes come from the eigenvalues of the Jacobi matrix (Golub–Welsch), in float64.

    >>> a, w = ig_weights(3)
    >>> round(float((w * a ** 5).sum()), 12)  # exact for polynomials up to degree 2·3 − 1
    0.166666666667
    """
    rule = rule.replace("_", "-")
    if rule not in IG_RULES:
        raise ValueError(f"rule must be one of {', '.join(map(repr, IG_RULES))}, got {rule!r}")
    check_positive_int("steps", steps, 2 if rule == "riemann-trapezoid" else 1)
    n = steps
    if rule == "gauss-legendre":
        k = torch.arange(1, n, dtype=torch.float64)
        off = k / torch.sqrt(4 * k * k - 1)
        nodes, vecs = torch.linalg.eigh(torch.diag(off, 1) + torch.diag(off, -1))
        alphas, weights = 0.5 * (1 + nodes), vecs[0] ** 2  # the weights on [-1, 1] sum to 2; halved
    elif rule == "riemann-trapezoid":
        alphas = torch.linspace(0, 1, n, dtype=torch.float64)
        weights = torch.full((n,), 1 / (n - 1), dtype=torch.float64)
        weights[0] = weights[-1] = 0.5 / (n - 1)
    else:
        start = {"riemann-left": 0.0, "riemann-middle": 0.5, "riemann-right": 1.0}[rule]
        alphas = (torch.arange(n, dtype=torch.float64) + start) / n
        weights = torch.full((n,), 1 / n, dtype=torch.float64)
    return alphas.to(dtype), weights.to(dtype)


@dataclass
class IGResult(ResultProtocol):
    """Integrated gradients with their completeness check.

    ``gap`` = Σ attribution − (f(x) − f(baseline)) per sample: the quadrature error. It shrinks
    as ``steps`` grows; a gap that is large relative to ``f(x) − f(baseline)`` means more steps.
    """

    attribution: torch.Tensor  # shaped like x; (N, L) per token for token ids; the layer's shape with layer=
    gap: torch.Tensor  # (N,)
    score: torch.Tensor  # f(x), (N,)
    baseline_score: torch.Tensor  # f(baseline), (N,)
    options: dict[str, Any] = field(default_factory=dict)  # the call's options (target, baseline, steps, ...)
    seed: int | None = None  # integrated gradients draws nothing at random

    def summary(self) -> str:
        rel = self.relative_gap.double()
        return (f"integrated gradients ({self.options.get('steps', '?')} steps) on {len(self.gap)} samples: "
                f"completeness gap at most {float(rel.max()):.2%} of f(x) − f(baseline)")

    @property
    def relative_gap(self) -> torch.Tensor:
        """|gap| / |f(x) − f(baseline)|, per sample."""
        return self.gap.abs() / (self.score - self.baseline_score).abs().clamp_min(1e-12)


def integrated_gradients(model: nn.Module, x: torch.Tensor, target: Any = None, *, baseline: Any = None,
                         steps: int = 50, rule: str = "gauss-legendre", blur_sigma: float | None = None,
                         score: str | None = None, batch_size: int | str = "auto", progress: bool = True,
                         layer: str | None = None, unit: Any = None, reduce: str | None = None,
                         compile: bool = False) -> IGResult:
    """(x − x̄) ⊙ ∫₀¹ ∇f(x̄ + α(x − x̄)) dα, with the completeness gap.

    ``baseline``: images ``"zeros"``/``"black"`` (default), ``"blur"``, a number or a tensor; tabular
    rows also ``"background"`` (the background's mean row, the default when the boundary has one); token
    ids ``"pad"`` (every token's embedding replaced by ``pad_id``'s, the default when the boundary has a
    pad id), ``"mask"``, ``"zeros"`` (zero embeddings, the default otherwise) or baseline ids
    (:func:`.where.baseline_values`). Token ids are integrated in the embedding space: the attribution
    is ``(N, L)`` per-token sums over the embedding dimension (``reduce="none"``: the full
    ``(N, L, D)``), and the gap is Σ over all of it. ``layer=``: layer integrated gradients (the path
    between the layer's outputs for the baseline and for ``x``); ``unit=``: the unit's activation is the
    integrated score (Captum's ``NeuronIntegratedGradients``).

    ``steps`` quadrature points by ``rule`` (see :data:`IG_RULES`; the default Gauss–Legendre was kept by measurement:
    on ReLU networks no rule is better everywhere, ``benchmarks/ig_quadrature.py``). Steps: check
    ``relative_gap``; on EfficientNet-Lite0 (chelsea, 224×224, black baseline) 32 steps leave
    8.1 % of f(x) − f(baseline) unexplained and 64 steps 0.3 % (tests/test_ig_quadrature.py), so
    a 5 % gap needs more than 32. ``score``: the logit (default), ``"probability"`` or
    ``"log-probability"``. ``compile``: compile the model's forward and backward for the path passes
    with torch.compile, once per model and shape, the first call paying the compile time (input-space
    attribution only, docs/speed.md). The ``"integrated-gradients"`` registry entry returns
    ``.attribution`` only.

    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))
    >>> res = integrated_gradients(net, torch.rand(2, 1, 2, 2), target=1, steps=16)
    >>> bool(res.relative_gap.max() < 1e-4)
    True
    """
    opts = call_options(locals(), "model", "x")
    score = method_score(score, target, "logit")
    w = where(model, x, layer, unit, "integrated gradients")
    n, s = x.shape[0], steps
    with hooks(w.b.model):
        idx = resolve(w, x, target)
        v = values_of(w, x)
        base = baseline_values(w, x, baseline, blur_sigma)
        alphas, weights = ig_weights(steps, rule, dtype=v.dtype)
        alphas, weights = alphas.to(v.device), weights.to(v.device)
        diff = v - base
        total = torch.zeros_like(v)
        both = torch.arange(n, device=x.device).repeat(2)
        ends = scores_at(w, torch.cat([v, base]), x[both], target, None if idx is None else idx[both], score, both)
        ones = [1] * (v.dim() - 1)

        def path_grads(start: int, stop: int) -> torch.Tensor:
            item = torch.arange(start, stop, device=v.device)
            img, step = item // s, item % s
            vs = run.input(base[img] + alphas[step].view(-1, *ones) * diff[img])
            g, _ = scores_and_gradient(_on(w, run), vs, x[img], target, None if idx is None else idx[img], score, rows=img)
            return g * weights[step].view(-1, *ones)

        def accumulate(start: int, stop: int, g: torch.Tensor) -> None:
            total.index_add_(0, torch.arange(start, stop, device=v.device) // s, g)

        with fast(w.b.model, v, "grad", compile=_compilable(w, compile), n=n * s, batch_size=batch_size) as run:
            run_batched(run.guard(path_grads), n * s, batch_size=run.batch_size, **grad_sizes(v),
                        device=v.device,
                        key=run.key, progress=progress,
                        desc="integrated gradients", on_batch=accumulate)
    full = diff * total
    score, baseline_score = ends[:n], ends[n:]
    gap = full.flatten(1).sum(1) - (score - baseline_score)
    return IGResult(finish(w, x, full, reduce), gap, score, baseline_score, options=opts, seed=None)


@register("integrated-gradients", family="gradient", paper="Sundararajan, Taly & Yan, 2017", kinds=KINDS, impl=integrated_gradients,
          options={"conductance": {"default": False, "help": "with layer=: layer conductance instead (the path in input space)"}})
def _integrated_gradients(model, x, target=None, **options):
    """The attribution of :func:`integrated_gradients`; ``conductance=True`` with ``layer=`` gives layer
    conductance instead (:func:`seethrough.attribution.conductance.conductance`: the path in input space)."""
    if options.pop("conductance", False):
        reject_unknown("integrated-gradients with conductance=True", options,
                       ("layer", "baseline", "steps", "rule", "blur_sigma", "score", "reduce"))
        from .conductance import conductance

        return conductance(model, x, target, **options)
    reject_unknown("integrated-gradients", options, ("baseline", "steps", "rule", "blur_sigma", "score", "batch_size",
                                                    "progress", "conductance", "compile", *_WHERE))
    return integrated_gradients(model, x, target, **options).attribution
