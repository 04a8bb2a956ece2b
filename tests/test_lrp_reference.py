"""LRP against hand-written float64 references: every rule (ε, z⁺, γ, flat, w²) written out on the
dense matrices of a small conv/linear net and compared elementwise; ReLU6 passes relevance through
(saturated units too); z⁺ without bias against the α1β0 of the literature; the share of the logit
that the biases absorb on lenet-digits, as docs/attribution.md states it."""
from __future__ import annotations

import pathlib
import re

import pytest
import torch
from torch import nn

import seethrough as see
from seethrough.attribution.lrp import RULES, lrp_relevances

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs" / "attribution.md"
EPSILON, GAMMA = 1e-2, 0.25  # large enough that a wrong ε or γ term shows


# ------------------------------------------------------------------ the dense, hand-written reference
def conv_matrix(conv: nn.Conv2d, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple]:
    """The convolution as a matrix W (out × in), its bias per output, the 0/1 receptive-field
    structure M, and the output shape; built by index arithmetic, not by calling the conv."""
    (k, _), (s, _), (p, _) = conv.kernel_size, conv.stride, conv.padding
    cin, cout = conv.in_channels, conv.out_channels
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    W = torch.zeros(cout * oh * ow, cin * h * w, dtype=torch.float64)
    M = torch.zeros_like(W)
    for co in range(cout):
        for i in range(oh):
            for j in range(ow):
                row = (co * oh + i) * ow + j
                for ci in range(cin):
                    for a in range(k):
                        for b in range(k):
                            r, c = i * s - p + a, j * s - p + b
                            if 0 <= r < h and 0 <= c < w:
                                col = (ci * h + r) * w + c
                                W[row, col] = conv.weight[co, ci, a, b]
                                M[row, col] = 1.0
    return W, conv.bias.detach().repeat_interleave(oh * ow), M, (cout, oh, ow)


def relevance_in(rule: str, W: torch.Tensor, b: torch.Tensor, M: torch.Tensor, x: torch.Tensor, R: torch.Tensor,
                 ) -> torch.Tensor:
    """One rule for one sample: input relevance (in,) from output relevance R (out,), written out."""
    if rule == "epsilon":
        z = W @ x + b
        s = R / (z + EPSILON * (2 * (z >= 0).double() - 1))
        return x * (W.T @ s)
    if rule == "gamma":
        Wg, bg = W + GAMMA * W.clamp_min(0), b + GAMMA * b.clamp_min(0)
        z = Wg @ x + bg
        return x * (Wg.T @ (R / (z + 1e-9 * (2 * (z >= 0).double() - 1))))
    if rule == "zplus":  # z_ij = (x_i w_ij)⁺, no bias anywhere
        zij = (W * x[None, :]).clamp_min(0)
        return zij.T @ (R / (zij.sum(1) + 1e-9))
    if rule == "flat":  # uniform over the receptive field, whatever x and W are
        return M.T @ (R / (M.sum(1) + 1e-12))
    if rule == "wsquare":
        W2 = W * W
        return W2.T @ (R / (W2.sum(1) + 1e-12))
    raise AssertionError(rule)


