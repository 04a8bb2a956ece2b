"""Faithfulness and localisation metrics: optimal orderings on a linear model, batched curves equal a
one-at-a-time loop, infidelity and max-sensitivity axioms, ROAD's imputation equations, the pointing
game on mosaics, and on EfficientNet-Lite0 with labelled photos: Grad-CAM and RISE beat random."""
import math

import pytest
import torch
from torch import nn

import seethrough as see
from seethrough.metrics.curves import unit_masks, unit_values
from seethrough.testing import untouched


def linear_model(seed=0, side=6, classes=3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(side * side, classes)).double().eval()


@pytest.fixture(scope="module")
def lenet():
    model, _ = see.zoo.load("lenet-digits")
    x, y = see.zoo.digits("test")
    return model, x[:4], y[:4]


def test_deletion_and_insertion_of_the_exact_contributions_beat_every_random_ordering():
    model = linear_model()
    x = torch.rand(2, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0, 2])
    w = model[1].weight[t].view(2, 1, 6, 6).detach()
    contrib = w * x  # exact contribution of each pixel to the logit with a zero baseline
    opts = dict(steps=9, score="logit", batch_size=16, progress=False)
    with untouched(model):
        d = see.metrics.deletion(model, x, contrib, t, n_random=15, **opts)
        i = see.metrics.insertion(model, x, contrib, t, start="black", n_random=15, **opts)
    for seed in range(15):
        rd = see.metrics.deletion(model, x, contrib, t, n_random=1, seed=1000 + seed, **opts).random_score
        ri = see.metrics.insertion(model, x, contrib, t, start="black", n_random=1, seed=1000 + seed, **opts).random_score
        assert (d.score <= rd + 1e-12).all() and (i.score >= ri - 1e-12).all()
    assert (d.score < d.random_score).all() and (i.score > i.random_score).all()
    # Deletion ends at the baseline's score (the bias), insertion ends at f(x).
    torch.testing.assert_close(d.curve[:, -1], model[1].bias[t].detach())
    torch.testing.assert_close(i.curve[:, -1], model(x).gather(1, t[:, None])[:, 0].detach())


def reference_curve(model, x, ranks, start, end, target, steps, patch, score):
    """One image per forward: the definition of a perturbation curve."""
    n, u = ranks.shape
    out = torch.zeros(n, steps + 1, dtype=x.dtype)
    for i in range(n):
        for k in range(steps + 1):
            m = unit_masks(ranks[i:i + 1], torch.tensor([math.ceil(k * u / steps)]), x.shape[-2:], patch)
            img = torch.where(m, end[i:i + 1], start[i:i + 1])
            with torch.no_grad():
                o = model(img)
            o = o.softmax(1) if score == "probability" else o
            out[i, k] = o[0, target[i]]
    return out


@pytest.mark.parametrize("metric,patch", [("deletion", 1), ("insertion", 3), ("pixel_flipping", 2),
                                          ("region_perturbation", 4)])
def test_every_batched_curve_equals_a_one_at_a_time_loop(lenet, metric, patch):
    model, x, y = lenet
    a = see.attribute(model, x, "grad-x-input", target=y)
    fn = getattr(see.metrics, metric)
    with untouched(model):
        r = fn(model, x, a, y, patch=patch, steps=7, n_random=0, batch_size=5, progress=False)
    values = unit_values(a.sum(1), patch)
    ranks = torch.sort(values, dim=1, descending=True, stable=True).indices
    if metric == "insertion":
        start, end = see.attribution.common.make_baseline(x, "blur"), x
    elif metric == "region_perturbation":
        # every image's own stream, seeded 0: the same noise image for each (per-sample streams)
        start, end = x, torch.rand(x.shape[1:], generator=torch.Generator().manual_seed(0)).expand(x.shape)
    else:
        start, end = x, torch.zeros_like(x)
    ref = reference_curve(model, x, ranks, start, end, y, 7, patch, "probability")
    torch.testing.assert_close(r.curve, ref, rtol=1e-5, atol=1e-6)
    again = fn(model, x, a, y, patch=patch, steps=7, n_random=2, seed=0, batch_size=3, progress=False)
    same = fn(model, x, a, y, patch=patch, steps=7, n_random=2, seed=0, batch_size=3, progress=False)
    other = fn(model, x, a, y, patch=patch, steps=7, n_random=2, seed=1, batch_size=3, progress=False)
    assert torch.equal(again.random, same.random)  # same seed → identical curves
    assert not torch.allclose(again.random, other.random)
    torch.testing.assert_close(again.curve, r.curve, rtol=1e-5, atol=1e-6)  # batch size changes only round-off


