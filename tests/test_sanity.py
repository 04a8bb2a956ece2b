"""Sanity checks (Adebayo et al., 2018) on lenet-digits: the gradient decorrelates as layers are
randomised, guided back-propagation does not, Grad-CAM does once the layers above it are random;
layers go in execution order; independent mode touches one layer; the permuted-label twin; the
similarity scores equal SciPy / scikit-image."""
import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from skimage.feature import hog
from skimage.metrics import structural_similarity
from torch import nn

import seethrough as see
from seethrough.sanity.similarity import normalize_map
from seethrough.testing import untouched


@pytest.fixture(scope="module")
def lenet():
    model, _ = see.zoo.load("lenet-digits")
    x, y = see.zoo.digits("test")
    return model, x[:12], y[:12]


@pytest.fixture(scope="module")
def cascades(lenet):
    model, x, y = lenet
    with untouched(model):
        grad = see.sanity.randomization(model, x, "saliency", y, metrics=("spearman", "spearman_abs"), progress=False,
                                       abs=False)
        guided = see.sanity.randomization(model, x, "guided-backprop", y, metrics=("spearman_abs",), progress=False)
    return grad, guided


def test_the_gradient_decorrelates_as_layers_are_randomised(cascades):
    grad, _ = cascades
    assert grad.layers == ["fc3", "fc2", "fc1", "conv2", "conv1"]
    signed, absolute = grad.mean("spearman"), grad.mean("spearman_abs")
    assert abs(signed[-1]) < 0.1  # every layer random: no rank correlation left in the signed gradient
    assert absolute[-1] < absolute[0] - 0.1  # |gradient| keeps some input structure, but loses more at each stage
    assert (absolute[1:] <= absolute[:-1] + 0.05).all()


def test_guided_backprop_stays_correlated_after_the_top_layers_are_random(cascades):
    grad, guided = cascades
    g, s = guided.mean("spearman_abs"), grad.mean("spearman_abs")
    assert (g[:2] > 0.8).all()  # fc3 and fc2 random: the map barely changes (the paper's finding)
    assert (g[:2] > s[:2] + 0.15).all()  # a guided backprop falling back to the plain gradient would fail here


def test_gradcam_decorrelates_once_the_layers_above_its_target_layer_are_random(lenet):
    model, x, y = lenet
    with untouched(model):
        r = see.sanity.randomization(model, x, "gradcam", y, layers=["fc3", "fc2", "fc1"], metrics=("spearman",),
                                     progress=False, layer="relu2")
    assert r.layers == ["fc3", "fc2", "fc1"]
    assert r.mean("spearman")[-1].abs() < 0.3
    assert not torch.allclose(r.maps[-1], r.original)


def snapshots():
    """An explainer that records the parameters of the model it explains, then returns its gradient."""
    seen = []

    def explainer(model, x, target):
        seen.append({k: v.clone() for k, v in model.state_dict().items()})
        return see.attribute(model, x, "saliency", target=target)

    return seen, explainer


def changed_layers(state, reference):
    return sorted({k.rsplit(".", 1)[0] for k in state if not torch.equal(state[k], reference[k])})


def test_independent_mode_changes_one_layer_and_leaves_the_others_bit_identical(lenet):
    model, x, y = lenet
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    seen, explainer = snapshots()
    with untouched(model):
        r = see.sanity.randomization(model, x[:3], explainer, y[:3], mode="independent", metrics=("spearman",),
                                     progress=False)
    for layer, state in zip(r.layers, seen[1:]):
        assert changed_layers(state, reference) == [layer]
    seen_c, explainer_c = snapshots()
    c = see.sanity.randomization(model, x[:3], explainer_c, y[:3], metrics=("spearman",), progress=False)
    for step, state in enumerate(seen_c[1:]):
        assert changed_layers(state, reference) == sorted(c.layers[: step + 1])
    # The same layer gets the same random draw in both modes, and the same seed the same result.
    assert torch.equal(seen_c[1]["fc3.weight"], seen[1]["fc3.weight"])
    again = see.sanity.randomization(model, x[:3], explainer_c, y[:3], metrics=("spearman",), progress=False)
    assert torch.equal(again.scores, c.scores) and torch.equal(again.maps, c.maps)
    other = see.sanity.randomization(model, x[:3], explainer_c, y[:3], metrics=("spearman",), seed=1, progress=False)
    assert not torch.equal(other.maps, c.maps)


