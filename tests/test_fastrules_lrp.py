"""LRP at one forward (issue 21 item 3): BatchNorm folded inside the rules instead of on a model copy, z and its
pull-back from one map, the ε rule through the forward's own graph. References: the folded deep copy
(:func:`fold_batchnorm`, float64) and hand-written rules."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import seethrough as see
from seethrough.attribution.canonize import fold_batchnorm
from seethrough.attribution.lrp import COMPOSITES, lrp_relevances
from seethrough.testing import untouched

F64 = dict(dtype=torch.float64)


def _with_bn(seed: int, bias: bool) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1, bias=bias), nn.BatchNorm2d(6), nn.ReLU6(),
        nn.Conv2d(6, 6, 3, padding=1, groups=6, bias=bias), nn.BatchNorm2d(6), nn.ReLU(),  # depthwise
        nn.Conv2d(6, 4, 1, bias=bias), nn.BatchNorm2d(4),  # a linear projection: the next conv sees signed inputs
        nn.Conv2d(4, 4, 3, padding=1, bias=bias), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        nn.Linear(16, 8, bias=bias), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 5)).double().eval()
    with torch.no_grad():
        for m in net:
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(-1, 2), m.bias.uniform_(-0.5, 0.5)  # negative scales flip W⁺ and W⁻
    return net


@pytest.mark.parametrize("composite", list(COMPOSITES))
@pytest.mark.parametrize("bias", [False, True])
def test_fold_in_the_rules_equals_the_folded_copy(composite, bias):
    net = _with_bn(0, bias)
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(1), **F64)
    with untouched(net):
        ours, sums = lrp_relevances(net, x, [0, 3, 4], composite=composite, stabilizer=1e-3)
        ref, ref_sums = lrp_relevances(fold_batchnorm(net, x), x, [0, 3, 4], composite=composite, stabilizer=1e-3,
                                       canonize=False)
    assert list(sums) == list(ref_sums) == ["15", "12", "8", "6", "3", "0"]  # no BatchNorm of its own: folded
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    for name in sums:
        torch.testing.assert_close(sums[name], ref_sums[name], rtol=1e-10, atol=1e-12, msg=name)


def test_fold_is_not_a_copy():
    net = _with_bn(1, False)
    x = torch.rand(2, 3, 8, 8, **F64)
    real = copy.deepcopy

    def refuse(*args, **kwargs):
        raise AssertionError("lrp copied the model")

    copy.deepcopy = refuse
    try:
        with untouched(net):
            a = see.attribute(net, x, "lrp", target=1)
    finally:
        copy.deepcopy = real
    assert torch.isfinite(a).all() and a.abs().sum() > 0


class Detour(nn.Module):
    """A conv listed before a BatchNorm that reads something else: folding it would change the outputs."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.other = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3), nn.Conv2d(3, 3, 1)
        self.act, self.fc = nn.ReLU(), nn.Linear(3 * 64, 4)

    def forward(self, x):
        return self.fc(self.act(self.bn(self.other(x)) + self.conv(x)).flatten(1))


def test_a_batchnorm_that_does_not_read_its_neighbour_runs_unfolded():
    torch.manual_seed(2)
    net = Detour().double().eval()
    with torch.no_grad():
        net.bn.running_var.uniform_(0.5, 2), net.bn.weight.uniform_(0.5, 2)
    x = torch.rand(2, 3, 8, 8, **F64)
    with untouched(net), pytest.warns(RuntimeWarning, match="BatchNorm folding skipped for 1"):
        ours, sums = lrp_relevances(net, x, 1, composite="epsilon")
    plain, plain_sums = lrp_relevances(net, x, 1, composite="epsilon", canonize=False)
    torch.testing.assert_close(ours, plain, rtol=1e-12, atol=1e-14)
    assert list(sums) == list(plain_sums) and "bn" in sums


def _zplus_linear(w: torch.Tensor, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """z⁺ without bias by hand: R_x = x⁺ ⊙ W⁺ᵀ(r / z) + x⁻ ⊙ W⁻ᵀ(r / z), z = W⁺x⁺ + W⁻x⁻."""
    xp, xn, wp, wn = x.clamp_min(0), x.clamp_max(0), w.clamp_min(0), w.clamp_max(0)
    s = r / (xp @ wp.T + xn @ wn.T + 1e-9)
    return xp * (s @ wp) + xn * (s @ wn)


def test_zplus_on_signed_inputs_equals_the_hand_rule():
    torch.manual_seed(4)
    net = nn.Sequential(nn.Linear(6, 5, bias=False), nn.Linear(5, 3, bias=False)).double()
    x = torch.randn(4, 6, **F64)  # signed: both terms of z⁺ are at work
    c = torch.tensor([0, 1, 2, 1])
    with untouched(net):
        ours, sums = lrp_relevances(net, x, c, composite="epsilon", rules={"0": "zplus"}, stabilizer=0.0)
    h = x @ net[0].weight.T
    r_h = h * net[1].weight[c]  # ε = 0 on the last layer: R_h = h ⊙ w_c (no bias)
    ref = _zplus_linear(net[0].weight.detach(), x, r_h)
    torch.testing.assert_close(ours, ref.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(sums["0"], ref.sum(1).detach(), rtol=1e-10, atol=1e-12)


def test_effnet_in_float64_fold_in_the_rules_equals_the_folded_copy():
    model, prep = see.zoo.load("efficientnet-lite0")
    net = copy.deepcopy(model).double()
    x = nn.functional.interpolate(prep(see.zoo.image("chelsea")).double(), size=64, mode="bilinear", antialias=True)
    for composite in ("epsilon-plus-flat", "epsilon-gamma-flat"):
        ours, sums = lrp_relevances(net, x, 285, composite=composite, stabilizer=1.0)
        ref, ref_sums = lrp_relevances(fold_batchnorm(net, x), x, 285, composite=composite, stabilizer=1.0,
                                       canonize=False)
        assert list(sums) == list(ref_sums)
        torch.testing.assert_close(ours, ref, rtol=1e-7, atol=1e-7 * float(ref.abs().max()), msg=composite)
