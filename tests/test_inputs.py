"""Bad input gets one clear line: images outside [0, 1], dtype or layout mismatches, 3-D tensors,
models returning tuples or dicts. And what is right keeps working (float64 models, 2-D points)."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import seethrough as see
from seethrough.inputs import check_images
from seethrough.testing import untouched

X = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))


ENTRY_POINTS = {
    "attribute": lambda m, x: see.attribute(m, x, "saliency"),
    "predict": lambda m, x: see.predict(m, x),
    "attack": lambda m, x: see.attack(m, x, "fgsm", progress=False),
    "deletion": lambda m, x: see.metrics.deletion(m, x, torch.ones(len(x), 1, *x.shape[-2:]), steps=2, progress=False),
    "randomization": lambda m, x: see.sanity.randomization(m, x, "saliency", progress=False),
}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_images_in_0_255_are_refused_with_the_fix(entry):
    net = _net()
    with untouched(net):
        with pytest.raises(ValueError, match=r"x has values in \[[\d.]+, [\d.]+\]: seethrough expects images in "
                                             r"\[0, 1\]; divide by 255"):
            ENTRY_POINTS[entry](net, X * 255)
    ENTRY_POINTS[entry](net, X)  # the same images in [0, 1] run


def test_the_range_has_a_rounding_tolerance_and_names_normalised_images():
    net = _net()
    see.attribute(net, (X + 1e-7).clamp(max=1 + 1e-7), "saliency")  # a resize's rounding: accepted
    with pytest.raises(ValueError, match="clamp it to"):
        see.attribute(net, X * 1.01, "saliency")
    with pytest.raises(ValueError, match=r"looks normalised.*with_normalization"):
        see.attribute(net, (X - 0.5) / 0.25, "saliency")


def test_non_image_inputs_keep_their_own_range():
    """The [0, 1] rule is for image batches: mlp-2d's 2-D points outside it predict as before."""
    model, _ = see.zoo.load("mlp-2d")
    points = torch.tensor([[3.0, -2.0], [-1.5, 4.0]])
    with untouched(model):
        preds = see.predict(model, points, k=1)
    with torch.no_grad():
        assert [p[0].index for p in preds] == model(points).argmax(1).tolist()
    assert check_images(points * 100, kind="auto") is not None
    with pytest.raises(ValueError, match="kind must be one of"):
        check_images(points, kind="tabular")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
@pytest.mark.parametrize("entry", ["attribute", "predict", "attack"])
def test_a_dtype_mismatch_names_both_fixes(entry, dtype):
    net = _net()
    short = str(dtype).removeprefix("torch.")
    fix = {torch.float64: "double", torch.float16: "half"}[dtype]
    with pytest.raises(ValueError, match=rf"x is {short} but the model's parameters are float32: "
                                         rf"pass x\.float\(\) or model\.{fix}\(\)"):
        ENTRY_POINTS[entry](net, X.to(dtype))


def test_float64_model_and_input_give_float64_and_match_float32():
    net = _net()
    net64 = copy.deepcopy(net).double()
    a64 = see.attribute(net64, X.double(), "saliency")
    assert a64.dtype == torch.float64
    torch.testing.assert_close(a64.float(), see.attribute(net, X, "saliency"), rtol=1e-4, atol=1e-6)
    assert see.attack(net64, X.double(), "fgsm", progress=False).x_adv.dtype == torch.float64


@pytest.mark.parametrize("entry", ["attribute", "predict", "attack", "deletion"])
def test_channels_last_input_gets_the_permute(entry):
    net = _net()
    with pytest.raises(ValueError, match=r"x looks channels-last \(N, H, W, C\) = \(2, 8, 8, 3\).*x\.permute\(0, 3, 1, 2\)"):
        ENTRY_POINTS[entry](net, X.permute(0, 2, 3, 1).contiguous())


def test_three_dimensional_inputs():
    net = _net()
    with pytest.raises(ValueError, match=r"add the batch dimension: x\.unsqueeze\(0\)"):
        see.attribute(net, X[0], "saliency")  # one (C, H, W) image
    signal = torch.rand(5, 1, 100)
    for model in (net, None):
        with pytest.raises(ValueError, match=r"expects a batch of images \(N, C, H, W\).*and 5 is not") as e:
            check_images(signal, model=model)
        assert "batch dimension" not in str(e.value)
    # a 1-D signal for a Conv1d model is the "tensor" kind of the boundary (docs/boundary.md): the gradient
    # family takes it; the image-only methods refuse it in one line naming the kinds they serve
    conv1d = nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(196, 2))
    assert see.attribute(conv1d, signal[:1], "saliency", target=0).shape == (1, 1, 100)
    with pytest.raises(ValueError, match=r"gradcam supports image.* inputs; this input is tensor"):
        see.attribute(conv1d, signal[:1], "gradcam", target=0)
    gray = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(72, 2))
    with pytest.raises(ValueError, match=r"for a batch of gray images \(N, H, W\) use x\.unsqueeze\(1\)"):
        see.attribute(gray, torch.rand(4, 8, 8), "saliency")


