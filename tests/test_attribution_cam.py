"""CAM family: Captum agreement, hand references, CAM/Grad-CAM identity; heatmaps, CLI, report."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import seethrough as see
from seethrough.attribution.cam import default_layer
from seethrough.render.heatmap import reduce_channels

from .attribution_fixtures import digits, effnet, lenet  # noqa: F401  (fixtures)

import captum.attr as captum_attr  # a test dependency: missing must fail, not skip
warnings.filterwarnings("ignore", message=".*(did not already require gradients|Setting backward hooks).*")


def test_default_layers(lenet, effnet):
    assert default_layer(lenet[0]) == "relu2"
    assert default_layer(effnet[0]) == "head"


def _captum_gradcam(model, layer, x, t):
    # Captum leaves the map un-rectified by default; the Grad-CAM paper (and we) apply the ReLU
    m = captum_attr.LayerGradCam(model, layer).attribute(x, target=t, relu_attributions=True)
    return captum_attr.LayerAttribution.interpolate(m, x.shape[-2:], interpolate_mode="bilinear")


def test_gradcam_and_guided_gradcam_equal_captum(lenet, effnet):
    for (model, x, t), name in ((lenet, "relu2"), (effnet, "head")):
        layer = dict(model.named_modules())[name]
        ours = see.attribute(model, x, "gradcam", target=t)
        torch.testing.assert_close(ours, _captum_gradcam(model, layer, x, t), atol=1e-5, rtol=1e-4)
        assert ours.amax((1, 2, 3)).min() > 0  # not a trivially empty map
    model, x, t = lenet
    theirs = captum_attr.GuidedGradCam(model, model.relu2).attribute(x, target=t, interpolate_mode="bilinear")
    torch.testing.assert_close(see.attribute(model, x, "guided-gradcam", target=t), theirs, atol=1e-6, rtol=1e-4)


def test_cam_is_gradcam_for_a_gap_linear_head(effnet, lenet):
    model, x, t = effnet
    cam = see.attribute(model, x, "cam", target=t, upsample=False)
    grad = see.attribute(model, x, "gradcam", target=t, upsample=False)
    hw = cam.shape[-1] * cam.shape[-2]
    # with GAP + linear, ∂y_c/∂A_kij = w_ck / hw, so Grad-CAM = ReLU(CAM) / hw
    torch.testing.assert_close(grad, cam.clamp_min(0) / hw, atol=1e-6, rtol=1e-4)
    # and CAM's pixels average to the logit minus the bias
    with torch.no_grad():
        logits = model(x).gather(1, t[:, None])[:, 0] - model.classifier.bias[t]
    torch.testing.assert_close(cam.mean((1, 2, 3)), logits, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="global average pooling"):
        see.attribute(lenet[0], lenet[1], "cam")


def test_gradcam_pp_matches_a_float64_loop():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3)).double()
    x = torch.rand(2, 2, 8, 8, dtype=torch.float64)
    ours = see.attribute(net, x, "gradcam++", target=[2, 0], layer="3", upsample=False)
    for i, c in enumerate([2, 0]):
        a = net[:4](x[i:i + 1]).detach().requires_grad_()
        (g,) = torch.autograd.grad(net[4:](a)[0, c], a)
        a, g = a[0].detach(), g[0]
        ref = torch.zeros(a.shape[1:], dtype=torch.float64)
        for k in range(a.shape[0]):
            w = 0.0
            for p in range(a.shape[1]):
                for q in range(a.shape[2]):
                    num = g[k, p, q] ** 2
                    den = 2 * g[k, p, q] ** 2 + a[k].sum() * g[k, p, q] ** 3
                    alpha = num / den if den != 0 else 0.0
                    w += alpha * max(float(g[k, p, q]), 0.0)
            ref += w * a[k]
        torch.testing.assert_close(ours[i, 0], ref.clamp_min(0), atol=1e-12, rtol=1e-9)


def test_negative_gradcam_is_gradcam_of_the_negated_score(lenet):
    model, x, t = lenet
    neg = see.attribute(model, x, "gradcam-negative", target=t)
    torch.testing.assert_close(neg, see.attribute(model, x, "gradcam", target=lambda out: -out.gather(1, t[:, None])[:, 0]))
    assert not torch.allclose(neg, see.attribute(model, x, "gradcam", target=t))


def test_cam_batch_equals_single_calls_and_layer_errors(lenet):
    model, x, t = lenet
    for method in ("gradcam", "gradcam++", "gradcam-negative", "guided-gradcam"):
        batch = see.attribute(model, x, method, target=t, layer="conv2")
        singles = torch.cat([see.attribute(model, x[i:i + 1], method, target=int(t[i]), layer="conv2") for i in range(len(t))])
        torch.testing.assert_close(batch, singles, atol=1e-4 * float(singles.abs().max()), rtol=1e-4, msg=method)
    with pytest.raises(ValueError, match="unknown layer 'conv3'.*conv"):
        see.attribute(model, x, "gradcam", layer="conv3")
    with pytest.raises(ValueError, match="feature maps"):
        see.attribute(model, x, "gradcam", layer="fc1")


# ---------------------------------------------------------------------------------------- render
def test_overlay_colours_follow_the_sign():
    x = torch.full((1, 3, 8, 8), 0.5)
    a = torch.zeros(1, 3, 8, 8)
    a[0, :, :4] = 1.0
    a[0, :, 4:] = -1.0
    img = np.asarray(see.render.overlay(x, a)).astype(int)
    assert img[0, 0, 0] > img[0, 0, 2] + 100  # positive: red
    assert img[7, 0, 2] > img[7, 0, 0] + 100  # negative: blue
    grey = np.asarray(see.render.overlay(x, torch.zeros_like(a))).astype(int)
    assert np.ptp(grey) == 0  # nothing to show: the muted photo only
    assert reduce_channels(torch.tensor([[[[1.0]], [[3.0]]]])).item() == 3.0  # non-negative: max over channels
    with pytest.raises(ValueError, match="reduce must be one of"):
        reduce_channels(a, "median")


def test_panel_has_one_tile_per_method():
    x = torch.rand(2, 3, 16, 16)
    one = see.render.panel(x, {"a": x})
    three = see.render.panel(x, {"a": x, "b": -x, "c": x})
    assert three.size[0] > 1.8 * one.size[0] and three.size[1] == one.size[1]
    with pytest.raises(ValueError, match="N = 2"):
        see.render.panel(x, {"a": x[:1]})


# ------------------------------------------------------------------------------------- CLI, report
def test_explain_cli_writes_one_png_per_method_and_a_panel(tmp_path):
    from seethrough.cli import app

    photo = tmp_path / "digit.png"
    see.zoo.to_image(digits("test")[0][:1]).save(photo)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["explain", str(photo), "--model", "lenet-digits", "--method", "gradcam,saliency,lrp",
                                   "--layer", "conv2", "--target", "3", "--out", str(out)])
    assert res.exit_code == 0, res.output
    # the PNGs, and the raw maps with what made them (seethrough.results.write_maps)
    assert sorted(p.name for p in out.iterdir()) == ["gradcam.png", "lrp.png", "maps.npz", "panel.png", "saliency.png",
                                                     "scores.json"]
    bad = CliRunner().invoke(app, ["explain", str(photo), "--model", "lenet-digits", "--method", "gradcamm"])
    assert bad.exit_code == 2 and "did you mean" not in bad.output and "gradcamm" in bad.output


def test_report_section_quick():
    import seethrough.report.sections  # noqa: F401  (registers the sections)
    from seethrough.report.registry import SECTIONS, Context, Figure

    blocks = SECTIONS["attribution"].build(Context(quick=True))
    figures = [b for b in blocks if isinstance(b, Figure)]
    assert [f.title for f in figures] == ["Gradients", "Modified backward rules", "Relevance", "Class activation maps"]
    assert all(f.provenance["seconds"] >= 0 and f.caption for f in figures)
