"""Readable pictures (issue 19, item 8): titles, unit numbers, stated colour scales, diverging maps for
signed values, dead units named, wide strips wrapped, the sanity strip bounded and aligned.

Each test checks a property of what was drawn that could fail: pixel colours, the texts the
picture carries (``info["texts"]``, also written to a PNG's text chunks), sizes, positions.
"""
import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import seethrough as see
from seethrough.cli import app
from seethrough.render.heatmap import map_rgb
from seethrough.render.trust import shown_steps
from seethrough.testing import untouched

runner = CliRunner()


@pytest.fixture(scope="module")
def lenet():
    model, _ = see.zoo.load("lenet-digits")
    return model, see.zoo.digits("test")[0]


@pytest.fixture(scope="module")
def digit_png(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "digit.png"
    see.zoo.to_image(see.zoo.digits("test")[0][0]).save(path)
    return path


def test_a_twenty_method_panel_is_a_bounded_near_square_grid():
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    names = [f"method-{i}" for i in range(20)]
    img = see.render.panel(x, {n: x - 0.5 for n in names})
    assert img.size[0] <= 2500 and 0.6 <= img.size[0] / img.size[1] <= 1.8  # one row of 21 tiles would be far wider
    assert [t for t in img.info["texts"] if t.startswith("method-")] == names


def test_grid_shape_keeps_at_most_six_columns_and_every_item():
    for n in range(1, 60):
        rows, cols = see.render.grid_shape(n)
        assert cols <= 6 and rows * cols >= n and (rows - 1) * cols < n


def test_a_signed_map_is_red_where_positive_and_blue_where_negative():
    x = torch.full((3, 16, 16), 0.5)
    a = np.zeros((16, 16))
    a[:, :8] = np.linspace(0.2, 1.0, 8)   # left half positive
    a[:, 8:] = -np.linspace(1.0, 0.2, 8)  # right half negative
    rgb, signed, scale = map_rgb(x, a)
    assert signed and scale == pytest.approx(np.percentile(np.abs(a), 99))
    r, b = rgb[..., 0], rgb[..., 2]
    assert (r[:, :8] > b[:, :8] + 0.1).all() and (b[:, 8:] > r[:, 8:] + 0.1).all()
    # The same through the whole picture: as many strongly red as strongly blue pixels (a symmetric scale).
    img = np.asarray(see.render.attribution_figure(x[None], torch.from_numpy(a)[None, None], title="halves")).astype(int)
    red = ((img[..., 0] - img[..., 2]) > 80).sum()
    blue = ((img[..., 2] - img[..., 0]) > 80).sum()
    assert red > 500 and blue > 500 and abs(red - blue) < 0.35 * max(red, blue)


def test_integrated_gradients_is_drawn_visibly_with_its_scale_stated(lenet):
    model, x = lenet
    with untouched(model):
        a = see.attribute(model, x[:1], "integrated-gradients", target=int(see.zoo.digits("test")[1][0]))
    m = a[0].sum(0).double().numpy()
    rgb, signed, scale = map_rgb(x[0], m)
    top = np.percentile(np.abs(m), 99)
    assert signed and scale == pytest.approx(top)
    # Every pixel at ≥ half the scale is clearly coloured (hue difference > 0.25), not a faint speck.
    strong = np.abs(m) >= 0.5 * top
    hue = np.abs(rgb[..., 0] - rgb[..., 2])
    assert strong.sum() > 10 and (hue[strong] > 0.25).all()
    img = see.render.attribution_figure(x[:1], a, title="ig")
    assert f"±{top:.3g}" in img.info["texts"][1] and "diverging" in img.info["texts"][1]


def test_a_non_negative_map_keeps_a_sequential_scale_from_zero(lenet):
    model, x = lenet
    with untouched(model):
        a = see.attribute(model, x[:1], "saliency")
    img = see.render.attribution_figure(x[:1], a, title="saliency")
    assert img.info["texts"][1].startswith("0 → ") and "diverging" not in img.info["texts"][1]


def test_rise_is_shown_minus_its_own_mean_per_sample(lenet):
    model, x = lenet
    with untouched(model):
        r = see.attribute(model, x[:3], "rise", n_samples=200, seed=0)
    shown = see.render.for_display("rise", r)
    for i in range(3):  # N at once = N calls, and the report's "r - r.mean()" for one image
        one = r[i:i + 1]
        torch.testing.assert_close(shown[i:i + 1], one - one.mean())
        assert abs(float(shown[i].mean())) < 1e-6
    assert see.render.for_display("gradcam", r) is r


def test_the_cli_rise_map_is_the_report_helper_output(lenet, digit_png, tmp_path):
    model, _ = lenet
    res = runner.invoke(app, ["explain", str(digit_png), "-m", "lenet-digits", "--method", "rise", "-t", "1",
                              "-o", str(tmp_path)])
    assert res.exit_code == 0, res.output
    prep = see.zoo.load("lenet-digits")[1]
    x = prep(digit_png)
    with untouched(model):
        r = see.attribute(model, x, "rise", target=1, seed=0)
    expected = see.render.attribution_figure(x, see.render.for_display("rise", r), title=Image.open(tmp_path / "rise.png").text["Title"])
    assert np.array_equal(np.asarray(Image.open(tmp_path / "rise.png").convert("RGB")), np.asarray(expected))
    assert "diverging" in Image.open(tmp_path / "rise.png").text["Description"]  # centred: signed, not a flat wash


def test_explain_titles_name_model_method_layer_and_class(digit_png, tmp_path):
    res = runner.invoke(app, ["explain", str(digit_png), "-m", "lenet-digits", "--method", "gradcam,saliency", "-t", "3",
                              "-o", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "gradcam.png").text["Title"] == "digit.png · lenet-digits · gradcam @ relu2 · class 3 (3)"
    assert Image.open(tmp_path / "saliency.png").text["Title"] == "digit.png · lenet-digits · saliency · class 3 (3)"
    panel = Image.open(tmp_path / "panel.png").text["Description"].splitlines()
    assert panel[:3] == ["digit.png · lenet-digits · class 3 (3)", "gradcam", "saliency"]


def test_the_trust_png_says_why(digit_png, tmp_path):
    res = runner.invoke(app, ["explain", str(digit_png), "-m", "lenet-digits", "--method", "gradcam", "--trust",
                              "-o", str(tmp_path)])
    assert res.exit_code == 0, res.output
    words = Image.open(tmp_path / "gradcam-trust.png").text["Description"].splitlines()
    verdict = words[-1]
    assert verdict.split(":")[0] in ("passes", "caution", "undefined") and len(verdict.split(": ", 1)[1]) > 5
    assert f"→ {verdict}" in res.output  # the reason drawn is the reason the badge gave
    assert words[0].startswith("digit.png · lenet-digits · gradcam @ relu2 · class ")


def test_activations_number_the_channels_and_mark_the_dead_one(lenet):
    model, x = lenet
    with untouched(model):
        act = see.activations(model, x[:1], "relu1")["relu1"][0]
    dead = [c for c in range(act.shape[0]) if bool((act[c] == 0).all())]
    img = see.render.activation_figure(act, title="relu1")
    labels = img.info["texts"][1:1 + act.shape[0]]
    assert labels == [f"ch {c}" + (" · dead" if c in dead else "") for c in range(act.shape[0])]
    assert f"{len(dead)} of {act.shape[0]} channels dead" in img.info["texts"][-2]
    # A pre-activation layer has negative values: one diverging scale.
    with untouched(model):
        pre = see.activations(model, x[:1], "conv1")["conv1"][0]
    assert "diverging" in see.render.activation_figure(pre).info["texts"][-1]


def test_a_dead_unit_is_said_to_never_fire_not_shown_as_a_top_k(lenet, tmp_path):
    model, _ = lenet
    data = see.zoo.digits("all")[0]
    with untouched(model):
        res = see.topk(model, data, "relu1", k=9, progress=False)
    dead = [int(u) for u, v in zip(res.units, res.values) if float(v.max()) == 0]
    assert dead, "lenet-digits' relu1 has a unit that never fires on the digits (what this test is about)"
    crops, proj = see.inspect.topk_examples(model, data, res, projection=None)
    texts = see.render.topk_figure(crops, proj, res, title="relu1", n_inputs=len(data)).info["texts"]
    for u in range(len(res.units)):
        if u in dead:
            assert texts[1 + u] == f"unit {u} · dead: never fires (max activation 0 over {len(data)} inputs)"
        else:
            assert texts[1 + u] == f"unit {u} · top 9 · max {float(res.values[u, 0]):.3g}"
    r = runner.invoke(app, ["topk", "-m", "lenet-digits", "-l", "relu1", "--top", "9", "-o", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert f"unit {dead[0]}: dead: never fires (max activation 0 over {len(data)} inputs)" in r.output
    assert f"unit {dead[0]}: inputs" not in r.output
    assert f"unit {dead[0]} · dead: never fires" in Image.open(tmp_path / "topk.png").text["Description"]


def test_filters_are_numbered_on_one_stated_scale(tmp_path):
    r = runner.invoke(app, ["filters", "-m", "lenet-digits", "-l", "conv2", "--filters", "4", "--in-channels", "6",
                            "-o", str(tmp_path)])
    assert r.exit_code == 0, r.output
    words = Image.open(tmp_path / "filters.png").text["Description"].splitlines()
    assert words[0] == "lenet-digits · conv2 · 4 filters × 6 input channels (5×5)"
    assert words[1:25] == [f"f{i} · in {j}" for i in range(4) for j in range(6)]
    assert words[-1] == "weight (diverging, ±max |w|)"
    w = torch.zeros(2, 1, 3, 3)
    w[0, 0, 1, 1] = 1.0
    assert see.render.filter_figure(w).info["texts"][:2] == ["f0", "f1 · dead"]


def _deep(r, layers: int):
    """The lenet result stretched to ``layers`` steps (maps repeated, similarity falling 1 → 0)."""
    idx = torch.arange(layers) % len(r.layers)
    curve = torch.linspace(1, 0, layers)[:, None, None].expand(layers, *r.scores.shape[1:]).clone()
    return dataclasses.replace(r, layers=[f"blocks.{i}.conv" for i in range(layers)], maps=r.maps[idx], scores=curve)


def test_the_sanity_figure_at_99_layers_is_bounded_aligned_and_names_first_and_last(lenet):
    model, x = lenet
    with untouched(model):
        r = see.sanity.randomization(model, x[:1], "saliency", metrics=("spearman_abs",), progress=False)
    img = see.render.sanity_figure(_deep(r, 99), title="deep")
    assert img.size[0] <= 2500
    shown = shown_steps(99)
    assert len(shown) <= 12 and shown[0] == 0 and shown[-1] == 98
    texts = img.info["texts"]
    assert texts[2] == "blocks.0.conv" and texts[-2] == "blocks.98.conv"
    assert "12 of 99 steps" in texts[-1]
    # Each map sits over its own step on the curves' x axis (within 2 pixels).
    assert len(img.info["columns"]) == len(shown)
    assert all(abs(a - b) <= 2 for a, b in img.info["columns"])
    small = see.render.sanity_figure(r)
    assert len(small.info["columns"]) == len(r.layers) and all(abs(a - b) <= 2 for a, b in small.info["columns"])


def test_constant_units_and_unit_labels():
    v = torch.stack([torch.zeros(4), torch.full((4,), 2.0), torch.arange(4.0)])
    assert see.render.constant_units(v).tolist() == [True, True, False]
    assert [see.render.readable.unit_label(f"u {i}", v[i]) for i in range(3)] == ["u 0 · dead", "u 1 · constant", "u 2"]


def test_sanity_and_faithfulness_pngs_are_titled_with_model_method_and_class(digit_png, tmp_path):
    res = runner.invoke(app, ["sanity", str(digit_png), "-m", "lenet-digits", "--method", "saliency", "-t", "2",
                              "-o", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    words = Image.open(tmp_path / "s" / "saliency.png").text["Description"].splitlines()
    assert words[0] == "digit.png · lenet-digits · saliency · class 2 · cascading randomization"
    assert words[1:3] == ["original", "fc3"] and words[-1] == "all 5 steps shown"
    res = runner.invoke(app, ["faithfulness", str(digit_png), "-m", "lenet-digits", "--method", "saliency,gradcam",
                              "-t", "2", "--steps", "4", "--patch", "8", "-o", str(tmp_path / "f")])
    assert res.exit_code == 0, res.output
    words = Image.open(tmp_path / "f" / "curves.png").text["Description"].splitlines()
    assert words[0] == "digit.png · lenet-digits · saliency, gradcam · class 2"
    assert any(w.startswith("saliency (") for w in words) and any(w.startswith("gradcam (") for w in words)


def test_the_attack_figure_carries_its_title(lenet):
    model, x = lenet
    with untouched(model):
        r = see.attack(model, x[:1], "bim", eps=32, steps=2, progress=False)
    fig = see.render.attack_figure(r, 0, title="digit · lenet-digits · bim · ε 32/255 · untargeted")
    assert fig._suptitle.get_text() == "digit · lenet-digits · bim · ε 32/255 · untargeted"
    import matplotlib.pyplot as plt

    plt.close(fig)
