"""Incremental occlusion (Krypton) against dense occlusion: exactness, hygiene, invariances, bad input."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import seethrough as see
from seethrough.attribution import incremental as inc
from seethrough.attribution.incremental import incremental_scores
from seethrough.attribution.occlusion import occlusion_drops, occlusion_windows
from seethrough.testing import torch_threads, untouched


class Block(nn.Module):
    """An inverted residual block: 1x1 expand, depthwise 3x3, 1x1 project, residual add."""

    def __init__(self, c: int):
        super().__init__()
        self.expand = nn.Sequential(nn.Conv2d(c, 2 * c, 1), nn.BatchNorm2d(2 * c), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c), nn.BatchNorm2d(2 * c), nn.ReLU6())
        self.project = nn.Conv2d(2 * c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.dw(self.expand(x))) + x


def small_net(extra: nn.Module | None = None) -> nn.Module:
    """Strides, asymmetric padding, dilation, 'same', depthwise, grouped, max/avg pool and residuals."""
    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 8, 3, stride=2, padding=(1, 0)), nn.ReLU(), Block(8),
              nn.Conv2d(8, 8, 5, padding="same", dilation=2, groups=2), nn.BatchNorm2d(8), nn.ReLU(),
              nn.MaxPool2d(3, stride=2, padding=1), Block(8), nn.Conv2d(8, 12, 3, stride=2, padding=1),
              nn.ReLU6(), nn.AvgPool2d(2)]
    if extra is not None:  # early, while the update box is still small
        layers.insert(2, extra)
    net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 5))
    for m in net.modules():  # non-trivial BatchNorm statistics, so eval mode matters
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.fixture(autouse=True)
def one_thread():
    # The nets here are tiny: with two threads on a busy 2-core machine each small op waits for the
    # other thread (the file took 160 s instead of 15); results are compared in float64 either way.
    with torch_threads(1):
        yield


def both(model, x, target, **kw):
    dense = occlusion_drops(model, x, target, progress=False, **kw).drops
    fast = occlusion_drops(model, x, target, progress=False, incremental=True, **kw).drops
    return dense, fast


@pytest.mark.parametrize("window,stride", [(8, 4), (4, 2), (5, 3)])
def test_lenet_float32_equals_dense(window, stride):
    model, _ = see.zoo.load("lenet-digits")
    x, y = see.zoo.digits("test")
    with torch_threads(1), untouched(model):
        dense, fast = both(model, x[:3], y[:3], window=window, stride=stride)
    assert (dense - fast).abs().max() <= 1e-5


def test_lenet_plan_is_incremental_without_fallback():
    model, _ = see.zoo.load("lenet-digits")
    x, y = see.zoo.digits("test")
    _, plan = incremental_scores(model, x[:1], y[:1], None, [(0, 0)], (8, 8), torch.zeros_like(x[:1]),
                                 score="logit", progress=False)
    assert plan.incremental[:3] == ["conv1", "relu1", "pool1"] and plan.fallback == [] and plan.reason is None


@pytest.mark.slow
def test_efficientnet_float32_equals_dense_at_64px():
    model, _ = see.zoo.load("efficientnet-lite0")
    torch.manual_seed(1)
    x = torch.rand(1, 3, 64, 64)
    with torch_threads(1), untouched(model):
        dense, fast = both(model, x, 3, window=16, stride=8)
    # float32 drops of logits of size ~10 through 60 layers: equal to 1e-5 of the largest drop (≈ 1e-4 here)
    assert (dense - fast).abs().max() <= 1e-5 * max(1.0, dense.abs().max().item())
    _, plan = incremental_scores(model, x, 3, None, [(0, 0)], (16, 16), torch.zeros_like(x), score="logit",
                                 progress=False)
    assert plan.fallback == [] and len(plan.incremental) > 20  # the residual adds run on boxes too
    assert any(n.startswith("add") for n in plan.incremental)
    # at 224 px a 32-pixel window's boxes fill the 14×14 maps at block 8 (docs/perturbation.md)
    x224 = torch.rand(1, 3, 224, 224)
    _, plan = incremental_scores(model, x224, 3, None, [(96, 96)], (32, 32), torch.zeros_like(x224), score="logit",
                                 progress=False)
    assert plan.dense[0] == "blocks_8_depthwise_conv" and plan.fallback == []


@pytest.mark.parametrize("window,stride", [(5, 3), (7, 4), (3, 5)])
def test_float64_small_net_equals_dense(window, stride):
    net = small_net().double()
    x = torch.rand(2, 3, 29, 31, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with untouched(net):
        dense, fast = both(net, x, 1, window=window, stride=stride)
    assert fast.dtype == torch.float64
    assert (dense - fast).abs().max() <= 1e-10


def test_unsupported_module_runs_dense_from_there():
    net = small_net(nn.Upsample(scale_factor=2)).double()  # no box rule for Upsample
    x = torch.rand(1, 3, 29, 31, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    dense, fast = both(net, x, 0, window=6, stride=5)
    assert (dense - fast).abs().max() <= 1e-10
    _, plan = incremental_scores(net, x, 0, None, [(0, 0)], (6, 6), torch.zeros_like(x), score="logit",
                                 progress=False)
    assert plan.fallback == ["_2"] and plan.incremental == ["_0", "_1"]  # the Upsample, stated and counted


def test_untraceable_model_runs_dense():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)

        def forward(self, x):
            y = self.conv(x)
            return (y if y.sum() > 0 else -y).mean((2, 3))  # control flow on values: fx cannot trace it

    net = Branchy().double()
    x = torch.rand(1, 1, 12, 12, dtype=torch.float64)
    dense, fast = both(net, x, 0, window=4, stride=4)
    assert (dense - fast).abs().max() <= 1e-12  # both dense (batch sizes may differ between the calls)
    _, plan = incremental_scores(net, x, 0, None, [(0, 0)], (4, 4), torch.zeros_like(x), score="logit", progress=False)
    assert _ is None and "cannot trace" in plan.reason


def test_forward_with_optional_argument_runs_dense():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = small_net().double()

        def forward(self, x, scale=None):  # fx makes `scale` a second input: the engine steps aside
            return self.net(x) * (1.0 if scale is None else scale)

    net = Scaled()
    x = torch.rand(1, 3, 29, 31, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    dense, fast = both(net, x, 0, window=6, stride=6)
    assert (dense - fast).abs().max() <= 1e-12  # both dense (batch sizes may differ between the calls)
    s, plan = incremental_scores(net, x, 0, None, [(0, 0)], (6, 6), torch.zeros_like(x), score="logit", progress=False)
    assert s is None and "more than the image" in plan.reason


def test_batch_invariance_and_fixed_result():
    net = small_net().double()
    x = torch.rand(3, 3, 29, 31, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    target = torch.tensor([0, 2, 4])
    kw = dict(window=6, stride=4, incremental=True, progress=False)
    together = see.attribute(net, x, "occlusion", target, **kw)
    one_by_one = torch.cat([see.attribute(net, x[i:i + 1], "occlusion", target[i:i + 1], **kw) for i in range(3)])
    assert (together - one_by_one).abs().max() <= 1e-12
    with torch_threads(1):  # a fixed batch size and thread count: the same bits on a rerun
        first = see.attribute(net, x, "occlusion", target, batch_size=4, **kw)
        assert torch.equal(first, see.attribute(net, x, "occlusion", target, batch_size=4, **kw))
    small = see.attribute(net, x, "occlusion", target, batch_size=5, **kw)
    assert (together - small).abs().max() <= 1e-12


def test_train_mode_model_untouched_also_when_the_engine_raises(monkeypatch):
    net = small_net().train()
    x = torch.rand(2, 3, 29, 31)
    with untouched(net):
        see.attribute(net, x, "occlusion", 0, window=6, stride=6, incremental=True, progress=False)
    assert net.training

    def boom(*a, **k):
        raise RuntimeError("engine failed midway")

    monkeypatch.setattr(inc.Engine, "run", boom)
    with untouched(net, allow_raise=RuntimeError):
        see.attribute(net, x, "occlusion", 0, window=6, stride=6, incremental=True, progress=False)
    assert net.training


def test_approximate_mode():
    net = small_net().double()
    x = torch.rand(1, 3, 29, 31, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    exact = occlusion_drops(net, x, 0, window=6, stride=4, incremental=True, progress=False).drops
    full = occlusion_drops(net, x, 0, window=6, stride=4, incremental="approximate", projection=1.0,
                           progress=False).drops
    capped = occlusion_drops(net, x, 0, window=6, stride=4, incremental="approximate", projection=0.2,
                             progress=False).drops
    assert (exact - full).abs().max() <= 1e-10  # τ = 1 caps nothing
    assert (exact - capped).abs().max() > 1e-6  # τ = 0.2 drops changes outside the capped boxes
    assert torch.isfinite(capped).all()


def test_bad_input_one_line():
    net = small_net()
    x = torch.rand(1, 3, 29, 31)
    with pytest.raises(ValueError, match="incremental must be False, True or 'approximate'"):
        see.attribute(net, x, "occlusion", 0, incremental="fast", progress=False)
    with pytest.raises(ValueError, match="pass incremental='approximate'"):
        see.attribute(net, x, "occlusion", 0, incremental=True, projection=0.5, progress=False)
    with pytest.raises(ValueError, match=r"projection is a fraction of each map in \(0, 1\]"):
        see.attribute(net, x, "occlusion", 0, incremental="approximate", projection=2.0, progress=False)
    lin = nn.Linear(3, 2)
    b = see.boundary(lin, kind="tabular", background=torch.zeros(4, 3))
    with pytest.raises(ValueError, match="incremental= applies to image occlusion") as e:
        see.attribute(b, torch.ones(1, 3), "occlusion", 0, incremental=True, progress=False)
    assert "\n" not in str(e.value)


def test_windows_match_dense_corners():
    # the engine scores exactly the windows dense occlusion slides over, border windows included
    (wh, ww), corners = occlusion_windows((29, 31), 6, 4)
    assert corners[-1] == (29 - wh, 31 - ww)