class _Structured(nn.Module):
    """``_net()`` returning a dict, a tuple or the plain logits."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind, self.net = kind, _net()

    def forward(self, x):
        z = self.net(x)
        return {"logits": z, "aux": z.sum(1)} if self.kind == "dict" else (z, z.sum(1)) if self.kind == "tuple" else z


_PICK = {"dict": lambda out: out["logits"][:, 1], "tuple": lambda out: out[0][:, 1]}
_CHEAP = {"smoothgrad": {"n_samples": 2}, "smoothgrad-sq": {"n_samples": 2}, "vargrad": {"n_samples": 2},
          "integrated-gradients": {"steps": 4}, "occlusion": {"window": 4, "stride": 4}, "rise": {"n_samples": 8},
          "lime": {"n_samples": 16, "n_segments": 4}, "kernel-shap": {"n_samples": 16, "n_segments": 4}}


@pytest.mark.parametrize("kind", ["dict", "tuple"])
@pytest.mark.parametrize("method", list(see.attribution.METHODS))
def test_structured_outputs(method, kind):
    """The methods read the model through the boundary, as predict does: a dict's "logits" entry by
    name; a tuple is one TypeError suggesting output=0 (no position is guessed). Both, and the callable
    target, give the map of the plain-tensor model (CAM alone needs a class row, and says so)."""
    model, plain = _Structured(kind), _Structured("tensor")
    opts = _CHEAP.get(method, {})
    with untouched(model):
        if kind == "tuple":
            with pytest.raises(TypeError, match=r"the model returns a tuple of 2 \(shapes \(2, 3\), \(2,\)\), not a "
                                                r"tensor of class scores: pass output=0"):
                see.attribute(model, X, method, target=1, **opts)
        by_name = see.attribute(model, X, method, target=1, **opts, **({"output": 0} if kind == "tuple" else {}))
    ref = see.attribute(plain, X, method, target=1, **opts)
    torch.testing.assert_close(by_name, ref, rtol=1e-5, atol=1e-6 * float(ref.abs().max()) + 1e-12)
    if method == "cam":
        with pytest.raises(TypeError, match="give a class target, not a callable"):
            see.attribute(model, X, method, target=_PICK[kind])
        return
    got = see.attribute(model, X, method, target=_PICK[kind], **opts)
    want = see.attribute(plain, X, method, target=lambda out: out[:, 1], **opts)
    # The same computation; "auto" batch sizes are timed, so float sums may be grouped differently.
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6 * float(want.abs().max()) + 1e-12)


def test_structured_outputs_for_class_readers():
    """predict reads the model through the boundary: a dict's "logits" entry by name, a tuple only with
    output= (no position is guessed, docs/boundary.md); attacks still need a tensor-returning model."""
    plain = [[p.index for p in row] for row in see.predict(_Structured("tensor"), X)]
    assert [[p.index for p in row] for row in see.predict(_Structured("dict"), X)] == plain
    with pytest.raises(TypeError, match=r"returns a tuple of 2 \(shapes \(2, 3\), \(2,\)\), not a tensor of class scores: "
                                        r"pass output=0 \(a key, an index or a callable output -> tensor\)"):
        see.predict(_Structured("tuple"), X)
    assert [[p.index for p in row] for row in see.predict(_Structured("tuple"), X, output=0)] == plain
    with pytest.raises(TypeError, match=r"returns a dict with keys \['logits', 'aux'\].*wrap the model so that its "
                                        r"forward returns the \(N, classes\) score tensor \(here perhaps out\['logits'\]\)"):
        ENTRY_POINTS["attack"](_Structured("dict"), X)


@pytest.mark.parametrize("entry", ["activations", "topk", "layer_stats"])
def test_inspecting_refuses_0_255_images_and_takes_other_inputs(entry):
    net = _net()
    call = {"activations": lambda m, x, layer: see.activations(m, x, layer),
            "topk": lambda m, x, layer: see.topk(m, x, layer, unit=0, k=2, progress=False),
            "layer_stats": lambda m, x, layer: see.layer_stats(m, x, layer, progress=False)}[entry]
    with pytest.raises(ValueError, match=r"has values in \[[\d.]+, [\d.]+\]: seethrough expects images in \[0, 1\]"):
        call(net, X * 255, "1")
    call(net, X, "1")
    mlp, _ = see.zoo.load("mlp-2d")  # 2-D points are not images: any finite value
    call(mlp, torch.tensor([[3.0, -2.0], [-1.5, 4.0], [0.5, 9.0]]), "relu")
