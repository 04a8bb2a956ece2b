"""Single-pass and rule-based methods at one pass (issue 21 item 3): how many forwards a call runs, and that
the merged forward, the gradient-at-output guided rule, the split DeepLIFT reference and the cached
functional-activation count give what the two-step forms gave (float64 references)."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import seethrough as see
from seethrough.attribution.rules import (ACTIVATIONS, CountFunctional, _Known, deconvnet_rule, functional_counter,
                                          guided_rule)
from seethrough.attribution.where import resolve, scores_and_gradient, values_of, where
from seethrough.hooks import hooks
from seethrough.testing import untouched
from .attribution_fixtures import FunctionalReLU

F64 = dict(dtype=torch.float64)


class Shared(nn.Module):
    """A conv net reusing one ReLU module (below and above ``conv2``), an inplace ReLU, a ReLU6 and a GELU."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(2, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.act, self.inplace, self.six, self.gelu = nn.ReLU(), nn.ReLU(inplace=True), nn.ReLU6(), nn.GELU()
        self.fc1, self.fc2 = nn.Linear(64, 16), nn.Linear(16, 3)

    def forward(self, x):
        h = self.act(self.conv1(x))
        h = self.six(4 * self.conv2(h))
        h = self.act(nn.functional.avg_pool2d(h, 2)).flatten(1)
        return self.fc2(self.gelu(self.inplace(self.fc1(h))))


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return Shared().double().eval()


def _x(n: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 2, 8, 8, generator=torch.Generator().manual_seed(seed), **F64)


class Calls:
    """Counts the model's forward calls and the batch size of each (a test's own hook, removed after)."""

    def __init__(self, model: nn.Module):
        self.model, self.sizes = model, []

    def __enter__(self):
        self.handle = self.model.register_forward_hook(lambda m, i, o: self.sizes.append(i[0].shape[0]))
        return self

    def __exit__(self, *exc):
        self.handle.remove()


@pytest.mark.parametrize("method", ["saliency", "grad-x-input", "sensitivity", "guided-backprop", "deconvnet", "lrp"])
@pytest.mark.parametrize("target", [None, 2])
def test_one_forward_per_call(method, target):
    net, x = _net(), _x()
    with untouched(net), Calls(net) as calls:
        see.attribute(net, x, method, target=target)
    assert calls.sizes == [3], method  # the class is read from the pass the gradient goes through


def test_deeplift_runs_the_reference_and_x_once_each_at_their_own_batch():
    net, x = _net(), _x()
    with untouched(net), Calls(net) as calls:
        see.attribute(net, x, "deeplift", target=None)
    assert calls.sizes == [3, 3]  # not one [x; reference] batch of 6: the backward runs over x only


def _two_step(method: str, net, x, target, score="logit", **where_kw):
    """The methods as they were: a clean forward to resolve the class, then the gradient pass."""
    w = where(net, x, method=method, **where_kw)
    rules = {"saliency": None, "guided-backprop": {ACTIVATIONS: guided_rule},
             "deconvnet": {ACTIVATIONS: deconvnet_rule}}[method]
    with hooks(net):
        idx = resolve(w, x, target)
        g, _ = scores_and_gradient(w, values_of(w, x), x, target, idx, score, rules=rules)
    return g


@pytest.mark.parametrize("method", ["saliency", "guided-backprop", "deconvnet"])
@pytest.mark.parametrize("target,score", [(None, "logit"), (1, "logit"), ([2, 0, 1], "logit"), (None, "probability"),
                                          (None, "log-probability")])
def test_merged_forward_gives_the_two_step_maps(method, target, score):
    net, x = _net(), _x()
    opts = {"abs": False} if method == "saliency" else {}
    with untouched(net):
        ours = see.attribute(net, x, method, target=target, score=score, **opts)
        ref = _two_step(method, net, x, target, score)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("method", ["saliency", "guided-backprop", "deconvnet"])
