import pytest
import torch
from torch import nn

import seethrough as see
from seethrough.testing import assert_unchanged, snapshot, untouched


class Twice(nn.Module):
    """One ReLU module used twice, an inplace ReLU and a BatchNorm, left in train mode."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 6)
        self.bn = nn.BatchNorm1d(6)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(6, 6)
        self.inplace = nn.ReLU(inplace=True)
        self.out = nn.Linear(6, 3)

    def forward(self, x):
        h = self.act(self.bn(self.fc1(x)))
        h = self.act(self.fc2(h) - 0.1)
        return self.out(self.inplace(h))


def test_one_capture_per_call_and_everything_restored():
    torch.manual_seed(0)
    net = Twice().train()
    net.fc2.weight.requires_grad_(False)
    x = torch.randn(5, 4)
    with untouched(net):
        with see.hooks(net, capture=["act", "fc2"]) as rec:
            net(x)
            assert not net.training  # eval unless asked
        assert rec.calls == {"act": 2, "fc2": 1}
        assert torch.equal(rec.activations["act"][0], torch.relu(net.bn.eval()(net.fc1(x))).detach())
        net.train()  # the line above flipped bn for the reference; untouched() would catch it otherwise
    assert net.training and not net.fc2.weight.requires_grad


def test_capture_survives_a_following_inplace_activation():
    net = nn.Sequential(nn.Linear(3, 3), nn.ReLU(inplace=True))
    with torch.no_grad():
        net[0].weight.copy_(-torch.eye(3))
        net[0].bias.zero_()
    x = torch.ones(1, 3)
    with see.hooks(net, capture="0") as rec:
        y = net(x)
    assert torch.equal(rec["0"], -torch.ones(1, 3))  # not overwritten by the ReLU
    assert torch.equal(y, torch.zeros(1, 3))


def test_layer_gradients_through_captures():
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    x = torch.randn(2, 3)
    with see.hooks(net, capture="1") as rec:
        y = net(x).sum()
        (g,) = torch.autograd.grad(y, rec["1"])
    assert torch.allclose(g, net[2].weight.expand(2, 4))


def test_restored_after_exception_and_train_mode_buffers():
    net = Twice().train()
    before = snapshot(net)
    with pytest.raises(RuntimeError, match="midway"):
        with see.hooks(net, capture="bn", rules={nn.ReLU: lambda m, x, y, g: g}, train=True):
            net(torch.randn(8, 4))  # train mode: BN running stats move
            raise RuntimeError("midway")
    assert_unchanged(net, before)


def test_rule_replaces_backward_for_repeated_and_inplace_modules():
    torch.manual_seed(1)
    net = Twice()
    x = torch.randn(3, 4, requires_grad=True)
    zero_rule = lambda m, x, y, g: torch.zeros_like(x)  # noqa: E731
    with see.hooks(net, rules={nn.ReLU: zero_rule}):
        (g,) = torch.autograd.grad(net(x).sum(), x)
    assert torch.count_nonzero(g) == 0
    identity = lambda m, x, y, g: g  # noqa: E731 - gradient as if the ReLUs were linear
    with see.hooks(net, rules={nn.ReLU: identity}):
        (g_lin,) = torch.autograd.grad(net(x).sum(), x)
    lin = lambda z: net.out(net.fc2(net.bn(net.fc1(z))) - 0.1)  # noqa: E731
    net.eval()
    (ref,) = torch.autograd.grad(lin(x).sum(), x)
    assert torch.allclose(g_lin, ref, atol=1e-6)
    # forward values are untouched by rules
    with see.hooks(net, rules={nn.ReLU: zero_rule}):
        y = net(x)
    assert torch.equal(y, net(x))


def test_unknown_layer_suggests_close_names():
    net = Twice()
    with pytest.raises(ValueError, match="closest: fc1"):
        with see.hooks(net, capture="fc_1"):
            pass
    assert not net.fc1._forward_hooks


def test_hygiene_helper_catches_changes():
    net = nn.Linear(2, 2)
    for change in (
        lambda: net.weight.data.add_(1e-7),
        lambda: net.register_forward_hook(lambda *a: None),
        lambda: net.train(not net.training),
        lambda: net.bias.requires_grad_(False),
        lambda: net(torch.ones(1, 2)).sum().backward(),
    ):
        before = snapshot(net)
        change()
        with pytest.raises(AssertionError):
            assert_unchanged(net, before)
