"""The building blocks against independent float64 references: priors, SSIM, the Fourier
parameterization, and differentiable transforms."""
import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.metrics import structural_similarity

from seethrough.optimize import param as P
from seethrough.optimize import priors as R
from seethrough.optimize import transforms as T
from seethrough.optimize.similarity import ssim


def _img(*shape, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_total_variation_equals_a_handwritten_loop():
    x = _img(2, 3, 6, 5)
    for beta in (2.0, 1.0):
        ref = []
        for n in range(2):
            acc, count = 0.0, 0
            for c in range(3):
                for i in range(5):
                    for j in range(4):
                        dx = float(x[n, c, i, j + 1] - x[n, c, i, j])
                        dy = float(x[n, c, i + 1, j] - x[n, c, i, j])
                        d2 = dx * dx + dy * dy
                        acc += d2 if beta == 2 else (d2 + 1e-8) ** (beta / 2)
                        count += 1
            ref.append(acc / count)
        assert torch.allclose(R.total_variation(x, beta), torch.tensor(ref, dtype=torch.float64), atol=1e-12)


def test_l2_equals_a_handwritten_reference():
    x = _img(2, 3, 4, 4)
    ref = [float(((x[n] - 0.5) ** 2).sum()) / 48 for n in range(2)]
    assert torch.allclose(R.l2(x), torch.tensor(ref, dtype=torch.float64), atol=1e-14)


def test_edge_energy_equals_a_scipy_pyramid_reference():
    x = _img(2, 2, 24, 20)
    for scales, sigma in [(1, 1.0), (3, 1.0), (2, 0.7)]:
        radius = int(np.ceil(2 * sigma))
        ref = []
        for n in range(2):
            total = 0.0
            for c_img in [x[n].numpy()]:
                d = c_img
                for s in range(scales):
                    if s:
                        c, h, w = d.shape
                        d = d[:, : h // 2 * 2, : w // 2 * 2].reshape(c, h // 2, 2, w // 2, 2).mean((2, 4))
                        # (average of each 2×2 block: δ halves the resolution)
                    blurred = np.stack([ndimage.gaussian_filter(ch, sigma, mode="mirror", truncate=radius / sigma) for ch in d])
                    total += ((d - blurred) ** 2).mean()
            ref.append(total)
        got = R.edge_energy(x, scales=scales, sigma=sigma)
        assert np.allclose(got.numpy(), ref, atol=1e-12), (scales, sigma)
    with pytest.raises(ValueError, match="fewer scales"):
        R.edge_energy(torch.zeros(1, 1, 4, 4), scales=4)


def test_ssim_equals_scikit_image():
    a = _img(2, 3, 24, 24, seed=1)
    b = (a + 0.2 * _img(2, 3, 24, 24, seed=2)).clamp(0, 1)
    ref = [structural_similarity(a[i].numpy(), b[i].numpy(), data_range=1.0, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, channel_axis=0) for i in range(2)]
    assert np.allclose(ssim(a, b).numpy(), ref, atol=1e-10)
    gray = structural_similarity(a[0, 0].numpy(), b[0, 0].numpy(), data_range=1.0, gaussian_weights=True,
                                 sigma=1.5, use_sample_covariance=False)
    assert abs(ssim(a[:1, :1], b[:1, :1]).item() - gray) < 1e-10


@pytest.mark.parametrize("kind", ["pixel", "fourier"])
@pytest.mark.parametrize("shape", [(2, 3, 16, 16), (1, 3, 15, 17), (2, 1, 12, 9)])
def test_parameterizations_round_trip(kind, shape):
    p = P.make(kind, shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x = 0.05 + 0.9 * _img(*shape)
    p.set_image(x)
    assert torch.allclose(p.image(), x, atol=1e-10)
    again = P.make(kind, shape, dtype=torch.float64)
    assert torch.allclose(again.encode(p.image()), p.raw.detach(), atol=1e-8)


def test_fourier_scaling_is_one_over_frequency():
    # A unit step on one spectral coefficient moves the image by ∝ 1/f: the DC step is
    # max(h, w) times the Nyquist-corner step (before the sigmoid and colour mixing).
    p = P.fourier((1, 1, 16, 16), dtype=torch.float64, decorrelate=False)
    with torch.no_grad():
        p.raw.zero_()
    base = torch.logit(p.image())
    amplitude = {}
    for (fy, fx) in [(0, 0), (8, 8), (0, 4)]:
        with torch.no_grad():
            p.raw.zero_()
            p.raw[0, 0, fy, fx, 0] = 1.0
        amplitude[(fy, fx)] = (torch.logit(p.image()) - base).abs().max().item()
    assert amplitude[(0, 0)] / amplitude[(8, 8)] == pytest.approx(16 * (0.5 ** 2 + 0.5 ** 2) ** 0.5, rel=1e-9)
    assert amplitude[(0, 0)] / amplitude[(0, 4)] == pytest.approx(16 * 0.25 / 2, rel=1e-9)


def test_fourier_colour_decorrelation_is_invertible_and_mixes_channels():
    p = P.fourier((1, 3, 8, 8), dtype=torch.float64)
    with torch.no_grad():
        p.raw.zero_()
        p.raw[0, 0, 0, 0, 0] = 1.0  # DC of the first decorrelated channel only
    x = p.image()
    assert (x[0, :, 0, 0] - 0.5).abs().min() > 1e-3  # it reaches all three colour channels


@pytest.mark.parametrize("make", [lambda: T.pad(2), lambda: T.jitter(3), lambda: T.scale([0.8, 1.25]),
                                  lambda: T.rotate([17.0]), lambda: T.standard(16)])
def test_transforms_are_differentiable(make):
    t = make()
    x = _img(1, 2, 12, 12).requires_grad_()
    assert torch.autograd.gradcheck(lambda z: t(z, torch.Generator().manual_seed(5)), (x,), eps=1e-6, atol=1e-5)


def test_transforms_are_seeded_and_jitter_is_a_crop():
    x = torch.arange(100.0).view(1, 1, 10, 10)
    a = T.jitter(4)(x, torch.Generator().manual_seed(0))
    b = T.jitter(4)(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape[-2:] == (6, 6)
    oy, ox = int(a[0, 0, 0, 0]) // 10, int(a[0, 0, 0, 0]) % 10
    assert torch.equal(a, x[..., oy:oy + 6, ox:ox + 6])
    with pytest.raises(ValueError, match="jitter of 10 px is too large"):
        T.jitter(10)(x, torch.Generator())


def test_bad_prior_and_transform_options_are_clear():
    with pytest.raises(ValueError, match="unknown prior 'tvv'"):
        R.penalty({"tvv": 1.0})
    with pytest.raises(ValueError, match="weight of prior 'tv'"):
        R.penalty({"tv": float("nan")})
    with pytest.raises(ValueError, match="transforms must be 'standard'"):
        T.resolve("jiggle", 32)
    with pytest.raises(ValueError, match="unknown parameterization 'fft'"):
        P.make("fft", (1, 3, 8, 8))


def test_handwritten_adam_matches_torch_optim():
    from seethrough.optimize.engine import _adam

    x = torch.randn(5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ref = x.clone().requires_grad_()
    opt = torch.optim.Adam([ref], lr=0.1)
    step = _adam(x, 0.1)
    for k in range(5):
        g = torch.sin(x * (k + 1))
        ref.grad = torch.sin(ref.detach() * (k + 1))
        opt.step()
        step(g)
    assert torch.allclose(x, ref.detach(), atol=1e-12)
