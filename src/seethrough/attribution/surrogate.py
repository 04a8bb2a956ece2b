"""LIME and KernelSHAP for images: fit a weighted linear surrogate on superpixels switched on/off.

Both sample binary vectors ``z`` (one bit per superpixel), score the images in which the
superpixels with ``z = 0`` are replaced by the baseline, and fit ``score ≈ b + w · z``.
They differ in the sampling and the weighting only:

* LIME (Ribeiro et al., 2016): uniform random bits, weights ``sqrt(exp(-d² / width²))`` with
  ``d`` the cosine distance to the all-on vector, ridge fit of the class **probability** - as
  the ``lime`` package does (``score="logit"`` on request).
* KernelSHAP (Lundberg & Lee, 2017): coalitions drawn from the Shapley kernel (paired with
  their complements), least squares under the efficiency constraint
  ``Σ w = f(x) − f(baseline)``; with ``2^K ≤ n_samples`` every coalition is enumerated with its
  exact kernel weight, which gives the exact Shapley values. ``f`` is the logit by default.

Every image draws its on/off patterns from its own generator seeded with ``seed``, so an image
gets the same explanation alone or anywhere in a batch (a shared generator drawn in batch order
would give a repeated image a different map at each position).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from ..results import ResultProtocol, records
from ..boundary import Boundary, as_boundary
from ..seeding import stream
from .common import check_positive_int
from .masking import (Positions, clean_forward, masked_scores, position_scores, positions, resolve_baseline, unit_or_score,
                      unit_target)
from .registry import register
from .superpixels import resolve_segments


@dataclass
class SuperpixelExplanation(ResultProtocol):
    """A surrogate explanation: the map, the per-superpixel weights and the superpixels."""

    map: torch.Tensor  # (N, 1, H, W): each pixel carries its superpixel's weight; (N, F) rows, (N, L) tokens
    weights: torch.Tensor  # (N, K): weight of superpixel k (0 beyond an image's own count)
    segments: torch.Tensor  # (N, H, W) int64 labels 0..K-1; (N, P) for rows and tokens
    intercept: torch.Tensor  # (N,): LIME's intercept; KernelSHAP's f(baseline)
    n_features: list[int]  # superpixels per image
    score: str | None = None  # what f was: "logit", "probability", "log-probability"; None for a callable target
    options: dict = field(default_factory=dict)
    seed: int | None = None


# sample(K, n_samples, generator) -> (z (S, K) bool, weight (S,) float64)
Sampler = Callable[[int, int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]
# fit(z, weight, scores) -> (weights (K,), intercept) in float64
Fitter = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _explain(model, x, target, sample: Sampler, fit: Fitter, *, segments, n_segments, n_samples, baseline, seed,
             score, batch_size, memory_budget, progress, desc, compile=False) -> SuperpixelExplanation:
    check_positive_int("n_samples", n_samples, 2)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    b = as_boundary(model, x)
    if not isinstance(compile, bool) or (compile and b.kind != "image"):
        raise ValueError(f"compile is True or False and compiles image passes only; got {compile!r} on {b.kind} input")
    if b.kind == "image":
        seg = resolve_segments(x, "slic" if segments is None else segments, n_segments)
        base = resolve_baseline(x, 0.0 if baseline is None else baseline)
    else:
        pos = positions(b, x, baseline, desc)
        seg = position_segments(pos, segments)
    ks = [int(s.max()) + 1 for s in seg]
    # One stream per image, the same for every image: the draws never depend on the batch.
    drawn = [sample(k, n_samples, stream(seed)) for k in ks]
    kmax, smax = max(ks), max(len(z) for z, _ in drawn)
    bits = torch.zeros(len(ks), smax, kmax)
    for i, (z, _) in enumerate(drawn):
        bits[i, : len(z), : z.shape[1]] = z.float()
    # drawn on the CPU (the same on every device), moved once: the masks are made on x's device per batch
    bits, seg_d = bits.to(x.device), seg.to(x.device)
    counts = [len(z) for z, _ in drawn]
    indices, _ = clean_forward(b, x, target, score)
    if b.kind == "image":
        h, w = x.shape[2:]

        def masks(img: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            return torch.gather(bits[img, s], 1, seg_d[img].view(len(img), -1)).view(len(img), 1, h, w)

        scores = masked_scores(b if isinstance(model, Boundary) else model, x, target, indices, counts, masks, base,
                               batch_size=batch_size, memory_budget=memory_budget, progress=progress, desc=desc, score=score,
                               compile=compile)
    else:
        def keep(img: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            return torch.gather(bits[img, s], 1, seg_d[img]) > 0.5

        scores = position_scores(pos, target, indices, counts, keep, batch_size=batch_size, memory_budget=memory_budget,
                                 progress=progress, desc=desc, score=score)
    weights = torch.zeros(len(ks), kmax, dtype=torch.float64)
    intercepts = torch.zeros(len(ks), dtype=torch.float64)
    for i, ((z, wt), y) in enumerate(zip(drawn, scores)):  # one small linear fit per image
        weights[i, : ks[i]], intercepts[i] = fit(z.double(), wt, y.double().cpu())
    # the input's dtype; for token ids (integers) the dtype of the model's scores
    weights = weights.to(device=x.device, dtype=x.dtype if x.is_floating_point() else scores[0].dtype)
    attr = torch.gather(weights, 1, seg.view(len(ks), -1)).view(len(ks), *seg.shape[1:])
    if b.kind == "image":
        attr = attr.unsqueeze(1)
    else:
        attr = attr * pos.real  # padding is never switched: it carries nothing
    return SuperpixelExplanation(attr, weights, seg, intercepts.to(device=x.device, dtype=weights.dtype), ks, score)


def position_segments(p: Positions, segments: Any = None) -> torch.Tensor:
    """``(N, P)`` labels ``0..K_i − 1``: which interpretable feature each position of a row or sequence belongs to.

    ``None``: every feature of a row, every real token of a sequence is its own; a label tensor ``(P,)``
    or ``(N, P)`` groups positions (words made of several tokens, one-hot columns of one variable).
    Labels are renumbered over each sample's real positions (padding gets label 0 and is never switched).

    >>> from seethrough.boundary import boundary
    >>> b = boundary(nn.Embedding(9, 2), kind="tokens", pad_id=0)
    >>> ids = torch.tensor([[5, 6, 7, 0]])
    >>> position_segments(positions(b, ids, None, "lime"), torch.tensor([4, 4, 9, 9])).tolist()
    [[0, 0, 1, 0]]
    """
    n, size = p.x.shape[0], p.size
    if segments is None:
        labels = torch.arange(size, device=p.x.device).expand(n, size)
    elif isinstance(segments, torch.Tensor) and not segments.is_floating_point() and segments.dim() in (1, 2) \
            and segments.shape[-1] == size and (segments.dim() == 1 or segments.shape[0] in (1, n)):
        labels = segments.long().to(p.x.device).expand(n, size)
    else:
        got = tuple(segments.shape) if isinstance(segments, torch.Tensor) else repr(segments)
        what = "features" if p.b.kind == "tabular" else "tokens"
        raise ValueError(f"segments on {p.b.kind} input must be None (each of the {size} {what}) or an integer label "
                         f"tensor of shape ({size},) or (N, {size}) grouping them; got {got}")
    out = torch.zeros(n, size, dtype=torch.long, device=p.x.device)
    for i in range(n):  # relabel over the real positions only (a per-sample detail, not a model call)
        real = p.real[i]
        if not real.any():
            raise ValueError(f"sample {i} has no real tokens to switch (all padding)")
        out[i, real] = torch.unique(labels[i, real], return_inverse=True)[1]
    return out


def weighted_ridge(z: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Ridge regression with sample weights and an unpenalised intercept (as scikit-learn's ``Ridge``).

    >>> z = torch.tensor([[0., 1], [1, 0], [1, 1], [0, 0]], dtype=torch.float64)
    >>> coef, b = weighted_ridge(z, z @ torch.tensor([2., -1], dtype=torch.float64) + 3, torch.ones(4, dtype=torch.float64), 0.0)
    >>> [round(v, 6) for v in coef.tolist()], round(b.item(), 6)
    ([2.0, -1.0], 3.0)
    """
    sw = weight / weight.sum()
    zm, ym = sw @ z, sw @ y
    zc, yc = z - zm, y - ym
    gram = zc.T @ (weight[:, None] * zc) + alpha * torch.eye(z.shape[1], dtype=z.dtype)
    coef = torch.linalg.solve(gram, zc.T @ (weight * yc))
    return coef, ym - zm @ coef