class DefinedBackwards(nn.Module):
    """The head is defined first but runs last: definition order is not execution order."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(24, 2)
        self.norm = nn.BatchNorm2d(6)
        self.body = nn.Conv2d(1, 6, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(2)

    def forward(self, x):
        return self.head(self.pool(self.norm(self.body(x))).flatten(1))


def test_layers_are_randomised_from_the_output_down_in_execution_order_batchnorm_statistics_included():
    torch.manual_seed(0)
    model = DefinedBackwards().eval()
    with torch.no_grad():
        model.norm.running_mean.uniform_(-1, 1)
        model.norm.running_var.uniform_(0.5, 2)
    x = torch.rand(2, 1, 6, 6)
    seen, explainer = snapshots()
    with untouched(model):
        r = see.sanity.randomization(model, x, explainer, 0, mode="independent", metrics=("spearman",), progress=False)
    assert r.layers == ["head", "norm", "body"]
    bn = seen[2]
    assert not torch.equal(bn["norm.running_mean"], model.norm.running_mean)
    assert torch.equal(bn["norm.running_mean"].sort().values, model.norm.running_mean.sort().values)  # a shuffle


def test_the_permuted_label_twin_fits_its_labels_is_at_chance_and_explains_differently(lenet):
    from seethrough.zoo.lenet import digit_accuracy
    from seethrough.zoo.twins import permuted_labels

    twin, _ = see.zoo.load("lenet-digits", labels="permuted")
    x_train, y_train = see.zoo.digits("train")
    with torch.no_grad():
        fit = (twin(x_train).argmax(1) == permuted_labels(y_train)).float().mean().item()
    assert fit > 0.9  # random labels memorised (chance would be 0.1)
    assert digit_accuracy(twin, "test") < 0.2
    model, x, y = lenet
    with untouched(model), untouched(twin):
        r = see.sanity.data_randomization(model, twin, x, "saliency", y, metrics=("spearman",), abs=False)
    assert r.scores.nanmean() < 0.3
    assert not torch.allclose(r.original, r.randomized)
    with pytest.raises(ValueError, match="only 'lenet-digits'"):
        see.zoo.load("efficientnet-lite0", labels="permuted")


def test_similarities_equal_scipy_and_scikit_image_computed_directly():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 3, 24, 24, generator=gen), torch.randn(2, 3, 24, 24, generator=gen)
    b = b + a  # correlated
    for i in range(2):
        sa, sb = normalize_map(a[i], False), normalize_map(b[i], False)
        aa, ab = normalize_map(a[i], True), normalize_map(b[i], True)
        assert see.sanity.similarity(a, b, "spearman")[i].item() == pytest.approx(spearmanr(sa.ravel(), sb.ravel())[0])
        assert see.sanity.similarity(a, b, "spearman_abs")[i].item() == pytest.approx(spearmanr(aa.ravel(), ab.ravel())[0])
        assert see.sanity.similarity(a, b, "ssim")[i].item() == pytest.approx(
            structural_similarity(aa, ab, data_range=1.0, win_size=7))
        h = [hog(m, orientations=9, pixels_per_cell=(3, 3), cells_per_block=(2, 2)) for m in (aa, ab)]
        assert see.sanity.similarity(a, b, "hog")[i].item() == pytest.approx(np.corrcoef(*h)[0, 1])
    # The paper's preprocessing by hand: channel sum, |·|, clip at the 99th percentile.
    m = np.abs(a[0].double().sum(0).numpy())
    np.testing.assert_allclose(normalize_map(a[0], True), np.clip(m / np.percentile(m, 99), 0, 1))
    assert see.sanity.similarity(a, -a, "spearman").tolist() == pytest.approx([-1.0, -1.0])
    assert see.sanity.similarity(a, -a, "spearman_abs").tolist() == pytest.approx([1.0, 1.0])


def test_a_constant_map_has_an_undefined_similarity_not_zero():
    a = torch.rand(1, 1, 8, 8)
    with pytest.warns(RuntimeWarning, match="undefined"):
        s = see.sanity.similarity(a, torch.zeros_like(a), "spearman")
    assert torch.isnan(s).all()
    with pytest.warns(RuntimeWarning, match="undefined"):
        assert torch.isnan(see.sanity.similarity(a, torch.full_like(a, float("nan")), "ssim")).all()


@pytest.mark.parametrize("kwargs,match", [
    (dict(layers=["fc9"]), "closest: fc"),
    (dict(layers=["relu1"]), "parameterised layers: conv1, conv2"),
    (dict(mode="sideways"), "mode"),
    (dict(metrics=("pearson",)), "unknown similarity metric"),
    (dict(method="salience"), "unknown attribution method"),
])
def test_bad_input_is_one_clear_error_and_the_model_stays_untouched(lenet, kwargs, match):
    model, x, y = lenet
    kwargs = {"method": "saliency", **kwargs}
    with untouched(model, allow_raise=ValueError):
        with pytest.raises(ValueError, match=match):
            see.sanity.randomization(model, x[:2], target=y[:2], progress=False, **kwargs)


def test_a_model_without_parameters_is_refused():
    net = nn.Sequential(nn.Flatten(), nn.Softmax(1))
    with untouched(net, allow_raise=ValueError):
        with pytest.raises(ValueError, match="no parameters"):
            see.sanity.randomization(net, torch.rand(1, 1, 4, 4), "saliency", progress=False)
    with pytest.raises(ValueError, match="shape"):
        see.sanity.similarity(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 5, 5))


def digit_png(tmp_path):
    from PIL import Image

    x, _ = see.zoo.digits("test")
    path = tmp_path / "digit.png"
    Image.fromarray((x[0, 0] * 255).round().byte().numpy(), mode="L").save(path)
    return path


def test_cli_sanity_writes_the_strip_and_the_scores_of_the_api(tmp_path):
    import pandas as pd
    from typer.testing import CliRunner

    from seethrough.cli import app

    path = digit_png(tmp_path)
    res = CliRunner().invoke(app, ["sanity", str(path), "-m", "lenet-digits", "--method", "saliency",
                                   "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out" / "saliency.png").stat().st_size > 1000
    csv = pd.read_csv(tmp_path / "out" / "scores.csv")
    model, prep = see.zoo.load("lenet-digits")
    r = see.sanity.randomization(model, prep(path), "saliency", progress=False)
    ours = r.to_frame()
    assert len(csv) == len(ours) == 5 * 4 + 4
    np.testing.assert_allclose(csv["similarity"].to_numpy(), ours["similarity"].to_numpy(), rtol=1e-6)
    bad = CliRunner().invoke(app, ["sanity", str(path), "-m", "lenet-digits", "--mode", "sideways"])
    assert bad.exit_code == 2 and "mode must be" in bad.output and "Traceback" not in bad.output


def test_cli_faithfulness_and_explain_trust(tmp_path):
    from typer.testing import CliRunner

    from seethrough.cli import app

    path = digit_png(tmp_path)
    res = CliRunner().invoke(app, ["faithfulness", str(path), "-m", "lenet-digits", "--method", "grad-x-input",
                                   "--steps", "8", "--patch", "4", "-o", str(tmp_path / "f")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "f" / "curves.png").exists()
    model, prep = see.zoo.load("lenet-digits")
    x = prep(path)
    a = see.attribute(model, x, "grad-x-input")
    d = see.metrics.deletion(model, x, a, steps=8, patch=4, progress=False)
    assert f"deletion AUC {d.score[0]:.3f} (random {d.random_score[0]:.3f})" in res.output
    res = CliRunner().invoke(app, ["explain", str(path), "-m", "lenet-digits", "--method", "grad-x-input", "--trust",
                                   "-o", str(tmp_path / "e")])
    assert res.exit_code == 0, res.output
    _, badge = see.attribute(model, x, "grad-x-input", trust=True)
    assert f"trust: {badge.summary()}" in res.output
    assert (tmp_path / "e" / "grad-x-input-trust.png").exists()
    bad = CliRunner().invoke(app, ["faithfulness", str(path), "-m", "lenet-digits", "--steps", "0"])
    assert bad.exit_code == 2 and "steps" in bad.output


def test_trust_badge_numbers_are_the_checks_they_name_and_the_model_stays_untouched(lenet):
    from seethrough.sanity.badge import BADGE_DRAWS, BADGE_RANDOM, BADGE_STEPS, reference_images
    from seethrough.metrics.curves import auc, curve_metric

    model, x, y = lenet
    with untouched(model):
        a, badge = see.attribute(model, x[:3], "guided-backprop", target=y[:3], trust=True)
    assert torch.equal(a, see.attribute(model, x[:3], "guided-backprop", target=y[:3]))
    tops = [see.sanity.randomization(model, x[:3], "guided-backprop", y[:3], layers=["fc3"], metrics=("spearman_abs",),
                                     seed=s, progress=False).scores[0, 0] for s in range(BADGE_DRAWS)]
    torch.testing.assert_close(badge.randomized_top, torch.stack(tops).mean(0).float())
    ref, names, _, _ = reference_images(model, x[:3], y[:3])
    opts = dict(steps=BADGE_STEPS, patch=1, n_random=BADGE_RANDOM, progress=False)
    d = see.metrics.deletion(model, x[:3], a, y[:3], baseline=ref, **opts)
    i = see.metrics.insertion(model, x[:3], a, y[:3], start=ref, **opts)
    torch.testing.assert_close(badge.deletion, d.score)
    torch.testing.assert_close(badge.insertion_random, i.random_score)
    lerf = curve_metric("deletion", model, x[:3], a, y[:3], start=x[:3], end=ref, order="lerf", score="probability",
                        summary=auc, seed=0, batch_size="auto", **{**opts, "n_random": 0})
    torch.testing.assert_close(badge.deletion_lerf, lerf.score)
    assert badge.top_layer == "fc3" and len(badge.verdict) == 3 and badge.reference == names
    # Guided backprop barely changes when fc3 is random: the badge says so.
    assert all("barely changes" in v for v in badge.verdict)
    with untouched(model, allow_raise=ValueError):
        with pytest.raises(ValueError, match="unknown attribution method"):
            see.attribute(model, x[:1], "guided", trust=True)


def test_report_sanity_section_builds_quickly_with_captions():
    from seethrough.report.registry import SECTIONS, Context, Figure

    blocks = SECTIONS["sanity"].build(Context(quick=True))
    figures = [b for b in blocks if isinstance(b, Figure)]
    assert len(figures) == 3 and all("How to read it" in f.caption for f in figures)