@pytest.mark.parametrize("where_kw", [{"layer": "conv2"}, {"unit": ("conv2", 1)}, {"unit": ("fc1", 3)}])
def test_merged_forward_at_a_layer_or_a_unit(method, where_kw):
    net, x = _net(), _x()
    opts = {"abs": False} if method == "saliency" else {}
    with untouched(net):
        ours = see.attribute(net, x, method, target=None, **where_kw, **opts)
        ref = _two_step(method, net, x, None, **where_kw)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-14)


def test_merged_forward_callable_target_and_errors():
    net, x = _net(), _x()
    with untouched(net):
        ours = see.attribute(net, x, "saliency", target=lambda out: out[:, 0] - out[:, 1], abs=False)
        ref = _two_step("saliency", net, x, lambda out: out[:, 0] - out[:, 1], None)
        torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-14)
    for method in ("saliency", "guided-backprop"):
        with untouched(net, allow_raise=ValueError), pytest.raises(ValueError, match="out of range"):
            see.attribute(net, x, method, target=7)
        with untouched(net, allow_raise=ValueError), pytest.raises(ValueError, match="outside layer 'conv2'"):
            see.attribute(net, x, method, unit=("conv2", 9))
        with untouched(net, allow_raise=ValueError), pytest.raises(ValueError, match="leave target=None"):
            see.attribute(net, x, method, unit=("conv2", 1), target=0)


def test_saliency_reads_the_class_of_the_eval_mode_forward():
    # A Dropout in train mode: the class must be the eval-mode argmax, as the separate clean forward gave.
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(128, 8), nn.Dropout(0.9), nn.Linear(8, 5)).double().train()
    x = _x(4)
    with untouched(net):
        ours = see.attribute(net, x, "saliency", abs=False)
    with torch.no_grad():
        expected = net.eval()(x).argmax(1)
    net.train()
    ref = net[3].weight[expected] @ net[1].weight  # the eval-mode network is linear: ∂f_c/∂x = W2[c] W1
    torch.testing.assert_close(ours.flatten(1), ref.detach(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("net_fn", [_net, lambda: nn.Sequential(nn.Flatten(), nn.Linear(128, 6), nn.LeakyReLU(0.2),
                                                                 nn.Linear(6, 6), nn.SiLU(), nn.Linear(6, 3)).double()])
def test_guided_gradient_rule_equals_the_custom_function_rule(net_fn):
    torch.manual_seed(3)
    net, x = net_fn().eval(), _x()
    with untouched(net):
        ours = see.attribute(net, x, "guided-backprop", target=[0, 1, 2])
        ref = _two_step("guided-backprop", net, x, [0, 1, 2])
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-14)
    assert (ours - see.attribute(net, x, "saliency", target=[0, 1, 2], abs=False)).abs().max() > 1e-6  # not the gradient


# ------------------------------------------------------------------------------------------ DeepLIFT
def _deeplift_mlp_reference(weights, biases, x, x0, c):
    """Hand-written DeepLIFT rescale on Linear/ReLU layers: multipliers (Δrelu / Δz) back-propagated."""
    zs, z0s, a, a0 = [], [], x, x0
    for i, (w, b) in enumerate(zip(weights, biases)):
        z, z0 = a @ w.T + b, a0 @ w.T + b
        zs.append(z), z0s.append(z0)
        if i < len(weights) - 1:
            a, a0 = z.clamp_min(0), z0.clamp_min(0)
    m = torch.zeros(x.shape[0], weights[-1].shape[0], **F64)
    m[torch.arange(x.shape[0]), c] = 1.0
    m = m @ weights[-1]
    for i in range(len(weights) - 2, -1, -1):
        dz = zs[i] - z0s[i]
        ratio = torch.where(dz.abs() > 1e-10, (zs[i].clamp_min(0) - z0s[i].clamp_min(0)) / torch.where(
            dz.abs() > 1e-10, dz, torch.ones_like(dz)), (zs[i] > 0).to(dz.dtype))
        m = (m * ratio) @ weights[i]
    return (x - x0) * m


def test_deeplift_equals_a_hand_written_rescale_reference():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 6), nn.ReLU(), nn.Linear(6, 3)).double().eval()
    x, x0 = torch.randn(4, 5, **F64), torch.randn(1, 5, **F64)
    c = torch.tensor([0, 2, 1, 2])
    with untouched(net):
        ours = see.attribute(net, x, "deeplift", target=c, baseline=x0)
    lin = [net[0], net[2], net[4]]
    ref = _deeplift_mlp_reference([m.weight for m in lin], [m.bias for m in lin], x, x0.expand_as(x), c)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("where_kw", [{}, {"layer": "conv2"}, {"unit": ("fc1", 2)}])
