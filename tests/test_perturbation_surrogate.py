"""LIME and KernelSHAP: exact Shapley values, efficiency, recovery of a known linear model,
agreement with scikit-learn's Ridge, seeded determinism and batch invariance."""
import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

import seethrough as see
from seethrough.attribution.superpixels import superpixels
from seethrough.attribution.surrogate import weighted_ridge

X_TEST, Y_TEST = see.zoo.digits("test")


class SuperpixelLinear(nn.Module):
    """Output 0 = Σ_k c_k · mean of x over superpixel k (a known linear function of the bits)."""

    def __init__(self, segments, coef):
        super().__init__()
        self.segments, self.coef = segments, coef

    def forward(self, x):
        k = self.coef.numel()
        onehot = nn.functional.one_hot(self.segments.flatten(), k).to(x.dtype)  # (H·W, K)
        means = x.mean(1).flatten(1) @ onehot / onehot.sum(0)
        return torch.stack([means @ self.coef.to(x.dtype), -means.sum(1)], 1)


class Bumpy(nn.Module):
    """A non-linear, interacting function of four quadrant means."""

    def forward(self, x):
        q = torch.stack([x[:, :, :4, :4].mean((1, 2, 3)), x[:, :, :4, 4:].mean((1, 2, 3)),
                         x[:, :, 4:, :4].mean((1, 2, 3)), x[:, :, 4:, 4:].mean((1, 2, 3))], 1)
        score = torch.tanh(3 * q[:, 0] * q[:, 1]) + q[:, 2] ** 2 - 0.5 * q[:, 3] * q[:, 0] + torch.sin(q.sum(1))
        return torch.stack([score, -score], 1)


def brute_force_shapley(model, x, seg, base):
    k = int(seg.max()) + 1

    def value(coalition):
        keep = torch.zeros_like(seg, dtype=x.dtype)
        for j in coalition:
            keep[seg == j] = 1
        with torch.no_grad():
            return model(base + keep * (x - base))[0, 0].item()

    phi = []
    for i in range(k):
        others = [j for j in range(k) if j != i]
        total = 0.0
        for size in range(k):
            for s in itertools.combinations(others, size):
                w = math.factorial(size) * math.factorial(k - size - 1) / math.factorial(k)
                total += w * (value(s + (i,)) - value(s))
        phi.append(total)
    return torch.tensor(phi, dtype=torch.float64)


@pytest.mark.parametrize("baseline", [0.0, "mean"])
def test_kernel_shap_enumerates_and_equals_brute_force_shapley(baseline):
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    seg = superpixels(x, "grid", n_segments=4)
    base = see.attribution.masking.resolve_baseline(x, baseline)
    ref = brute_force_shapley(Bumpy(), x, seg[0], base)
    e = see.kernel_shap(Bumpy(), x, target=0, segments="grid", n_segments=4, n_samples=16, baseline=baseline)
    torch.testing.assert_close(e.weights[0], ref, rtol=1e-9, atol=1e-10)
    with torch.no_grad():
        f0 = Bumpy()(base)[0, 0]
    torch.testing.assert_close(e.intercept[0], f0)


def test_kernel_shap_efficiency_when_sampling_on_lenet_and_efficientnet():
    x, y = X_TEST, Y_TEST
    model, _ = see.zoo.load("lenet-digits")
    e = see.kernel_shap(model, x[:3], target=y[:3], n_samples=64, n_segments=20)
    with torch.no_grad():
        gap = model(x[:3])[torch.arange(3), y[:3]] - model(torch.zeros_like(x[:3]))[torch.arange(3), y[:3]]
    assert min(e.n_features) > 4  # 2^K > n_samples: the sampled path, not enumeration
    torch.testing.assert_close(e.weights.sum(1), gap, rtol=0, atol=1e-4)
    net, prep = see.zoo.load("efficientnet-lite0")
    photo = torch.nn.functional.interpolate(prep(see.zoo.image("chelsea")), size=(64, 64), mode="area")
    e = see.kernel_shap(net, photo, target=285, n_samples=40, n_segments=15, baseline="blur")
    base = see.attribution.masking.resolve_baseline(photo, "blur")
    with torch.no_grad():
        gap = net(photo)[0, 285] - net(base)[0, 285]
    torch.testing.assert_close(e.weights.sum(), gap, rtol=0, atol=1e-3)


def test_linear_model_recovered_by_shap_exactly_and_by_lime_in_ranking():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 24, 24, dtype=torch.float64, generator=g) * 0.5 + 0.5
    seg = superpixels(x[:1], "grid", n_segments=16)[0]
    means = x.mean(1).flatten(1) @ nn.functional.one_hot(seg.flatten(), 16).double() / (seg.numel() / 16)
    spaced = (torch.randperm(16, generator=g).double() - 7.5) / 4  # well-separated contributions
    coef = spaced / means[0]
    model = SuperpixelLinear(seg, coef)
    truth = coef * means  # contribution of superpixel k against a black baseline
    shap = see.kernel_shap(model, x, target=0, segments=seg, n_samples=100, seed=1)
    torch.testing.assert_close(shap.weights, truth, rtol=1e-8, atol=1e-10)  # linear: exact even when sampling
    lime = see.lime(model, x, target=0, segments=seg, n_samples=500, seed=1, score="logit")  # the linear output itself
    for w, t in zip(lime.weights, truth):
        assert torch.equal(w.argsort(), t.argsort())  # same ranking of all 16 superpixels
        torch.testing.assert_close(w, t, rtol=0.1, atol=0.02)  # ridge shrinks a little
    # The map carries each superpixel's weight on its pixels.
    assert torch.equal(lime.map[0, 0], lime.weights[0][seg])


