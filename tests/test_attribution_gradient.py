"""Gradient methods: Captum agreement, axioms, batching, seeds, hygiene."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import seethrough as see
from seethrough.attribution.common import gaussian_blur, make_baseline
from seethrough.attribution.gradient import ig_weights, integrated_gradients, smoothgrad
from seethrough.testing import untouched

from .attribution_fixtures import channels_last, digits, effnet, lenet  # noqa: F401  (fixtures)

import captum.attr as captum_attr  # a test dependency: missing must fail, not skip
warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require gradients")


OURS = [n for n, m in see.METHODS.items() if m.family in ("gradient", "rule", "relevance", "cam")]
FAST = {"smoothgrad": {"n_samples": 4}, "smoothgrad-sq": {"n_samples": 4}, "vargrad": {"n_samples": 4},
        "integrated-gradients": {"steps": 4}}


def test_saliency_and_grad_x_input_equal_captum(lenet, effnet):
    for model, x, t in (lenet, effnet):
        twin, x_cl = channels_last(model, x)  # the layout our single pass runs in: the same kernels as ours
        ours = see.attribute(model, x, "saliency", target=t)
        assert ours.is_contiguous()  # handed back in the input's layout
        torch.testing.assert_close(ours, captum_attr.Saliency(twin).attribute(x_cl, target=t), atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(see.attribute(model, x, "saliency", target=t, abs=False),
                                   captum_attr.Saliency(twin).attribute(x_cl, target=t, abs=False), atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(see.attribute(model, x, "grad-x-input", target=t),
                                   captum_attr.InputXGradient(twin).attribute(x_cl, target=t), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(("ours", "theirs"), [("gauss-legendre", "gausslegendre"), ("riemann-right", "riemann_right"),
                                              ("riemann-left", "riemann_left"), ("riemann-middle", "riemann_middle")])
def test_integrated_gradients_equal_captum_on_lenet(lenet, ours, theirs):
    model, x, t = lenet
    base = make_baseline(x, "blur")
    res = integrated_gradients(model, x, t, steps=16, rule=ours, baseline=base, batch_size=7)
    ref, delta = captum_attr.IntegratedGradients(model).attribute(
        x, baselines=base, target=t, n_steps=16, method=theirs, return_convergence_delta=True)
    torch.testing.assert_close(res.attribution, ref, atol=2e-6, rtol=1e-4)
    torch.testing.assert_close(res.gap, delta, atol=2e-5, rtol=1e-3)  # Captum's delta is the same quantity


def test_trapezoid_differs_from_captum_by_its_step_size(lenet):
    # Captum's "riemann_trapezoid" puts n nodes on [0, 1] but weighs them with step 1/n instead of
    # 1/(n − 1), so its weights sum to 1 − 1/n; ours is the trapezoid rule, larger by n/(n − 1).
    model, x, t = lenet
    ours = integrated_gradients(model, x, t, steps=16, rule="riemann-trapezoid").attribution
    ref = captum_attr.IntegratedGradients(model).attribute(x, target=t, n_steps=16, method="riemann_trapezoid")
    torch.testing.assert_close(ours, ref * 16 / 15, atol=2e-6, rtol=1e-4)
    assert float(ig_weights(16, "riemann-trapezoid")[1].sum()) == pytest.approx(1.0, abs=1e-12)


def test_integrated_gradients_equal_a_float64_reference_and_captum_on_efficientnet(effnet):
    # The reference is written out here in float64: Gauss–Legendre nodes from numpy, one gradient
    # per node. In float32 the comparison would measure the CPU's convolution kernels, not IG: with
    # two threads, Captum's own float32 result on this model is 0.015 away from float64 (ours 6e-6).
    import copy

    import numpy as np

    model, x, t = effnet
    m64, x64 = copy.deepcopy(model).double(), x.double()
    nodes, weights = np.polynomial.legendre.leggauss(6)
    grads = 0
    for a, w in zip((nodes + 1) / 2, weights / 2):
        xa = (float(a) * x64).requires_grad_()
        (g,) = torch.autograd.grad(m64(xa)[torch.arange(len(t)), t].sum(), xa)
        grads = grads + float(w) * g
    ref = grads * x64
    ours64 = integrated_gradients(m64, x64, t, steps=6).attribution
    assert ours64.dtype == torch.float64
    torch.testing.assert_close(ours64, ref, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(integrated_gradients(model, x, t, steps=6).attribution.double(), ref, atol=1e-4, rtol=1e-4)
    # Captum agrees in float64 to the precision of its float32 nodes (1e-7 here)
    theirs = captum_attr.IntegratedGradients(m64).attribute(x64, target=t, n_steps=6)
    torch.testing.assert_close(theirs, ref, atol=1e-6, rtol=1e-6)


def test_completeness_gap_shrinks_with_steps(lenet):
    model, x, t = lenet
    gaps = [integrated_gradients(model, x, t, steps=s).gap.abs().max().item() for s in (2, 8, 64)]
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 0.1 * gaps[0]
    res = integrated_gradients(model, x, t, steps=8)
    with torch.no_grad():
        delta = model(x).gather(1, t[:, None])[:, 0] - model(torch.zeros_like(x)).gather(1, t[:, None])[:, 0]
    torch.testing.assert_close(res.attribution.sum((1, 2, 3)) - delta, res.gap, atol=1e-5, rtol=0)


def test_gauss_legendre_is_exact_for_polynomials():
    a, w = ig_weights(5)
    for k in range(10):  # exact up to degree 2n − 1
        assert abs(float((w * a ** k).sum()) - 1 / (k + 1)) < 1e-12


def test_sensitivity_sums_to_squared_gradient_norm():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    x = torch.rand(4, 3, 2, 2, dtype=torch.float64)
    s = see.attribute(net, x, "sensitivity", target=2)
    jac = torch.func.vmap(torch.func.jacrev(lambda v: net(v[None])[0, 2]))(x)
    torch.testing.assert_close(s.sum((1, 2, 3)), (jac ** 2).sum((1, 2, 3)), atol=1e-12, rtol=1e-12)


def _patched_normal(monkeypatch, eps: torch.Tensor, n_images: int):
    def normal(mean, std):
        return std * eps.repeat(n_images, *([1] * (eps.dim() - 1)))
    monkeypatch.setattr(torch, "normal", normal)


@pytest.mark.parametrize(("kind", "nt"), [("smoothgrad", "smoothgrad"), ("smoothgrad-sq", "smoothgrad_sq"), ("vargrad", "vargrad")])
def test_noise_tunnel_equals_captum_with_the_same_noise(lenet, monkeypatch, kind, nt):
    model, x, t = lenet
    x = x[:1]
    ours = smoothgrad(model, x, t[:1], method=kind, n_samples=6, relative_noise=0.2, seed=3)
    eps = torch.randn((6, *x.shape[1:]), generator=torch.Generator().manual_seed(3))
    _patched_normal(monkeypatch, eps, 1)
    sigma = 0.2 * float(x.max() - x.min())
    ref = captum_attr.NoiseTunnel(captum_attr.Saliency(model)).attribute(
        x, nt_type=nt, nt_samples=6, stdevs=sigma, target=int(t[0]), abs=False)
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-4)


def test_smoothgrad_is_seeded_and_batch_size_free(lenet):
    model, x, t = lenet
    a = see.attribute(model, x, "smoothgrad", target=t, n_samples=5, seed=7, batch_size=3)
    b = see.attribute(model, x, "smoothgrad", target=t, n_samples=5, seed=7, batch_size=16)
    c = see.attribute(model, x, "smoothgrad", target=t, n_samples=5, seed=8, batch_size=16)
    torch.testing.assert_close(a, b, atol=1e-7, rtol=1e-5)
    assert (a - c).abs().max() > 1e-3
    # no noise: every copy is x, so SmoothGrad is the gradient and VarGrad is zero
    torch.testing.assert_close(see.attribute(model, x, "smoothgrad", target=t, relative_noise=0.0, n_samples=3),
                               see.attribute(model, x, "saliency", target=t, abs=False), atol=1e-6, rtol=1e-5)
    var = see.attribute(model, x, "vargrad", target=t, relative_noise=0.0, n_samples=3)  # E[g²] − E[g]² in float32:
    assert var.abs().max() < 1e-6 * see.attribute(model, x, "saliency", target=t).max() ** 2  # only rounding left


def test_smoothgrad_abs_options_say_where_the_absolute_value_goes(lenet):
    model, x, t = lenet
    opts = dict(target=t, n_samples=6, seed=2, batch_size=5)
    signed = smoothgrad(model, x, **opts)
    outside = smoothgrad(model, x, abs="abs-of-mean", **opts)  # |mean ∇|, the course's
    inside = smoothgrad(model, x, abs="mean-of-abs", **opts)  # mean |∇|, Smilkov et al.'s and Captum's abs=True
    torch.testing.assert_close(outside, signed.abs())
    torch.testing.assert_close(smoothgrad(model, x, abs=True, **opts), inside)
    assert (inside >= outside - 1e-7).all() and (inside - outside).max() > 1e-3 * inside.max()
    # mean |∇| by hand: the gradients of the same noisy copies, averaged after the absolute value
    eps = torch.randn((6, *x.shape[1:]), generator=torch.Generator().manual_seed(2))
    sigma = 0.15 * (x.flatten(1).amax(1) - x.flatten(1).amin(1)).view(-1, 1, 1, 1)
    # (the registry function, not see.attribute: noisy copies leave [0, 1], which the image gate refuses)
    by_hand = torch.stack([see.METHODS["saliency"].fn(model, x + sigma * eps[k], t) for k in range(6)]).mean(0)
    torch.testing.assert_close(inside, by_hand, atol=1e-6, rtol=1e-4)
    with pytest.raises(ValueError, match="abs must be one of"):
        smoothgrad(model, x, abs="inside", **opts)


@pytest.mark.parametrize("method", ["saliency", "grad-x-input", "sensitivity", "smoothgrad", "smoothgrad-sq", "vargrad",
                                    "integrated-gradients"])
def test_batch_with_targets_equals_single_calls(lenet, method):
    model, x, t = lenet
    batch = see.attribute(model, x, method, target=t, **FAST.get(method, {}))
    singles = torch.cat([see.attribute(model, x[i:i + 1], method, target=int(t[i]), **FAST.get(method, {}))
                         for i in range(len(t))])
    torch.testing.assert_close(batch, singles, atol=1e-6, rtol=1e-4)


def test_blur_baseline_and_bad_options(lenet):
    flat = torch.full((1, 3, 10, 10), 0.3)
    torch.testing.assert_close(gaussian_blur(flat, 2.0), flat)
    noisy = torch.rand(1, 1, 20, 20, generator=torch.Generator().manual_seed(0))
    assert gaussian_blur(noisy, 2.0).std() < 0.5 * noisy.std()
    model, x, t = lenet
    with pytest.raises(ValueError, match="baseline must be one of"):
        see.attribute(model, x, "integrated-gradients", baseline="gray")
    with pytest.raises(ValueError, match="does not broadcast"):
        see.attribute(model, x, "integrated-gradients", baseline=torch.zeros(2, 2))
    with pytest.raises(ValueError, match="rule must be one of"):
        see.attribute(model, x, "integrated-gradients", rule="simpson")
    with pytest.raises(ValueError, match="n_samples"):
        see.attribute(model, x, "smoothgrad", n_samples=0)
    with pytest.raises(TypeError, match="unknown option.*n_sample"):
        see.attribute(model, x, "smoothgrad", n_sample=3)


@pytest.mark.parametrize("method", OURS)
def test_hygiene(method, lenet):
    model, x, t = lenet
    model.train()  # a model in train mode must come back in train mode
    try:
        opts = FAST.get(method, {})
        if method == "cam":
            with untouched(model, allow_raise=ValueError):  # LeNet has no GAP head: raises after the forward
                see.attribute(model, x[:2], method, target=t[:2])
        else:
            with untouched(model):
                see.attribute(model, x[:2], method, target=t[:2], **opts)
        with untouched(model, allow_raise=ValueError):  # an out-of-range class fails after the forward pass
            see.attribute(model, x[:2], method, target=10, **opts)
            pytest.fail("expected a ValueError")
    finally:
        model.eval()
