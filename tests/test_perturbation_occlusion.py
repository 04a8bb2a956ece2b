"""Occlusion's per-window drops, and the numbers docs/perturbation.md quotes: on the close-up cat
black squares mostly raise the class score, on the compact cup they remove the class."""
from __future__ import annotations

import pathlib
import re

import pytest
import torch
from torch import nn

import seethrough as see
from seethrough.attribution.perturbation import occlusion_drops

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs" / "perturbation.md"


def test_drops_average_into_the_occlusion_map():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 3)).double()
    x = torch.rand(2, 3, 12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    d = occlusion_drops(net, x, [0, 2], window=4, stride=4, score="probability", progress=False)
    with torch.no_grad():
        p = net(x).softmax(1)[torch.arange(2), torch.tensor([0, 2])]
        for k, (r, c) in enumerate(d.corners):  # the definition, window by window
            xo = x.clone()
            xo[:, :, r:r + 4, c:c + 4] = 0
            torch.testing.assert_close(d.drops[:, k], p - net(xo).softmax(1)[torch.arange(2), torch.tensor([0, 2])])
    m = see.attribute(net, x, "occlusion", target=[0, 2], window=4, stride=4, score="probability")
    # non-overlapping windows: each pixel's map value is its window's drop
    torch.testing.assert_close(m[:, 0, ::4, ::4].flatten(1), d.drops)
    assert torch.equal(d.rises(), (d.drops < 0).double().mean(1))


def _stated(text: str, pattern: str) -> tuple[float, ...]:
    found = re.search(pattern, " ".join(text.split()))
    assert found, f"docs/perturbation.md should state: {pattern}"
    return tuple(float(g) for g in found.groups())


@pytest.mark.slow
def test_docs_numbers_black_squares_raise_the_cat_and_remove_the_cup():
    model, prep = see.zoo.load("efficientnet-lite0")
    labels = see.zoo.labels("efficientnet-lite0")
    x = torch.nn.functional.interpolate(torch.cat([prep(see.zoo.image(n)) for n in ("chelsea", "coffee")]),
                                        size=(112, 112), mode="area")
    with torch.no_grad():
        out = model(x)
    t = out.argmax(1)
    assert [labels[int(c)] for c in t] == ["Egyptian cat", "espresso"]
    opts = dict(window=16, stride=8, baseline=0.0, progress=False)
    logit = occlusion_drops(model, x, t, score="logit", **opts)
    prob = occlusion_drops(model, x, t, score="probability", **opts)
    lowest = prob.clean - prob.drops.max(1).values
    text = DOCS.read_text()
    cat_logit, cat_prob = _stated(text, r"raise the Egyptian-cat logit at (\d+) % of the window positions and its "
                                        r"probability at (\d+) %")
    low, clean = _stated(text, r"the lowest probability a black square leaves is ([0-9.]+) \(from ([0-9.]+)\)")
    cup_clean, cup_low = _stated(text, r"drop p\(espresso\) from ([0-9.]+) to ([0-9.]+)")
    (cup_logit,) = _stated(text, r"raise the espresso logit at only (\d+) %")
    assert round(100 * logit.rises()[0].item()) == cat_logit and round(100 * prob.rises()[0].item()) == cat_prob
    assert cat_logit > 50 and cat_logit > cat_prob  # mostly raised, and more often the logit than the probability
    assert round(lowest[0].item(), 2) == low and round(prob.clean[0].item(), 2) == clean
    assert round(prob.clean[1].item(), 2) == cup_clean and round(lowest[1].item(), 2) == cup_low
    assert round(100 * logit.rises()[1].item()) == cup_logit and cup_logit < cat_logit
    assert lowest[1] < 0.1 < 0.5 < lowest[0]  # the cup can be hidden, the cat cannot
