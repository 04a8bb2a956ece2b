"""Top-k projections: guided back-propagation next to the deconvnet and the gradient, against a
hand-written backward pass; no functional-activation warning on LeNet, which has none."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import seethrough as see
from seethrough.inspect import project, topk, topk_examples
from seethrough.testing import untouched

X_TEST, _ = see.zoo.digits("test")


@pytest.fixture(scope="module")
def lenet():
    return see.zoo.load("lenet-digits")[0]


def _by_hand(model, x, unit, pos, mode):
    """relu2's unit at pos, back to the input step by step: 'guided' masks each ReLU by its forward
    pattern and the positive gradient, 'deconvnet' by the positive gradient, 'gradient' by the pattern."""
    x = x.detach().double().requires_grad_()
    conv1, conv2 = model.conv1.double(), model.conv2.double()
    try:
        s1 = conv1(x)
        a1 = s1.clamp_min(0)
        p1 = nn.functional.max_pool2d(a1, 2)
        s2 = conv2(p1)
        g = torch.zeros_like(s2)
        g[torch.arange(len(x)), unit, pos[:, 0], pos[:, 1]] = 1.0

        def through_relu(s, g):
            if mode == "guided":
                return (s > 0) * g.clamp_min(0)
            return g.clamp_min(0) if mode == "deconvnet" else (s > 0) * g

        g = through_relu(s2, g)
        (g,) = torch.autograd.grad(s2, p1, g, retain_graph=True)
        (g,) = torch.autograd.grad(p1, a1, g, retain_graph=True)
        g = through_relu(s1, g)
        (g,) = torch.autograd.grad(s1, x, g)
    finally:
        conv1.float(), conv2.float()
    return g


def test_guided_projection_equals_a_hand_written_backward(lenet):
    x = X_TEST[:3]
    unit = torch.tensor([1, 5, 9])
    # Each unit at its strongest position, as top-k projects it (an active unit: the projected
    # layer's own ReLU is then the identity for every rule).
    act = see.activations(lenet, x, "relu2")["relu2"][torch.arange(3), unit]
    flat = act.flatten(1).argmax(1)
    pos = torch.stack([flat // act.shape[-1], flat % act.shape[-1]], 1)
    assert (act.flatten(1).max(1).values > 0).all()
    ours = {m: project(lenet, x, "relu2", unit, pos, method=m) for m in ("guided-backprop", "deconvnet", "gradient")}
    for method, mode in (("guided-backprop", "guided"), ("deconvnet", "deconvnet"), ("gradient", "gradient")):
        ref = _by_hand(lenet, x, unit, pos, mode)
        torch.testing.assert_close(ours[method].double(), ref, atol=1e-6 * float(ref.abs().max()), rtol=1e-4, msg=method)
    assert not torch.allclose(ours["guided-backprop"], ours["deconvnet"])
    assert not torch.allclose(ours["guided-backprop"], ours["gradient"])


def test_topk_examples_offer_guided_backprop_and_refuse_unknown(lenet):
    x = X_TEST[:60]
    res = topk(lenet, x, "conv2", k=3, progress=False)
    with untouched(lenet):
        c, p = topk_examples(lenet, x, res.head(2), projection="guided-backprop")
    assert c.shape == p.shape == (2, 3, 1, 14, 14)
    with pytest.raises(ValueError, match="'auto', 'deconvnet', 'guided-backprop', 'gradient'"):
        project(lenet, x[:1], "conv2", 0, torch.tensor([[0, 0]]), method="guided")


@pytest.mark.parametrize("layer", ["conv1", "relu2", "fc1"])
def test_no_functional_warning_on_lenet_also_when_projecting(lenet, layer):
    # LeNet's activations are all modules; above a projected unit they are off the backward path,
    # which the old count mistook for functional calls (2 of them for fc1).
    x = X_TEST[:2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for method in ("deconvnet", "guided-backprop"):
            with see.hooks(lenet, capture=layer) as rec:
                score = lambda out: rec[layer].flatten(1)[:, 0]  # noqa: E731
                see.METHODS[method].fn(lenet, x, score)
        for method in ("deconvnet", "guided-backprop", "deeplift", "lrp"):
            see.attribute(lenet, x, method, target=[3, 1])


def test_a_model_that_calls_relu_functionally_is_warned_about():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.l1, self.act, self.l2 = nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)

        def forward(self, x):
            return self.l2(nn.functional.relu(self.act(self.l1(x.flatten(1)))) + torch.relu(x.flatten(1)))

    for method in ("guided-backprop", "deconvnet", "deeplift", "lrp"):
        with pytest.warns(RuntimeWarning, match="2 activation call"):
            see.attribute(Functional(), torch.rand(2, 1, 2, 2), method, target=0)