def test_deeplift_sums_to_delta_with_a_module_reused_below_and_above_the_layer(where_kw):
    # `act` runs below conv2 (no rule binds there with layer=) and above it: each call must meet its own
    # reference call, or the rescale ratios are wrong and the sum misses the delta.
    net, x = _net(), _x()
    with untouched(net):
        a = see.attribute(net, x, "deeplift", target=None if "unit" in where_kw else 1, **where_kw)
        if "unit" in where_kw:
            with hooks(net, capture="fc1") as rec:
                net(x), net(torch.zeros_like(x))
            delta = rec.activations["fc1"][0][:, 2] - rec.activations["fc1"][1][:, 2]
        else:
            delta = net(x)[:, 1] - net(torch.zeros_like(x))[:, 1]
    # GELU is no ReLU: its rescale ratio is exact for the secant, so the sum is exact all the same
    torch.testing.assert_close(a.flatten(1).sum(1), delta, rtol=1e-9, atol=1e-11)


def test_deeplift_batch_equals_single_calls():
    net, x = _net(), _x(4)
    with untouched(net):
        batch = see.attribute(net, x, "deeplift", target=[0, 1, 2, 0])
        singles = torch.cat([see.attribute(net, x[i:i + 1], "deeplift", target=t) for i, t in enumerate([0, 1, 2, 0])])
    torch.testing.assert_close(batch, singles, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------ functional activations
Functional = FunctionalReLU


@pytest.mark.parametrize("method", ["guided-backprop", "deconvnet", "deeplift", "lrp"])
def test_functional_warning_fires_on_every_call(method):
    net, x = Functional().double(), torch.rand(2, 1, 2, 2, **F64)
    for _ in range(3):  # counted once, cached; warned each time
        with untouched(net), pytest.warns(RuntimeWarning, match="1 activation call"):
            see.attribute(net, x, method, target=0)


class FunctionalAct(nn.Module):
    """An activation module of the user's own class: its torch.relu is no unit the rules know."""

    def forward(self, x):
        return torch.relu(x)


def test_functional_count_follows_the_models_code():
    net, x = Functional(), torch.rand(2, 1, 2, 2)
    with pytest.warns(RuntimeWarning, match="1 activation call"):
        see.attribute(net, x, "guided-backprop", target=0)
    net.forward = lambda x: net.l2(net.act(net.l1(x.flatten(1))))  # an instance-level forward: counted anew
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        see.attribute(net, x, "guided-backprop", target=0)
    del net.forward
    net.act = FunctionalAct()  # another submodule class: counted anew, now 2 calls
    with pytest.warns(RuntimeWarning, match="2 activation call"):
        see.attribute(net, x, "guided-backprop", target=0)
    assert isinstance(functional_counter(net), _Known) and functional_counter(net).count == 2  # cached


def test_functional_count_is_not_cached_from_a_failed_forward():
    net = Functional()
    with pytest.raises(RuntimeError):
        see.attribute(net, torch.rand(2, 1, 3, 3), "guided-backprop", target=0)  # 9 features for a Linear(4, ·)
    assert isinstance(functional_counter(net), CountFunctional)  # nothing cached: the next call counts
    with pytest.warns(RuntimeWarning, match="1 activation call"):
        see.attribute(net, torch.rand(2, 1, 2, 2), "guided-backprop", target=0)
    assert isinstance(functional_counter(net), _Known)
