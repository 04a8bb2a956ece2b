"""Where to attribute is a parameter (issue 18 item 3): ``layer=`` gives the attribution of each unit of a
layer's output, ``unit=`` explains an internal unit's activation; both agree with Captum's Layer* and
Neuron* classes to 1e-4 on lenet-digits and on mlp-breast-cancer (float64 copies: no CPU-kernel noise).
Bad ``layer=``/``unit=`` is one line; TorchScript models are refused by the methods that need hooks
(issue 18 item 5)."""
from __future__ import annotations

import copy

import pytest
import torch

import seethrough as see
from seethrough.testing import untouched
from tests.transformer_fixtures import lenet_like

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Captum's "required_grads has been set"


def _lenet():
    model, _ = see.zoo.load("lenet-digits")
    x, _ = see.zoo.digits("test")
    return copy.deepcopy(model).double(), x[:2].double(), 3


def _mlp():
    model, _ = see.zoo.load("mlp-breast-cancer")
    x, _, _ = see.zoo.breast_cancer("test")
    return copy.deepcopy(model).double(), x[:4].double(), 1


MODELS = {"lenet-digits": (_lenet, "conv2", "fc1", ("conv2", 5, (3, 4))),
          "mlp-breast-cancer": (_mlp, "fc2", "fc1", ("fc2", 7))}


@pytest.fixture(scope="module", params=list(MODELS))
def case(request):
    make, layer, dense, unit = MODELS[request.param]
    model, x, target = make()
    return model, x, target, layer, dense, unit


def _module(model, name):
    return dict(model.named_modules())[name]


def test_layer_attribution_equals_captum(case):
    from captum.attr import LayerConductance, LayerGradientXActivation, LayerIntegratedGradients

    model, x, target, layer, dense, _ = case
    m = _module(model, layer)
    with untouched(model):
        gxa = see.attribute(model, x, "grad-x-input", target=target, layer=layer)
        lig = see.attribute(model, x, "integrated-gradients", target=target, layer=layer, steps=16)
        cond = see.attribute(model, x, "integrated-gradients", target=target, layer=layer, steps=16, conductance=True)
    torch.testing.assert_close(gxa, LayerGradientXActivation(model, m).attribute(x, target=target), rtol=0, atol=1e-4)
    torch.testing.assert_close(lig, LayerIntegratedGradients(model, m).attribute(x, target=target, n_steps=16),
                               rtol=0, atol=1e-4)
    torch.testing.assert_close(cond, LayerConductance(model, m).attribute(x, target=target, n_steps=16), rtol=0, atol=1e-4)
    assert gxa.dtype == torch.float64 and gxa.shape[1:] == see.activations(model, x, layer)[layer].shape[1:]
    # Layer DeepLIFT sums to the same delta as at the input (every path to the score crosses a dense layer).
    dl = see.attribute(model, x, "deeplift", target=target, layer=dense)
    delta = (model(x)[:, target] - model(torch.zeros_like(x))[:, target]).detach()
    torch.testing.assert_close(dl.flatten(1).sum(1), delta, rtol=0, atol=1e-9)


def test_unit_attribution_equals_captum(case):
    from captum.attr import NeuronDeconvolution, NeuronGradient, NeuronGuidedBackprop, NeuronIntegratedGradients

    model, x, _, _, _, unit = case
    name, channel, position = (*unit, None)[:3]
    sel = (channel, *position) if position else channel
    m = _module(model, name)
    with untouched(model):
        grad = see.attribute(model, x, "saliency", unit=unit, abs=False)
        guided = see.attribute(model, x, "guided-backprop", unit=unit)
        deconv = see.attribute(model, x, "deconvnet", unit=unit)
        ig = see.attribute(model, x, "integrated-gradients", unit=unit, steps=16)
    torch.testing.assert_close(grad, NeuronGradient(model, m).attribute(x, neuron_selector=sel), rtol=0, atol=1e-4)
    torch.testing.assert_close(guided, NeuronGuidedBackprop(model, m).attribute(x, neuron_selector=sel), rtol=0, atol=1e-4)
    torch.testing.assert_close(deconv, NeuronDeconvolution(model, m).attribute(x, neuron_selector=sel), rtol=0, atol=1e-4)
    torch.testing.assert_close(ig, NeuronIntegratedGradients(model, m).attribute(x, neuron_selector=sel, n_steps=16),
                               rtol=0, atol=1e-4)
    # Guided backprop of the unit is not its plain gradient (the rules reached the model's ReLUs).
    assert not torch.allclose(guided, grad)
    # A channel without a position is its mean over positions: the mean of the per-position gradients.
    if position:
        mean = see.attribute(model, x, "saliency", unit=(name, channel), abs=False)
        side = see.activations(model, x, name)[name].shape[2:]
        per = sum(see.attribute(model, x, "saliency", unit=(name, channel, (r, c)), abs=False)
                  for r in range(side[0]) for c in range(side[1]))
        torch.testing.assert_close(mean, per / (side[0] * side[1]), rtol=1e-9, atol=1e-12)


