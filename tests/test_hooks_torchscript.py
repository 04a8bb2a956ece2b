"""TorchScript models take no hooks (issue 18, item 5): what needs hooks refuses in one line that says
what runs instead; what needs only forwards and input gradients runs and equals the eager model."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import seethrough as see
from seethrough.hooks import require_hooks
from seethrough.testing import untouched
from tests.transformer_fixtures import lenet_like

X = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
LINE = r"TorchScript module, which takes no hooks: methods that capture layers or change backward rules \(.*\) cannot run on it; " \
       r"those that only need forwards and input gradients can \(saliency, .*integrated gradients, occlusion, LIME, KernelSHAP, " \
       r"RISE, predict, attacks\); load the eager nn.Module for the others$"


def _script(net: nn.Module) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.script is deprecated, still what users ship
        return torch.jit.script(net)


@pytest.fixture(scope="module")
def pair():
    eager = lenet_like()
    return eager, _script(eager)


def test_hooks_alone_runs_a_scripted_model_and_restores_it(pair):
    eager, scripted = pair
    assert not see.boundary(scripted).hookable and see.boundary(eager).hookable
    scripted.train()
    with untouched(scripted):
        with see.hooks(scripted), torch.no_grad():
            assert not scripted.training
            scripted(X)
    assert scripted.training
    scripted.eval()


@pytest.mark.parametrize("how", [{"capture": "conv1"}, {"rules": {nn.ReLU: lambda m, x, y, g: g}},
                                 {"replace": {"conv1": torch.zeros(3, 4, 8, 8)}}])
def test_hooks_refuses_captures_rules_and_replacements_in_one_line(pair, how):
    _, scripted = pair
    with untouched(scripted):
        with pytest.raises(TypeError, match="^the model is a " + LINE) as e:
            with see.hooks(scripted, **how):
                pass
    assert "\n" not in str(e.value)


def test_a_scripted_part_inside_an_eager_model_refuses_rules(pair):
    _, scripted = pair
    outer = nn.Sequential(nn.Identity(), scripted)
    with pytest.raises(TypeError, match="^a part of the model is a " + LINE):
        with see.hooks(outer, rules={nn.ReLU: lambda m, x, y, g: g}):
            pass
    with see.hooks(outer, capture="0") as rec, torch.no_grad():  # an eager layer of it is captured as usual
        outer(X)
    assert torch.equal(rec["0"], X)
    with pytest.raises(TypeError, match="^LRP needs hooks, but a part of the model is a " + LINE):
        require_hooks(outer, "LRP")
    with pytest.raises(TypeError, match="^LRP needs hooks, but the model is a " + LINE):
        require_hooks(scripted, "LRP")


REFUSED = {
    "guided-backprop": lambda m: see.attribute(m, X, "guided-backprop"),
    "deconvnet": lambda m: see.attribute(m, X, "deconvnet"),
    "deeplift": lambda m: see.attribute(m, X, "deeplift"),
    "guided-gradcam": lambda m: see.attribute(m, X, "guided-gradcam", layer="conv2"),
    "gradcam at a named layer": lambda m: see.attribute(m, X, "gradcam", layer="conv2"),
    "activations": lambda m: see.activations(m, X, "relu1"),
    "layer_stats": lambda m: see.layer_stats(m, X, "relu1", progress=False),
    "topk": lambda m: see.topk(m, X, "relu2", k=2, progress=False),
    "embed": lambda m: see.embed(m, X, ["relu2"], "pca", progress=False),
    "summary": lambda m: see.inspect.summary(m, X),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_methods_that_need_hooks_refuse_a_scripted_model_in_one_line(pair, name):
    """Before: guided backprop silently equalled the gradient (the rules never attached) and the others
    crashed with 'register_forward_hook is not supported on ScriptModules'."""
    _, scripted = pair
    with untouched(scripted):
        with pytest.raises(TypeError, match=LINE) as e:
            REFUSED[name](scripted)
    assert "\n" not in str(e.value)


WORKS = {
    "saliency": lambda m: see.attribute(m, X, "saliency"),
    "integrated-gradients": lambda m: see.attribute(m, X, "integrated-gradients", steps=8),
    "occlusion": lambda m: see.attribute(m, X, "occlusion", window=4, stride=4),
    "predict": lambda m: torch.tensor([[p.probability for p in s] for s in see.predict(m, X, k=3)]),
    "fgsm": lambda m: see.attack(m, X, "fgsm", progress=False).x_adv,
    "embed of the input and output": lambda m: see.embed(m, X, ["input", "output"], "pca", progress=False)["output"],
}


@pytest.mark.parametrize("name", list(WORKS))
def test_forward_and_input_gradient_methods_run_and_equal_the_eager_model(pair, name):
    eager, scripted = pair
    with untouched(scripted):
        got = WORKS[name](scripted)
    want = WORKS[name](eager)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_guided_backprop_on_the_eager_model_differs_from_the_gradient(pair):
    """So the old silent fallback on the scripted model was a wrong map, not a harmless one."""
    eager, _ = pair
    gb, sal = see.attribute(eager, X, "guided-backprop"), see.attribute(eager, X, "saliency")
    assert float((gb - sal).abs().max()) > 1e-3 * float(sal.abs().max())