def test_lerf_order_is_the_reverse_ranking_and_aopc_matches_its_definition(lenet):
    model, x, y = lenet
    a = see.attribute(model, x, "grad-x-input", target=y)
    morf = see.metrics.pixel_flipping(model, x, a, y, steps=8, n_random=0, progress=False)
    lerf = see.metrics.pixel_flipping(model, x, a, y, order="lerf", steps=8, n_random=0, progress=False)
    torch.testing.assert_close(morf.score, (morf.curve[:, :1] - morf.curve).mean(1))
    assert (morf.score > lerf.score).all()  # removing the evidence first hurts more than removing the rest
    neg = see.metrics.pixel_flipping(model, x, -a, y, order="lerf", steps=8, n_random=0, progress=False)
    torch.testing.assert_close(neg.curve[:, [0, -1]], morf.curve[:, [0, -1]])


def test_infidelity_is_zero_for_the_gradient_of_a_linear_model_and_scale_free_with_optimal_scaling():
    model = linear_model(seed=2)
    x = torch.rand(3, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    g = see.attribute(model, x, "saliency", target=1, abs=False)
    for kind in ("square", "gaussian"):
        with untouched(model):
            r = see.metrics.infidelity(model, x, g, 1, perturbation=kind, n_samples=16, optimal_scaling=False,
                                       progress=False)
        assert r.values.abs().max() < 1e-20
    rough = torch.rand(x.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    one = see.metrics.infidelity(model, x, rough, 1, n_samples=32, progress=False).values
    big = see.metrics.infidelity(model, x, 7.5 * rough, 1, n_samples=32, progress=False).values
    torch.testing.assert_close(one, big)
    for kind in ("square", "gaussian"):  # seeded per sample: the batch size does not change the draws
        a = see.metrics.infidelity(model, x, rough, 1, perturbation=kind, n_samples=32, batch_size=5, progress=False)
        b = see.metrics.infidelity(model, x, rough, 1, perturbation=kind, n_samples=32, batch_size=64, progress=False)
        torch.testing.assert_close(a.values, b.values)
    raw = see.metrics.infidelity(model, x, rough, 1, n_samples=32, optimal_scaling=False, progress=False).values
    raw_big = see.metrics.infidelity(model, x, 7.5 * rough, 1, n_samples=32, optimal_scaling=False, progress=False).values
    assert (raw_big > raw).all() and (one <= raw + 1e-12).all()  # β is optimal: never worse than β = 1


def test_max_sensitivity_is_zero_for_a_constant_explainer_and_smoothgrad_is_steadier(lenet):
    model, x, y = lenet
    x, y = x[:2], y[:2]
    with untouched(model):
        const = see.metrics.max_sensitivity(model, x, lambda m, x, t: torch.ones_like(x), y, progress=False)
        grad = see.metrics.max_sensitivity(model, x, "saliency", y, radius=0.05, n_samples=6, progress=False)
    assert torch.equal(const.values, torch.zeros(2, dtype=torch.float64))
    smooth = see.metrics.max_sensitivity(model, x, "smoothgrad", y, radius=0.05, n_samples=6, progress=False,
                                         relative_noise=0.15, options={"n_samples": 8})
    assert smooth.values.mean() < 0.8 * grad.values.mean()
    assert (grad.values > 0).all()


def test_road_keeps_a_constant_image_constant_and_imputed_pixels_satisfy_the_neighbour_equations():
    const = torch.full((3, 9, 7), 0.42)
    gen = torch.Generator().manual_seed(0)
    mask = torch.rand(9, 7, generator=gen) < 0.6
    torch.testing.assert_close(see.metrics.impute(const, mask), const)
    x = torch.rand(2, 9, 7, generator=gen, dtype=torch.float64)
    out = see.metrics.impute(x, mask)
    assert torch.equal(out[:, ~mask], x[:, ~mask])
    for r, q in mask.nonzero().tolist():
        num, den = 0.0, 0.0
        for dr in (-1, 0, 1):
            for dq in (-1, 0, 1):
                if (dr or dq) and 0 <= r + dr < 9 and 0 <= q + dq < 7:
                    wt = 1 / 12 if dr and dq else 1 / 6
                    num, den = num + wt * out[:, r + dr, q + dq], den + wt
        torch.testing.assert_close(out[:, r, q], num / den, rtol=1e-10, atol=1e-10)
    noisy = see.metrics.impute(x, mask, noise_std=0.01, seed=1)
    assert 0.005 < (noisy - out)[:, mask].std() < 0.02


def test_road_curve_on_lenet_morf_drops_faster_than_lerf(lenet):
    model, x, y = lenet
    a = see.attribute(model, x[:2], "grad-x-input", target=y[:2])
    with untouched(model):
        morf = see.metrics.road(model, x[:2], a, y[:2], fractions=(0.1, 0.3, 0.5), n_random=0, progress=False)
    lerf = see.metrics.road(model, x[:2], a, y[:2], order="lerf", fractions=(0.1, 0.3, 0.5), n_random=0, progress=False)
    assert morf.score.mean() < lerf.score.mean()
    assert torch.equal(morf.curve[:, 0], lerf.curve[:, 0])


def test_mosaic_tiles_have_distinct_labels_and_the_mask_is_the_target_tile():
    x = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([5, 1, 2, 3, 1, 4])
    m = see.metrics.mosaic(x, y, grid=2, n_samples=5, seed=0)
    small = nn.functional.interpolate(x, size=(16, 16), mode="area")
    for k in range(5):
        assert len(set(y[m.sources[k]].tolist())) == 4
        r, q = divmod(int(m.tile[k]), 2)
        tile = m.images[k, :, r * 16:(r + 1) * 16, q * 16:(q + 1) * 16]
        torch.testing.assert_close(tile, small[m.sources[k, m.tile[k]]])
        assert m.targets[k] == y[m.sources[k, m.tile[k]]]
        assert m.masks[k, 0, r * 16:(r + 1) * 16, q * 16:(q + 1) * 16].all() and m.masks[k].sum() == 256
    again = see.metrics.mosaic(x, y, grid=2, n_samples=5, seed=0)
    assert torch.equal(again.images, m.images)


def test_pointing_game_hits_inside_the_mask_and_tolerance_widens_it():
    a = torch.zeros(2, 1, 10, 10)
    a[0, 0, 2, 2] = 1
    a[1, 0, 7, 7] = 1
    mask = torch.zeros(2, 1, 10, 10, dtype=torch.bool)
    mask[:, :, :5, :5] = True
    r = see.metrics.pointing_game(a, mask)
    assert r.values.tolist() == [1.0, 0.0] and r.baseline.tolist() == [0.25, 0.25]
    assert see.metrics.pointing_game(a, mask, tolerance=3).values.tolist() == [1.0, 1.0]


@pytest.mark.parametrize("call,match", [
    (lambda m, x, a: see.metrics.deletion(m, x, a[:, :, :3], steps=4), "does not fit"),
    (lambda m, x, a: see.metrics.deletion(m, x, a, steps=0), "steps"),
    (lambda m, x, a: see.metrics.insertion(m, x, a, steps=10_000), "more than"),
    (lambda m, x, a: see.metrics.pixel_flipping(m, x, a, order="up"), "order"),
    (lambda m, x, a: see.metrics.road(m, x, a, fractions=(0.5, 1.0)), "fractions"),
    (lambda m, x, a: see.metrics.infidelity(m, x, a, perturbation="blob"), "perturbation"),
    (lambda m, x, a: see.metrics.mosaic(x, torch.arange(len(x)), grid=3), "grid"),
    (lambda m, x, a: see.metrics.mosaic(x[:0], torch.arange(0)), "empty"),
    (lambda m, x, a: see.metrics.max_sensitivity(m, x, "saliency", radius=0), "radius"),
])
def test_bad_input_is_one_clear_error_and_the_model_stays_untouched(lenet, call, match):
    model, x, y = lenet
    a = torch.rand(x.shape)
    with untouched(model, allow_raise=ValueError):
        with pytest.raises(ValueError, match=match):
            call(model, x, a)


@pytest.fixture(scope="module")
def photos():
    """efficientnet-lite0 and the labelled photos it classifies correctly among the first eight, at 128×128."""
    model, _ = see.zoo.load("efficientnet-lite0")
    x, y = see.zoo.imagenet_samples(size=128, n=8)
    with torch.no_grad():
        right = (model(x).argmax(1) == y).nonzero()[:, 0]
    assert len(right) >= 3
    return model, x[right[:3]], y[right[:3]]


@pytest.mark.parametrize("method,options", [("gradcam", {}), ("rise", {"n_samples": 120, "seed": 0})])
def test_gradcam_and_rise_beat_the_random_ranking_on_labelled_photos(photos, method, options):
    model, x, y = photos
    a = see.attribute(model, x, method, target=y, **options)
    opts = dict(steps=16, patch=16, progress=False)
    with untouched(model):
        d = see.metrics.deletion(model, x, a, y, baseline="blur", **opts)
        i = see.metrics.insertion(model, x, a, y, **opts)
    # Most photos, not every one: Grad-CAM at 4×4 cells misses the folding chair (class 559) on deletion.
    assert (d.score < d.random_score).sum() >= 2 and (i.score > i.random_score).sum() >= 2
    assert i.score.mean() > i.random_score.mean() + 0.1


def test_gradcam_points_at_the_right_tile_of_mosaics_well_above_chance():
    model, _ = see.zoo.load("efficientnet-lite0")
    xs, ys = see.zoo.imagenet_samples(size=128)
    m = see.metrics.mosaic(xs, ys, grid=2, n_samples=12, seed=0)
    with untouched(model):
        a = see.attribute(model, m.images, "gradcam", target=m.targets)
    hits = see.metrics.pointing_game(a, m.masks)
    assert hits.baseline.tolist() == [0.25] * 12
    assert hits.mean() >= 0.6  # chance is 0.25
