"""Integrated gradients' quadrature, measured: the completeness gaps of the rules behind the default
(Gauss–Legendre) and the steps EfficientNet-Lite0 needs, as docs/attribution.md and the docstring
of ``integrated_gradients`` state them. The full table (LeNet's 360 test digits, eight photos,
five rules, 16-128 steps) is printed by ``benchmarks/ig_quadrature.py``."""
from __future__ import annotations

import pathlib
import re

import pytest
import torch

import seethrough as see
from seethrough.attribution.gradient import integrated_gradients

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs" / "attribution.md"
COMPARED = ("gauss-legendre", "riemann-trapezoid", "riemann-middle")


def _stated(text: str, pattern: str) -> float:
    found = re.search(pattern, " ".join(text.split()))  # line breaks of the markdown are spaces
    assert found, f"the docs should state: {pattern}"
    return float(found.group(1))


def test_on_lenet_the_rules_leave_gaps_of_the_same_size_at_the_default_steps():
    model, _ = see.zoo.load("lenet-digits")
    x, _ = see.zoo.digits("test")
    x = x[:64]
    gaps = {rule: integrated_gradients(model, x, None, rule=rule, progress=False).relative_gap.mean().item()
            for rule in COMPARED}  # steps=50, the default
    # A ReLU network's integrand is piecewise constant along the path: no rule's polynomial
    # exactness helps, and the gaps are of the same size (measured; the docs quote them).
    assert max(gaps.values()) < 1.6 * min(gaps.values()), gaps
    text = DOCS.read_text()
    for rule, gap in gaps.items():
        stated = _stated(text, rf"`{rule}` ([0-9.]+) %")
        assert abs(stated - 100 * gap) < 0.005 + 1e-9, (rule, 100 * gap, stated)


@pytest.mark.slow
def test_efficientnet_needs_more_than_32_steps_for_a_5_percent_gap():
    model, prep = see.zoo.load("efficientnet-lite0")
    x = prep(see.zoo.image("chelsea"))  # 224×224, black baseline, the predicted class
    gap = {s: integrated_gradients(model, x, None, steps=s, progress=False).relative_gap.item() for s in (32, 64)}
    assert gap[32] > 0.05 > gap[64]
    docstring = " ".join(integrated_gradients.__doc__.split())
    for text in (DOCS.read_text(), docstring):
        assert abs(_stated(text, r"32 steps leave ([0-9.]+) %") - 100 * gap[32]) < 0.05 + 1e-9, gap
        assert abs(_stated(text, r"64 steps ([0-9.]+) %") - 100 * gap[64]) < 0.05 + 1e-9, gap
