"""Filters, weight health, linear-model importance and activations."""
import numpy as np
import pytest
import torch
from torch import nn

import seethrough as see
from seethrough.inspect import (activations, breast_cancer_logistic, filters, high_frequency_energy, linear_importance,
                                pick_channels, weight_health)
from seethrough.testing import untouched
from tests.inspect_fixtures import digits, lenet  # noqa: F401 - fixtures


def test_filters_are_a_detached_copy_of_the_weight_slice(lenet):
    ref = lenet.conv2.weight[:4, :3].detach().clone()
    with untouched(lenet):
        w = filters(lenet, "conv2", filters=4, channels=3)
        assert torch.equal(w, ref)
        w.zero_()  # must not write through to the model (untouched checks the bits)


def test_filters_of_a_layer_without_weights_is_a_clear_error(lenet):
    with untouched(lenet, allow_raise=ValueError):
        with pytest.raises(ValueError, match="filters need a Conv1d/2d/3d or a Linear layer"):
            filters(lenet, "pool1")
    with pytest.raises(ValueError, match="filters must be"):
        filters(lenet, "conv1", filters=0)
    with pytest.raises(ValueError, match="shape= reshapes a Linear layer"):
        filters(lenet, "conv1", shape=(1, 5, 5))


def _mlp(n_in, n_out=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(n_in, n_out))
    with torch.no_grad():
        net[1].weight.copy_(torch.randn(n_out, n_in, generator=g))
    return net


def test_linear_rows_are_images_of_the_inferred_shape():
    mnist = _mlp(28 * 28)  # an MNIST MLP's first layer: each unit's weights as a 28×28 picture
    with untouched(mnist):
        w = filters(mnist, "1")
        assert w.shape == (10, 1, 28, 28)
        # row k, pixel (i, j) is the weight the unit gives to input pixel (i, j), as Flatten orders them
        x = torch.zeros(1, 1, 28, 28)
        x[0, 0, 3, 17] = 1.0
        assert torch.equal(mnist[1](mnist[0](x))[0] - mnist[1].bias, w[:, 0, 3, 17])
        w.zero_()  # a copy
    rgb = _mlp(3 * 32 * 32, 4)
    assert filters(rgb, "1").shape == (4, 3, 32, 32)
    assert torch.equal(filters(rgb, "1")[2, 1, 5, 7], rgb[1].weight[2, 1 * 1024 + 5 * 32 + 7])


def test_linear_rows_reshaped_to_a_given_shape_match_the_layer_before(lenet):
    """lenet's fc1 reads pool2's (16, 5, 5) map flattened: shape=(16, 5, 5) gives each unit's
    weights laid out over that map, so Σ w·h over the map is the unit's pre-activation."""
    x = see.zoo.digits("test")[0][:3]
    with untouched(lenet):
        w = filters(lenet, "fc1", shape=(16, 5, 5))
        with see.hooks(lenet, capture=["pool2", "fc1"]) as rec, torch.no_grad():
            lenet(x)
    h, out = rec["pool2"], rec["fc1"]
    assert w.shape == (120, 16, 5, 5)
    assert torch.allclose(torch.einsum("ochw,nchw->no", w.double(), h.double()) + lenet.fc1.bias.double(), out.double(),
                          atol=1e-5)
    assert filters(lenet, "fc1", shape=(16, 5, 5), filters=8, channels=2).shape == (8, 2, 5, 5)
    for bad, text in [((16, 5, 4), "holds 320 values but the layer has 400 inputs"), ((16, 25), "three positive ints"),
                      ((0, 20, 20), "three positive ints")]:
        with pytest.raises(ValueError, match=text):
            filters(lenet, "fc1", shape=bad)
    with pytest.raises(ValueError, match="pass shape=\\(C, H, W\\)"):
        filters(lenet, "fc2")  # 120 inputs: not an image of any inferable shape


def test_filter_grid_renders_linear_rows_sixteen_a_row():
    net = _mlp(28 * 28, 20, seed=3)
    w = filters(net, "1")
    img = see.render.filter_grid(w, scale=1)
    assert img.mode == "L" and img.size == (16 * 29 + 1, 2 * 29 + 1)
    a = np.asarray(img, dtype=np.float64) / 255
    for k in (0, 17):  # each cell is its own filter scaled symmetrically: 0 → mid-grey, max |w| → black or white
        r, c = divmod(k, 16)
        cell = a[1 + r * 29:1 + r * 29 + 28, 1 + c * 29:1 + c * 29 + 28]
        ref = 0.5 + 0.5 * w[k, 0].double().numpy() / w[k, 0].abs().max().item()
        assert np.abs(cell - ref).max() <= 0.5 / 255 + 1e-9


def _conv_with(weights):
    conv = nn.Conv2d(1, len(weights), 5, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.stack(weights).unsqueeze(1))
    return nn.Sequential(conv)