def test_weighted_ridge_equals_scikit_learn():
    from sklearn.linear_model import Ridge

    g = torch.Generator().manual_seed(0)
    z = (torch.rand(200, 12, generator=g) < 0.5).double()
    y = z @ torch.randn(12, dtype=torch.float64, generator=g) + 0.1 * torch.randn(200, dtype=torch.float64, generator=g)
    w = torch.rand(200, dtype=torch.float64, generator=g)
    coef, b = weighted_ridge(z, y, w, alpha=1.0)
    ref = Ridge(alpha=1.0).fit(z.numpy(), y.numpy(), sample_weight=w.numpy())
    torch.testing.assert_close(coef, torch.from_numpy(ref.coef_))
    torch.testing.assert_close(b, torch.tensor(ref.intercept_, dtype=torch.float64))


@pytest.mark.parametrize("fn", [see.lime, see.kernel_shap])
def test_seeded_determinism_and_batch_invariance(fn):
    x, y = X_TEST, Y_TEST
    model, _ = see.zoo.load("lenet-digits")
    opts = dict(target=y[:2], n_samples=48, segments="grid", n_segments=16)
    a = fn(model, x[:2], seed=7, batch_size=5, **opts)
    b = fn(model, x[:2], seed=7, batch_size=16, **opts)
    c = fn(model, x[:2], seed=8, **opts)
    torch.testing.assert_close(a.weights, b.weights, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(a.weights, c.weights, atol=1e-3)
    # Each image alone gives the same as within the batch: every image has its own stream.
    for i in range(2):
        alone = fn(model, x[i:i + 1], seed=7, **opts | {"target": y[i:i + 1]})
        torch.testing.assert_close(alone.weights[0], a.weights[i], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", ["slic", "quickshift", "grid"])
def test_superpixels_cover_the_image_with_consecutive_homogeneous_labels(method):
    _, prep = see.zoo.load("efficientnet-lite0")
    x = torch.nn.functional.interpolate(prep(see.zoo.image("coffee")), size=(64, 64), mode="area")
    (seg,) = superpixels(x, method, n_segments=30)
    labels = seg.unique()
    assert torch.equal(labels, torch.arange(len(labels))) and len(labels) >= 4
    # Colour varies less inside a superpixel than over the image, and less than inside the
    # cells of a plain grid with as many labels (the grid itself only against the image).

    def within(seg):
        onehot = nn.functional.one_hot(seg.flatten()).double()
        pix = x[0].flatten(1).T.double()
        mean = onehot @ (onehot.T @ pix / onehot.sum(0)[:, None])
        return (((pix - mean) ** 2).sum() / ((pix - pix.mean(0)) ** 2).sum()).item()

    assert within(seg) < 0.5
    if method != "grid":
        assert within(seg) < 0.85 * within(superpixels(x, "grid", n_segments=len(labels))[0])


def test_lime_mask_keeps_exactly_the_top_k_superpixels():
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    seg = superpixels(x, "grid", n_segments=16)
    weights = torch.tensor([[0.5, -2.0, 0.1, 0.9, -0.3, 0.0, 0.7, 0.2, -0.1, 0.05, 0.3, -0.9, 0.4, 0.6, 0.01, 0.02]])
    e = see.SuperpixelExplanation(weights[:, seg[0]].unsqueeze(1), weights, seg, torch.zeros(1), [16])
    pic = torch.from_numpy(np.array(see.render.lime_mask(x, e, k=3))).permute(2, 0, 1) / 255
    shown = torch.isin(seg[0], torch.tensor([3, 6, 13]))  # the three largest positive weights
    assert torch.allclose(pic[:, shown], x[0][:, shown], atol=1 / 255)
    assert torch.allclose(pic[:, ~shown], torch.tensor(128 / 255), atol=1 / 255)
    both = torch.from_numpy(np.array(see.render.lime_mask(x, e, k=2, positive_only=False))).permute(2, 0, 1) / 255
    # The largest |weight| (superpixel 1, the 4×4 cell at rows 0-3, cols 4-7) is negative: kept,
    # with a red inner border where it meets other superpixels (left, right, bottom: 10 pixels).
    red = (both - torch.tensor([0.85, 0.1, 0.1]).view(3, 1, 1)).abs().amax(0) < 2 / 255
    assert red.sum() == 10 and red[0:4, 4:8].sum() == 10 and red[3, 4:8].all() and red[:, 4].sum() == 4
    assert torch.allclose(both[:, 1:3, 5:7], x[0][:, 1:3, 5:7], atol=1 / 255)
    assert torch.allclose(both[:, seg[0] == 3], x[0][:, seg[0] == 3], atol=1 / 255)
