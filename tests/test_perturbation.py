"""Occlusion and the shared masking core: equal to a hand-written loop, hygiene, bad input."""
import pytest
import torch
from torch import nn

import seethrough as see
from seethrough.attribution.masking import resolve_baseline
from seethrough.testing import untouched

X_TEST, Y_TEST = see.zoo.digits("test")


def small_net(channels=3, seed=0, dtype=torch.float64):
    """A tiny non-linear CNN with a BatchNorm and an inplace ReLU, left in train mode."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True),
                        nn.MaxPool2d(2), nn.Conv2d(4, 6, 3), nn.Tanh(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                        nn.Linear(24, 5))
    return net.to(dtype).train()


def loop_occlusion(model, x, target, window, stride, base):
    """The definition, one window at a time: drop of the target score, averaged per pixel."""
    n, _, h, w = x.shape
    model = model.eval()

    def corners(size, win, step):
        pos = list(range(0, size - win + 1, step))
        return pos if pos[-1] == size - win else pos + [size - win]

    total = torch.zeros(n, 1, h, w, dtype=torch.float64)
    count = torch.zeros(1, 1, h, w, dtype=torch.float64)
    with torch.no_grad():
        clean = model(x)[torch.arange(n), target]
        for r in corners(h, window[0], stride[0]):
            for c in corners(w, window[1], stride[1]):
                xo = x.clone()
                xo[:, :, r:r + window[0], c:c + window[1]] = base[:, :, r:r + window[0], c:c + window[1]]
                drop = clean - model(xo)[torch.arange(n), target]
                total[:, :, r:r + window[0], c:c + window[1]] += drop.view(n, 1, 1, 1)
                count[:, :, r:r + window[0], c:c + window[1]] += 1
    return total / count


@pytest.mark.parametrize("window,stride,baseline", [(4, 2, 0.0), ((5, 3), (3, 2), "mean"), (6, 4, "blur"), (3, 3, 0.5)])
def test_occlusion_equals_a_hand_written_loop(window, stride, baseline):
    net = small_net()
    x = torch.rand(3, 3, 14, 13, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    target = torch.tensor([0, 3, 4])
    win = window if isinstance(window, tuple) else (window, window)
    st = stride if isinstance(stride, tuple) else (stride, stride)
    base = resolve_baseline(x, baseline, blur_sigma=min(win) / 2)
    ref = loop_occlusion(small_net(), x, target, win, st, base)
    with untouched(net):
        ours = see.attribute(net, x, "occlusion", target=target, window=window, stride=stride, baseline=baseline,
                             batch_size=4, progress=False)
    assert ours.shape == (3, 1, 14, 13)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    auto = see.attribute(net, x, "occlusion", target=target, window=window, stride=stride, baseline=baseline)
    torch.testing.assert_close(auto, ref, rtol=1e-10, atol=1e-12)  # batch invariance


def test_occlusion_of_a_patch_detector_is_positive_on_the_patch_only():
    # score = mean of the 8×8 top-left block: hiding any of it (baseline 0) drops the score.
    class Corner(nn.Module):
        def forward(self, x):
            return torch.stack([x[:, :, :8, :8].mean((1, 2, 3)), x.mean((1, 2, 3))], 1)

    x = torch.ones(1, 3, 32, 32)
    a = see.attribute(Corner(), x, "occlusion", target=0, window=4, stride=4)
    assert torch.allclose(a[0, 0, :8, :8], torch.tensor(16 / 64)) and a[0, 0, 8:].abs().max() == 0
    assert a[0, 0, :, 8:].abs().max() == 0


@pytest.fixture(scope="module")
def lenet():
    model, _ = see.zoo.load("lenet-digits")
    return model, X_TEST[:2], Y_TEST[:2]


@pytest.mark.parametrize("method,options", [
    ("occlusion", {"window": 8, "stride": 8}),
    ("lime", {"n_samples": 20, "segments": "grid", "n_segments": 9}),
    ("kernel-shap", {"n_samples": 20, "segments": "slic", "n_segments": 9}),
    ("rise", {"n_samples": 20}),
])
def test_hygiene_on_success_and_on_failure_midway(lenet, method, options):
    model, x, y = lenet
    model.fc1.weight.requires_grad_(False)  # an unusual state that must survive
    try:
        with untouched(model):
            see.attribute(model, x, method, target=y, **options)
        calls = {"n": 0}

        def fails_on_the_second_batch(out):
            calls["n"] += 1
            if calls["n"] > 2:
                raise ValueError("a target failing midway")
            return out[:, 0]

        with untouched(model, allow_raise=ValueError):
            see.attribute(model, x, method, target=fails_on_the_second_batch, batch_size=2, **options)
        assert calls["n"] == 3
    finally:
        model.fc1.weight.requires_grad_(True)
    net = small_net(1, dtype=torch.float32)  # train mode, BatchNorm, inplace ReLU
    with untouched(net):
        see.attribute(net, x, method, target=[4, 1], **options)


@pytest.mark.parametrize("method,options,message", [
    ("occlusion", {"window": 40}, "window 40×40 is larger than the image"),
    ("occlusion", {"window": 4, "stride": 0}, "stride must be ≥ 1"),
    ("occlusion", {"window": (4, 4, 4)}, "window must be an int or a pair"),
    ("occlusion", {"baseline": torch.zeros(3, 32, 32)}, "baseline of shape \\(3, 32, 32\\) does not broadcast"),
    ("occlusion", {"baseline": "gray"}, "baseline must be a number, one of 'mean', 'zeros', 'black', 'blur'"),
    ("occlusion", {"memory_budget": 1000}, "memory_budget of 0.0 MiB is too small for one sample"),
    ("lime", {"n_samples": 1}, "n_samples must be an int >= 2"),
    ("lime", {"kernel_width": 0}, "kernel_width must be a positive number"),
    ("lime", {"segments": "felzenszwalb"}, "segments must be one of 'slic', 'quickshift', 'grid'"),
    ("lime", {"segments": torch.zeros(8, 8, dtype=torch.long)}, "segments must be an integer label tensor of shape"),
    ("kernel-shap", {"n_samples": 0}, "n_samples must be an int >= 2"),
    ("rise", {"n_samples": 1}, "n_samples must be an int >= 2"),
    ("rise", {"p": 1.5}, "p \\(the probability of keeping a cell\\) must be in \\(0, 1\\)"),
    ("rise", {"cells": 64}, "cells=64 is finer than the image"),
])
def test_bad_input_is_a_clear_error_naming_the_option(lenet, method, options, message):
    model, x, y = lenet
    with untouched(model, allow_raise=ValueError), pytest.raises(ValueError, match=message):
        see.attribute(model, x, method, target=y, **options)


def test_report_section_quick():
    import seethrough.report.sections  # noqa: F401  (registers the sections)
    from seethrough.report.registry import SECTIONS, Context, Figure, Table

    blocks = SECTIONS["perturbation"].build(Context(quick=True))
    figures = [b for b in blocks if isinstance(b, Figure)]
    assert [f.title for f in figures] == ["Four perturbation methods", "LIME: the top superpixels",
                                          "Occlusion: when hiding a patch loses the class"]
    assert all(f.provenance["seconds"] >= 0 and f.caption and "http" not in f.caption for f in figures)
    # The occlusion caption quotes its own run: the share of positions where black squares raise the cat logit.
    occ = figures[2].caption
    assert "black squares raise the Egyptian cat logit at" in occ and "%" in occ and "from 0." in occ
    (table,) = [b for b in blocks if isinstance(b, Table)]
    assert [r[0] for r in table.rows] == ["occlusion", "LIME", "KernelSHAP", "RISE"]
    # KernelSHAP's efficiency, as the table states it: Σ weights = f(x) − f(black)
    check = table.rows[2][3]
    total, gap = float(check.split("Σ weights ")[1].split(";")[0]), float(check.split("= ")[1].split(" (")[0])
    assert abs(total - gap) < 1e-2 * max(1.0, abs(gap))