def test_weight_health_finds_zero_and_duplicate_filters():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 5, generator=g), torch.randn(5, 5, generator=g)
    net = _conv_with([a, b, 2.0 * a, torch.zeros(5, 5), b + 1e-4 * torch.randn(5, 5, generator=g)])
    with untouched(net):
        (h,) = weight_health(net)
    assert (h.zero_filters, h.duplicate_pairs) == (1, 2)  # (a, 2a) and (b, b + noise)
    assert h.norm == pytest.approx(net[0].weight.double().norm().item(), rel=1e-12)
    assert torch.allclose(h.filter_norms[1], b.norm())


def test_high_frequency_energy_separates_smooth_from_noisy_filters():
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(500, 5, 5, generator=g)
    yy, xx = torch.meshgrid(torch.arange(5.0), torch.arange(5.0), indexing="ij")
    blob = torch.exp(-((yy - 2) ** 2 + (xx - 2) ** 2) / 2)
    assert high_frequency_energy(blob).item() < 0.15
    assert high_frequency_energy(noise).mean().item() == pytest.approx(0.82, abs=0.03)
    smooth, noisy = weight_health(_conv_with([blob, blob.flip(0) * 0.5 + 0.1])), weight_health(_conv_with(list(noise[:8])))
    assert smooth[0].high_freq < 0.2 < 0.7 < noisy[0].high_freq


def test_linear_importance_ranks_standardised_logistic_weights():
    fit = breast_cancer_logistic()
    imp = linear_importance(fit.model, fit.names)
    w = fit.model.weight.detach()[0]
    assert torch.equal(imp.weights, w[imp.order]) and bool((imp.importance[:-1] >= imp.importance[1:]).all())
    assert sorted(imp.names) == sorted(fit.names) and fit.accuracy > 0.93

    def acc_without(j):
        z = fit.x_test.clone()
        z[:, j] = 0.0  # the feature's mean: its information removed
        return ((fit.model(z).squeeze(1) > 0).long() == fit.y_test).double().mean().item()

    # Removing the most important features hurts more than removing the least important ones.
    top, bottom = imp.order[:5].tolist(), imp.order[-5:].tolist()
    logit = lambda cols: (fit.model.weight[0, cols].abs().sum()).item()  # noqa: E731
    assert logit(top) > 5 * logit(bottom)
    assert min(acc_without(j) for j in top) <= min(acc_without(j) for j in bottom)


def test_linear_importance_bad_input():
    with pytest.raises(ValueError, match="feature names"):
        linear_importance(torch.ones(3), ["a"])
    with pytest.raises(TypeError, match="tensor or an nn.Linear"):
        linear_importance([1.0, 2.0])


def test_activations_equal_a_manual_forward(lenet):
    x = see.zoo.digits("test")[0][:3]
    with untouched(lenet):
        a = activations(lenet, x, ["relu1", "fc2"])
    h = lenet.relu1(lenet.conv1(x))
    assert torch.equal(a["relu1"], h)
    z = lenet.fc1(lenet.flatten(lenet.pool2(lenet.relu2(lenet.conv2(lenet.pool1(h))))))
    assert torch.allclose(a["fc2"], lenet.fc2(lenet.relu3(z)), atol=1e-6)
    with untouched(lenet, allow_raise=ValueError):
        activations(lenet, x, ["relu1", "relu99"])


def test_pick_channels_orders_by_energy_and_is_seeded():
    g = torch.Generator().manual_seed(0)
    act = torch.randn(10, 4, 4, generator=g) * torch.arange(1.0, 11.0).view(10, 1, 1)
    energy = act.pow(2).mean((1, 2))
    assert pick_channels(act, 4).tolist() == energy.argsort(descending=True)[:4].tolist()
    r1, r2 = pick_channels(act, 3, how="random", seed=5), pick_channels(act, 3, how="random", seed=5)
    assert torch.equal(r1, r2) and len(set(r1.tolist())) == 3
    with pytest.raises(ValueError, match="how must be"):
        pick_channels(act, 3, how="loud")


def test_report_section_quick():
    import seethrough.report.sections  # noqa: F401  (registers the sections)
    from seethrough.report.registry import SECTIONS, Context, Figure, Table

    blocks = SECTIONS["inspect"].build(Context(quick=True))
    figures = [b for b in blocks if isinstance(b, Figure)]
    assert [f.title for f in figures] == [
        "Filters", "Weight health", "Linear model: feature importance", "Activations", "Layer statistics",
        "Sparsity during training", "Top-9 digits per channel", "Hidden units as lines"]
    assert all(f.provenance["seconds"] >= 0 and f.caption for f in figures)
    frames = figures[-1].image
    assert isinstance(frames, list) and len(frames) > 2 and frames[0].size == frames[-1].size
    (table,) = [b for b in blocks if isinstance(b, Table)]
    assert [r[0] for r in table.rows] == ["relu1", "relu2", "relu3", "relu4"]
    assert all(0 <= float(r[2].rstrip("%")) <= 100 for r in table.rows)
