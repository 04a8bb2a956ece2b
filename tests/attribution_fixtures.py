"""Fixtures the attribution tests share: LeNet on six test digits, EfficientNet-Lite0 on two photos at 64×64."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import seethrough as see


def digits(split: str):
    """The bundled digits split as (x, y)."""
    return see.zoo.digits(split)


@pytest.fixture(scope="module")
def lenet():
    model, _ = see.zoo.load("lenet-digits")
    x, _ = digits("test")
    return model, x[:6], torch.tensor([3, 1, 4, 1, 5, 9])


@pytest.fixture(scope="module")
def effnet():
    model, prep = see.zoo.load("efficientnet-lite0")
    x = torch.cat([prep(see.zoo.image("chelsea")), prep(see.zoo.image("coffee"))])
    return model, nn.functional.interpolate(x, size=64, mode="bilinear", antialias=True), torch.tensor([285, 967])


def channels_last(model: nn.Module, x: torch.Tensor) -> tuple[nn.Module, torch.Tensor]:
    """A channels-last copy of ``model`` and ``x``: the layout seethrough runs a conv model's passes in
    (:func:`seethrough.runner.fast`). A peer run on them uses the same kernels, so it must agree with us to
    float32 rounding; on the contiguous model the convolutions sum in another order (up to ~1e-5 apart)."""
    return copy.deepcopy(model).to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)


class FunctionalReLU(nn.Module):
    """A net with one ReLU module and one functional ``torch.relu``: the rule methods must report the second."""

    def __init__(self):
        super().__init__()
        self.l1, self.act, self.l2 = nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)

    def forward(self, x):
        return self.l2(torch.relu(self.act(self.l1(x.flatten(1)))))