def test_unit_integrated_gradients_is_complete_for_the_unit():
    model, x, _ = _mlp()
    r = see.integrated_gradients(model, x, unit=("fc2", 7), steps=64, progress=False)
    act = see.activations(model, torch.cat([x, torch.zeros_like(x)]), "fc2")["fc2"][:, 7]
    torch.testing.assert_close(r.score - r.baseline_score, act[:4] - act[4:], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(r.gap, r.attribution.sum(1) - (act[:4] - act[4:]), rtol=0, atol=1e-10)


BAD = {
    "a unit outside the layer": (dict(unit=("fc2", 84)), ValueError,
                                 r"^unit 84 is outside layer 'fc2', which has 84 units \(0\.\.83\) in an output of shape \(2, 84\)$"),
    "a position outside the map": (dict(unit=("conv2", 3, (10, 0))), ValueError,
                                   r"^position \(10, 0\) is outside the positions \(10, 10\) of layer 'conv2' \(output shape \(2, 16, 10, 10\)\)"),
    "a position on a dense layer": (dict(unit=("fc1", 3, 2)), ValueError, r"^layer 'fc1' has no positions"),
    "an unknown unit layer": (dict(unit=("conv9", 3)), ValueError, r"^unknown layer 'conv9'; closest: conv2, conv1$"),
    "an unknown layer": (dict(layer="fc4"), ValueError, r"^unknown layer 'fc4'; closest: "),
    "a unit that is not a pair": (dict(unit=3), ValueError, r"^unit=\(layer, channel\) or \(layer, channel, position\)"),
    "a unit and a target": (dict(unit=("fc1", 3), target=2), ValueError, r"^unit= explains that unit's activation"),
    "layer and unit": (dict(unit=("fc1", 3), layer="fc2"), ValueError, r"^give layer= .* or unit= .*, not both$"),
    "conductance without a layer": (dict(conductance=True), ValueError, r"^conductance is a layer attribution"),
}


@pytest.mark.parametrize("what, method", [(w, m) for w in BAD for m in ("saliency", "integrated-gradients", "guided-backprop")
                                           if m == "integrated-gradients" or "conductance" not in BAD[w][0]])
def test_bad_layer_or_unit_is_one_line_and_the_model_untouched(what, method):
    how, error, line = BAD[what]
    model, _ = see.zoo.load("lenet-digits")
    x, _ = see.zoo.digits("test")
    with untouched(model):
        with pytest.raises(error, match=line) as e:
            see.attribute(model, x[:2], method, **how)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("make", ["script", "trace"])
def test_torchscript_is_refused_by_every_method_that_needs_hooks_and_layer_unit(make):
    eager = lenet_like()
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    scripted = torch.jit.script(eager) if make == "script" else torch.jit.trace(eager, x)
    line = r"needs hooks, but the model is a TorchScript module, which takes no hooks: .*load the eager nn.Module"
    for name, spec in see.attribution.METHODS.items():
        if not spec.needs_hooks:
            continue
        with untouched(scripted):
            with pytest.raises(TypeError, match=rf"^{name.replace('+', '[+]')} {line}"):
                see.attribute(scripted, x, name)
    for how in (dict(layer="conv2"), dict(unit=("conv2", 1))):
        with pytest.raises(TypeError, match=rf"^saliency with layer=/unit= {line}"):
            see.attribute(scripted, x, "saliency", **how)
    # What does not need hooks still runs, and equals the eager model.
    torch.testing.assert_close(see.attribute(scripted, x, "grad-x-input"), see.attribute(eager, x, "grad-x-input"))


@pytest.mark.parametrize("method", ["saliency", "integrated-gradients", "occlusion"])
def test_trust_with_layer_or_unit_is_one_clear_line(method):
    # the badge deletes input pixels: it cannot check an attribution to a layer's units
    model, _ = see.zoo.load("lenet-digits")
    x, _ = see.zoo.digits("test")
    with untouched(model):
        with pytest.raises(ValueError, match="trust=True checks a map over the input's pixels.*layer="):
            see.attribute(model, x[:1], method, 3, trust=True, layer="conv2")
        with pytest.raises(ValueError, match="trust=True checks a map over the input's pixels.*unit="):
            see.attribute(model, x[:1], method, trust=True, unit=("conv2", 3))
    a, badge = see.attribute(model, x[:1], "gradcam", 3, trust=True, layer="conv2")  # CAM's layer= is where it reads
    assert a.shape == (1, 1, 32, 32) and len(badge.verdict) == 1
