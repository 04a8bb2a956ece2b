"""The rest of the library on tabular rows (and tokens where meaningful): the randomization test,
deletion/insertion over features and tokens, attacks with per-feature budgets and ranges, distillation,
and the image-only functions' one-line refusals."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import seethrough as see
from seethrough.testing import untouched
from seethrough.zoo import tabular as tab

sys.path.insert(0, str(Path(__file__).parent))
from transformer_fixtures import tiny_encoder, token_batch  # noqa: E402


@pytest.fixture(scope="module")
def cancer():
    model, _ = see.zoo.load("mlp-breast-cancer")
    x, y, names = see.zoo.breast_cancer("test")
    return model, x, y, names, tab.background(100)


def linear_boundary():
    torch.manual_seed(0)
    net = nn.Linear(5, 2).double().eval()
    bg = torch.randn(20, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return net, see.boundary(net, kind="tabular", background=bg)


# --- the model-parameter randomization test -------------------------------------------------------------


def test_randomization_on_the_tabular_mlp_destroys_the_explanation(cancer):
    model, x, _, names, bg = cancer
    b = see.boundary(model, kind="tabular", feature_names=names, background=bg)
    with untouched(model):
        r = see.sanity.randomization(b, x[:8], "grad-x-input", target=tab.benign_log_odds, progress=False)
    assert r.layers == ["fc3", "fc2", "fc1"] and r.metrics == ("spearman", "spearman_abs")
    assert r.original.shape == (8, 30) and r.maps.shape == (3, 8, 30)
    # the map of the trained model, recomputed here, is the original
    assert torch.allclose(r.original, see.attribute(b, x[:8], "grad-x-input", target=tab.benign_log_odds))
    mean = r.mean("spearman_abs")
    assert mean[-1] < 0.6, mean  # a fully random network explains something else
    with pytest.raises(ValueError, match="^metric\\(s\\) ssim compare pictures"):
        see.sanity.randomization(b, x[:2], "saliency", metrics=("ssim",), progress=False)


# --- deletion and insertion over features and tokens --------------------------------------------------------


def test_feature_deletion_and_insertion_follow_the_ranking_hand_computed():
    net, b = linear_boundary()
    net.requires_grad_(False)
    x = torch.randn(3, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    a = see.attribute(b, x, "kernel-shap", target=1, n_samples=64, progress=False)  # = w (x − mean bg), exact
    mean = b.background.mean(0)
    with untouched(net):
        d = see.metrics.deletion(b, x, a, 1, score="logit", n_random=2, progress=False)
        ins = see.metrics.insertion(b, x, a, 1, score="logit", n_random=0, progress=False)
    assert d.curve.shape == (3, 6) and d.options["kind"] == "tabular"
    for i in range(3):
        order = torch.argsort(a[i], descending=True, stable=True)
        z, w = x[i].clone(), mean.clone()
        ref_d, ref_i = [float(net(z)[1])], [float(net(w)[1])]
        for j in order:
            z[j], w[j] = mean[j], x[i, j]
            ref_d.append(float(net(z)[1]))
            ref_i.append(float(net(w)[1]))
        assert torch.allclose(d.curve[i], torch.tensor(ref_d, dtype=torch.float64), atol=1e-12)
        assert torch.allclose(ins.curve[i], torch.tensor(ref_i, dtype=torch.float64), atol=1e-12)
    # removing the largest contributions first falls faster than a random order on every row
    assert bool((d.score < d.random_score).all())


def test_token_deletion_masks_the_top_tokens_and_never_the_padding():
    net = tiny_encoder().double()
    ids, mask = token_batch(3)
    b = see.boundary(net, kind="tokens", extra={"attention_mask": mask}, pad_id=0, mask_id=1)
    a = see.attribute(b, ids, "occlusion", target=0, progress=False)
    with untouched(net):
        d = see.metrics.deletion(b, ids, a, 0, score="probability", n_random=1, progress=False)
    assert d.curve.shape == (3, 8)
    for i in range(3):
        real = mask[i].bool()
        order = torch.argsort(a[i].masked_fill(~real, -float("inf")), descending=True, stable=True)
        z = ids[i : i + 1].clone()
        for k in range(1, 8):
            j = order[k - 1]
            if real[j]:
                z[0, j] = 1
            with torch.no_grad():
                p = net(z, attention_mask=mask[i : i + 1])["logits"].softmax(1)[0, 0]
            assert float(d.curve[i, k]) == pytest.approx(float(p), abs=1e-12)


# --- attacks with per-feature budgets and ranges -------------------------------------------------------------


def test_pgd_on_rows_flips_predictions_within_the_feature_budget_and_ranges(cancer):
    model, x, y, names, _ = cancer
    train, _, _ = see.zoo.breast_cancer("train")
    every, _, _ = see.zoo.breast_cancer("all")
    ranges = torch.stack([every.amin(0), every.amax(0)])  # the data's own range of each measurement
    b = see.boundary(model, kind="tabular", feature_names=names, ranges=ranges)
    rows = x[:40]
    eps = 0.3 * train.std(0)  # a third of a standard deviation per feature, in the features' own units
    with untouched(model):
        r = see.attack(b, rows, "pgd", eps=eps, steps=20, progress=False)
    with see.hooks(model), torch.no_grad():
        clean, adv = model(rows).argmax(1), model(r.x_adv).argmax(1)
    assert torch.equal(r.clean_class, clean) and torch.equal(r.pred, adv)
    assert bool(r.success.any()) and torch.equal(r.success, adv != clean)  # predictions that flip
    # the budget, per feature (up to float32 rounding of values as large as 2500)
    assert bool(((r.x_adv - rows).abs() <= eps * (1 + 1e-6) + 1e-6 * rows.abs()).all())
    assert bool(((r.x_adv >= ranges[0]) & (r.x_adv <= ranges[1])).all())  # clamped to the ranges
    assert torch.allclose(r.linf, (r.x_adv - rows).abs().amax(1))  # feature units, not pixel levels
    f = see.attack(b, rows, "fgsm", eps=eps, progress=False)
    assert int(f.success.sum()) <= int(r.success.sum())  # one step does no better than 20 here
    with pytest.raises(ValueError, match="^attack 'ascent' is defined for images"):
        see.attack(b, rows, "ascent")
    with pytest.raises(ValueError, match="^eps on tabular rows is in the features' own units"):
        see.attack(b, rows, "pgd", eps=torch.ones(3))
    with pytest.raises(ValueError, match="^x has 29 features per row but the boundary names 30"):
        see.attack(b, rows[:, :29], "pgd", eps=1.0)


# --- distillation ------------------------------------------------------------------------------------------------


def test_distill_on_the_tabular_model_agrees_with_the_model(cancer):
    model, _, _, names, bg = cancer
    x, y, _ = see.zoo.breast_cancer("all")
    b = see.boundary(model, kind="tabular", feature_names=names, background=bg)
    with untouched(model):
        s = see.distill(b, (x, y), depth=4)
    with see.hooks(model), torch.no_grad():
        pred = model(x).argmax(1)
    assert s.fidelity >= 0.9
    assert float((s.predict(x) == pred).double().mean()) >= 0.9  # on every row, computed here
    with pytest.raises(ValueError, match="^x has 5 features per row"):
        see.distill(b, (x[:, :5], y))


# --- image-only functions refuse rows in one line ------------------------------------------------------------------


def test_image_only_curves_refuse_rows():
    net, b = linear_boundary()
    x = torch.zeros(2, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match="^pixel_flipping curves over pixels are defined for image inputs"):
        see.metrics.pixel_flipping(b, x, torch.zeros(2, 5))
    with pytest.raises(ValueError, match="^deletion/insertion on tabular rows replace a feature by the background mean"):
        see.metrics.deletion(nn.Linear(5, 2), torch.zeros(2, 5), torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"^attribution must be one value per feature, shape \(2, 5\)"):
        see.metrics.deletion(b, x, torch.zeros(2, 4))


def test_randomization_on_token_ids_with_an_attention_mask():
    net = tiny_encoder().train()
    ids, mask = token_batch(3)
    b = see.boundary(net, kind="tokens", extra={"attention_mask": mask}, pad_id=0)
    with untouched(net):
        r = see.sanity.randomization(b, ids, "occlusion", target=0, mode="independent", layers=["classifier", "blocks.1.ffn.0"],
                                     progress=False)
    assert r.layers == ["classifier", "blocks.1.ffn.0"] and r.maps.shape == (2, 3, 7)
    assert torch.allclose(r.original, see.attribute(b, ids, "occlusion", target=0, progress=False))
    assert bool((r.maps[:, mask == 0] == 0).all())  # padding is still never scored
    assert not torch.allclose(r.maps[0], r.original)  # a random classifier explains something else


@pytest.mark.parametrize("call,what", [
    (lambda b, x, a: see.metrics.road(b, x, a), "ROAD curves"),
    (lambda b, x, a: see.metrics.max_sensitivity(b, x, "saliency"), "max-sensitivity perturbations"),
    (lambda b, x, a: see.metrics.infidelity(b, x, a), "infidelity perturbations"),
    (lambda b, x, a: see.metrics.region_perturbation(b, x, a), "region_perturbation curves"),
])
def test_pixel_metrics_refuse_a_boundary_of_rows_in_one_line(call, what):
    net, b = linear_boundary()
    with untouched(net, allow_raise=ValueError):
        with pytest.raises(ValueError, match=rf"^{what} .*are defined for image inputs \(N, C, H, W\); this boundary's "
                                             r"input is 'tabular' \(\(N, features\) rows\)$"):
            call(b, torch.zeros(2, 5, dtype=torch.float64), torch.zeros(2, 5, dtype=torch.float64))