class Small(nn.Module):
    """conv (padding 1) → ReLU6 → conv (stride 2) → ReLU → linear → ReLU → linear, all with biases."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv1, self.act1 = nn.Conv2d(2, 3, 3, padding=1), nn.ReLU6()
        self.conv2, self.act2 = nn.Conv2d(3, 4, 3, stride=2), nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc1, self.act3, self.fc2 = nn.Linear(16, 6), nn.ReLU(), nn.Linear(6, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
            self.conv1.weight.mul_(3)  # so that some ReLU6 inputs saturate (≥ 6)
        self.double()

    def forward(self, x):
        x = self.act2(self.conv2(self.act1(self.conv1(x))))
        return self.fc2(self.act3(self.fc1(self.flatten(x))))


def reference_lrp(net: Small, x: torch.Tensor, target: torch.Tensor, rules: list[str]) -> tuple[torch.Tensor, list]:
    """LRP with ``rules`` (conv1, conv2, fc1, fc2) and relevance passed through every activation."""
    W1, b1, M1, shape1 = conv_matrix(net.conv1, *x.shape[2:])
    W2, b2, M2, _ = conv_matrix(net.conv2, *shape1[1:])
    W3, b3 = net.fc1.weight.detach(), net.fc1.bias.detach()
    W4, b4 = net.fc2.weight.detach(), net.fc2.bias.detach()
    layers = [(W1, b1, M1), (W2, b2, M2), (W3, b3, torch.ones_like(W3)), (W4, b4, torch.ones_like(W4))]
    maps, sums = [], []
    for xi, t in zip(x, target):
        a = [xi.flatten()]
        pre = W1 @ a[0] + b1
        a.append(pre.clamp(0, 6))
        a.append((W2 @ a[1] + b2).clamp_min(0))
        a.append((W3 @ a[2] + b3).clamp_min(0))
        out = W4 @ a[3] + b4
        R = torch.zeros_like(out)
        R[t] = out[t]  # LRP starts from the logit
        per_layer = []
        for (W, b, M), inp, rule in zip(reversed(layers), reversed(a), reversed(rules)):
            R = relevance_in(rule, W, b, M, inp, R)  # the activation below passes R on unchanged
            per_layer.append(R.sum())
        maps.append(R.view_as(xi))
        sums.append(torch.stack(per_layer))
    return torch.stack(maps), torch.stack(sums, 1)  # (N, C, H, W), (layers, N) from the output down


@pytest.fixture(scope="module")
def small():
    net = Small().eval()
    x = torch.rand(3, 2, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    return net, x, torch.tensor([0, 2, 1])


def test_the_dense_reference_is_the_network(small):
    net, x, _ = small
    W1, b1, _, shape = conv_matrix(net.conv1, 5, 5)
    torch.testing.assert_close((x.flatten(1) @ W1.T + b1).view(3, *shape), net.conv1(x), rtol=1e-12, atol=1e-12)
    saturated = (net.conv1(x) >= 6).double().mean()
    assert 0.05 < saturated < 0.6  # the ReLU6 case is exercised


# flat and w² are first-layer rules: they spread relevance over the receptive field whatever the
# input is, and in the gradient reading (relevance = a ⊙ g) a zero activation of a hidden layer
# cannot carry it. So they sit on conv1, under z⁺; the other rules run at every layer.
LAYOUT = {rule: [rule] * 4 if rule in ("epsilon", "gamma", "zplus") else [rule, "zplus", "zplus", "zplus"]
          for rule in RULES}


@pytest.mark.parametrize("rule", RULES)
def test_each_rule_equals_its_float64_reference_elementwise(small, rule):
    net, x, t = small
    names = dict(zip(["conv1", "conv2", "fc1", "fc2"], LAYOUT[rule]))
    ours, sums = lrp_relevances(net, x, t, composite=lambda name, m, first: names.get(name), stabilizer=EPSILON, gamma=GAMMA)
    ref, ref_sums = reference_lrp(net, x, t, LAYOUT[rule])
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    assert list(sums) == ["fc2", "fc1", "conv2", "conv1"]
    torch.testing.assert_close(torch.stack(list(sums.values())), ref_sums, rtol=1e-10, atol=1e-12)


def test_saturated_relu6_keeps_its_relevance_toy():
    # The toy W1 = diag(4, 1), x = (2, 1), with the input scaled into [0, 1]: W1 = diag(16, 4),
    # x = (0.5, 0.25); ReLU6, w2 = (1, 1): f = min(8, 6) + 1 = 7 with relevances [6, 1].
    net = nn.Sequential(nn.Flatten(), nn.Linear(2, 2, bias=False), nn.ReLU6(), nn.Linear(2, 1, bias=False)).double()
    with torch.no_grad():
        net[1].weight.copy_(torch.diag(torch.tensor([16.0, 4.0])))
        net[3].weight.fill_(1.0)
    x = torch.tensor([[[[0.5, 0.25]]]], dtype=torch.float64)
    for composite in ("epsilon", "epsilon-plus"):
        a = see.attribute(net, x, "lrp", target=0, composite=composite, stabilizer=0.0)
        assert a.flatten().tolist() == [6.0, 1.0], composite
    # The plain gradient through the saturated unit is 0: what a gradient-only LRP would give.
    assert see.attribute(net, x, "grad-x-input", target=0).flatten().tolist() == [0.0, 1.0]


def _bias_free_relu6(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.ReLU6(), nn.MaxPool2d(2),
                        nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.ReLU6(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                        nn.Linear(32, 16, bias=False), nn.ReLU6(), nn.Linear(16, 5, bias=False)).double().eval()
    with torch.no_grad():
        for m in net:
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.abs_().mul_(4)  # positive and large: many units saturate, every output has z⁺ > 0
    return net


@pytest.mark.parametrize("composite", ["epsilon", "epsilon-plus", "epsilon-plus-flat", "epsilon-gamma-flat"])
def test_relevance_is_conserved_through_saturated_relu6(composite):
    net = _bias_free_relu6(0)
    x = torch.rand(3, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) + 0.1
    with see.hooks(net, capture=["1", "4", "8"]) as rec, torch.no_grad():
        score = net(x)
    saturated = [(rec[n] >= 6).double().mean().item() for n in ("1", "4", "8")]
    assert min(saturated) > 0.1  # every ReLU6 layer has saturated units
    target = score.argmax(1)
    attribution, sums = lrp_relevances(net, x, target, composite=composite, stabilizer=1e-12)
    logit = score.gather(1, target[:, None])[:, 0]
    for name, s in sums.items():
        torch.testing.assert_close(s, logit, rtol=1e-9, atol=0, msg=f"layer {name}")
    torch.testing.assert_close(attribution.sum((1, 2, 3)), logit, rtol=1e-9, atol=0)


# --------------------------------------------------------------------------------- z⁺ against α1β0
def alpha1beta0(W: torch.Tensor, b: torch.Tensor, x: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """Bach et al. (2015), α = 1, β = 0: z_j⁺ = Σ_i (x_i w_ij)⁺ + b_j⁺ in the denominator."""
    zij = (W * x[None, :]).clamp_min(0)
    return zij.T @ (R / (zij.sum(1) + b.clamp_min(0)))


def test_zplus_is_alpha1beta0_without_the_bias():
    g = torch.Generator().manual_seed(3)
    lin = nn.Linear(6, 4).double()
    with torch.no_grad():
        lin.weight.copy_(torch.randn(4, 6, generator=g, dtype=torch.float64))
        lin.bias.copy_(torch.rand(4, generator=g, dtype=torch.float64) + 0.5)  # positive biases
    net = nn.Sequential(nn.Flatten(), lin)
    x = torch.rand(2, 1, 2, 3, dtype=torch.float64, generator=g)
    t = torch.tensor([1, 3])
    ours = see.attribute(net, x, "lrp", target=t, composite=lambda n, m, first: "zplus" if n == "1" else None)
    logit = net(x).detach()[torch.arange(2), t]
    literature = []
    for xi, ti, zi in zip(x.flatten(1), t, logit):
        R = torch.zeros(4, dtype=torch.float64)
        R[ti] = zi
        literature.append(alpha1beta0(lin.weight.detach(), lin.bias.detach(), xi, R))
        # without a bias the two are the same rule
        torch.testing.assert_close(ours[len(literature) - 1].flatten(),
                                   alpha1beta0(lin.weight.detach(), torch.zeros(4, dtype=torch.float64), xi, R),
                                   rtol=1e-9, atol=1e-12)
    literature = torch.stack(literature)
    torch.testing.assert_close(ours.flatten(1).sum(1), logit, rtol=1e-9, atol=0)  # ours conserves
    assert (literature.sum(1) < logit - 1e-3).all()  # α1β0's positive bias absorbs a share


def test_zplus_drops_the_relevance_of_an_output_that_only_its_bias_made():
    # Output 0 has no positive contribution (z⁺ = 0) and lives on its bias: its relevance reaches no
    # input, under our z⁺ and under α1β0 alike (docs/attribution.md, conventions).
    lin = nn.Linear(2, 2).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[-1.0, -1.0], [1.0, 2.0]]))
        lin.bias.copy_(torch.tensor([5.0, 0.0]))
    net = nn.Sequential(nn.Flatten(), lin)
    x = torch.tensor([[[[1.0, 1.0]]]], dtype=torch.float64)
    a = see.attribute(net, x, "lrp", target=0, composite=lambda n, m, first: "zplus" if n == "1" else None)
    assert net(x)[0, 0].item() == 3.0 and a.abs().max().item() == 0.0


# ------------------------------------------------------------------- what the biases absorb on LeNet
def bias_absorbed_share(composite: str) -> float:
    """1 − Σ(input relevance) / logit, averaged over the 360 test digits (predicted class)."""
    model, _ = see.zoo.load("lenet-digits")
    x, _ = see.zoo.digits("test")
    with torch.no_grad():
        out = model(x)
    t = out.argmax(1)
    a, _ = lrp_relevances(model, x, t, composite=composite)
    return float((1 - a.sum((1, 2, 3)) / out.gather(1, t[:, None])[:, 0]).mean())


def test_docs_state_the_share_of_the_logit_the_biases_absorb_on_lenet():
    text = " ".join(DOCS.read_text().split())  # line breaks of the markdown are spaces
    for composite in ("epsilon-plus-flat", "epsilon"):
        share = bias_absorbed_share(composite)
        assert 0 < share < 0.2
        stated = re.search(rf"`{re.escape(composite)}`: ([0-9.]+) % of the logit", text)
        assert stated, f"docs/attribution.md should state the share for {composite}"
        assert abs(float(stated.group(1)) - 100 * share) < 0.05, (composite, 100 * share)