def _lime_sample(k: int, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    z = torch.rand(n, k, generator=g) < 0.5
    z[0] = True  # the unperturbed image, as the lime package does
    return z, torch.ones(n, dtype=torch.float64)


@records("model", "x")
def lime(
    model: nn.Module,
    x: torch.Tensor,
    target: Any = None,
    *,
    n_samples: int = 1000,
    segments: Any = None,
    n_segments: int = 50,
    kernel_width: float = 0.25,
    alpha: float = 1.0,
    baseline: Any = None,
    seed: int = 0,
    score: str | None = None,
    batch_size: int | str = "auto",
    memory_budget: int | None = None,
    progress: bool = True,
    unit: Any = None,
    compile: bool = False,
) -> SuperpixelExplanation:
    """LIME (Ribeiro et al., 2016) on superpixels: a weighted ridge fit of the target score.

    ``segments``: ``"slic"`` (default), ``"quickshift"``, ``"grid"`` or a label tensor;
    ``n_samples`` perturbed images (the first is the unperturbed one); ``kernel_width`` of the
    exponential kernel on the cosine distance; ``alpha`` the ridge penalty; masked
    superpixels take the ``baseline`` (number, ``"mean"``, ``"blur"`` or tensor). The score is
    the target's softmax **probability** by default (``score="probability"``, as the paper and
    the ``lime`` package), or ``"logit"`` / ``"log-probability"``. ``unit=(layer, channel[, position])`` explains that
    unit's activation instead (``target`` None). ``seed`` fixes the on/off
    patterns, the same for every image of the batch.
    On rows and token ids: module docstring; ``segments=None`` there means every feature or real token.
    ``compile``: run the perturbed forwards through torch.compile with frozen weights, once per model and
    shape, the first call paying the compile time (images only, docs/speed.md).

    >>> import seethrough as see
    >>> x, y = see.zoo.digits("test")
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> e = see.lime(model, x[:1], target=y[:1], segments="grid", n_segments=16, n_samples=200)
    >>> e.weights.shape, e.map.shape
    (torch.Size([1, 16]), torch.Size([1, 1, 32, 32]))
    """
    if not isinstance(kernel_width, (int, float)) or isinstance(kernel_width, bool) or kernel_width <= 0:
        raise ValueError(f"kernel_width must be a positive number, got {kernel_width!r}")
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or alpha < 0:
        raise ValueError(f"alpha (the ridge penalty) must be a number ≥ 0, got {alpha!r}")

    def fit(z, _, y):
        on = z.sum(1)
        distance = 1 - torch.sqrt(on / z.shape[1])  # cosine distance to the all-on vector
        weight = torch.sqrt(torch.exp(-(distance**2) / kernel_width**2))
        return weighted_ridge(z, y, weight, alpha)

    target = unit_target(model, x, target, unit, "lime")
    return _explain(model, x, target, _lime_sample, fit, segments=segments, n_segments=n_segments, n_samples=n_samples,
                    baseline=baseline, seed=seed, score=unit_or_score(score, target, "probability"),
                    batch_size=batch_size, memory_budget=memory_budget, progress=progress, desc="lime", compile=compile)


def shapley_kernel(k: int, size: torch.Tensor) -> torch.Tensor:
    """The Shapley kernel ``(K − 1) / (C(K, |z|) |z| (K − |z|))`` for coalition sizes 1..K−1.

    >>> [round(v, 12) for v in shapley_kernel(4, torch.tensor([1, 2])).tolist()]
    [0.25, 0.125]
    """
    size = size.double()
    log_binom = torch.lgamma(torch.tensor(k + 1.0, dtype=torch.float64)) - torch.lgamma(size + 1) - torch.lgamma(k - size + 1)
    return (k - 1) / (torch.exp(log_binom) * size * (k - size))


def _shap_sample(k: int, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    ends = torch.stack([torch.ones(k, dtype=torch.bool), torch.zeros(k, dtype=torch.bool)])
    if k <= 20 and 2**k <= n:  # enumerate every coalition: the result is exact
        codes = torch.arange(1, 2**k - 1)
        z = (codes[:, None] >> torch.arange(k)) & 1 == 1
        return torch.cat([ends, z]), torch.cat([torch.zeros(2, dtype=torch.float64), shapley_kernel(k, z.sum(1))])
    sizes = torch.arange(1, k)
    p = 1.0 / (sizes * (k - sizes)).double()  # kernel mass of all coalitions of one size
    half = math.ceil((n - 2) / 2)
    s = sizes[torch.multinomial(p, half, replacement=True, generator=g)]
    z = torch.rand(half, k, generator=g).argsort(1) < s[:, None]  # a random subset of size s
    z = torch.cat([z, ~z])[: n - 2]  # paired with complements: less variance
    weight = torch.cat([torch.zeros(2, dtype=torch.float64), torch.ones(len(z), dtype=torch.float64)])
    return torch.cat([ends, z]), weight


def _shap_fit(z: torch.Tensor, weight: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    fx, f0 = y[0], y[1]  # rows 0 and 1 are the all-on and all-off coalitions
    gap = fx - f0
    if z.shape[1] == 1:
        return gap.view(1), f0
    keep = weight > 0
    z, y, root = z[keep], y[keep], weight[keep].sqrt()
    # Eliminate the last weight with Σφ = gap, then an unconstrained weighted least squares.
    design = (z[:, :-1] - z[:, -1:]) * root[:, None]
    rhs = (y - f0 - z[:, -1] * gap) * root
    # Few samples can leave the system rank-deficient: the minimum-norm solution (SVD with a
    # cut-off) keeps the result continuous in the scores, hence batch-size invariant.
    phi = torch.linalg.lstsq(design, rhs[:, None], rcond=1e-10, driver="gelsd").solution.squeeze(1)
    return torch.cat([phi, (gap - phi.sum()).view(1)]), f0


@records("model", "x")
def kernel_shap(
    model: nn.Module,
    x: torch.Tensor,
    target: Any = None,
    *,
    n_samples: int = 1000,
    segments: Any = None,
    n_segments: int = 50,
    baseline: Any = None,
    seed: int = 0,
    score: str | None = None,
    batch_size: int | str = "auto",
    memory_budget: int | None = None,
    progress: bool = True,
    unit: Any = None,
    compile: bool = False,
) -> SuperpixelExplanation:
    """KernelSHAP (Lundberg & Lee, 2017) on superpixels: Shapley values of the target score.

    The weights add up to ``f(x) − f(baseline)`` (efficiency) by construction; with
    ``2^K ≤ n_samples`` (few superpixels) they are the exact Shapley values. ``f`` is the
    target's **logit** by default (``score="probability"`` or ``"log-probability"`` on request:
    Shapley values are defined for any score, the logit keeps them additive in the model's
    last layer). ``compile``: run the perturbed forwards through torch.compile, as :func:`lime` does.
    Other options as :func:`lime`.

    With a background (tabular rows) the weights add up to ``f(x) − mean_b f(b)``; with ``2^F ≤
    n_samples`` they are the exact Shapley values of ``v(S) = mean_b f(x_S, b_~S)``, which for a linear
    model is ``w_j (x_j − mean(b)_j)``:

    >>> import seethrough as see
    >>> lin = torch.nn.Linear(3, 2).double()
    >>> bg = torch.randn(10, 3, dtype=torch.float64); row = torch.randn(1, 3, dtype=torch.float64)
    >>> phi = see.attribute(lin, row, "kernel-shap", target=1, kind="tabular", background=bg, n_samples=8)
    >>> torch.allclose(phi, lin.weight[1] * (row - bg.mean(0)))
    True

    >>> import seethrough as see
    >>> x, y = see.zoo.digits("test")
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> e = see.kernel_shap(model, x[:1], target=y[:1], segments="grid", n_segments=16, n_samples=200)
    >>> gap = model(x[:1])[0, y[0]] - model(torch.zeros_like(x[:1]))[0, y[0]]
    >>> bool(torch.isclose(e.weights.sum(), gap, atol=1e-4))
    True
    """
    target = unit_target(model, x, target, unit, "kernel-shap")
    return _explain(model, x, target, _shap_sample, _shap_fit, segments=segments, n_segments=n_segments,
                    n_samples=n_samples, baseline=baseline, seed=seed, score=unit_or_score(score, target, "logit"),
                    batch_size=batch_size, memory_budget=memory_budget, progress=progress, desc="kernel-shap",
                    compile=compile)


@register("lime", family="perturbation", paper="Ribeiro, Singh & Guestrin, 2016", region=True, score="probability",
          kinds=("image", "tabular", "tokens"), impl=lime)
def _lime_map(model: nn.Module, x: torch.Tensor, target: Any = None, **options: Any) -> torch.Tensor:
    return lime(model, x, target, **options).map


@register("kernel-shap", family="perturbation", paper="Lundberg & Lee, 2017", region=True,
          kinds=("image", "tabular", "tokens"), impl=kernel_shap)
def _shap_map(model: nn.Module, x: torch.Tensor, target: Any = None, **options: Any) -> torch.Tensor:
    return kernel_shap(model, x, target, **options).map
