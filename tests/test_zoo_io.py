"""Bundled photos, labels, preprocessing and the bad-input paths of image reading."""
import numpy as np
import pytest
import torch
from PIL import Image

import seethrough as see
from seethrough.zoo.images import read_image

PREP = see.zoo.preprocess("efficientnet-lite0")


def test_bundled_photos_and_labels():
    names = see.zoo.images()
    assert {"chelsea", "coffee", "astronaut", "rocket"} <= set(names)
    for n in names:
        assert see.zoo.image(n).mode == "RGB"
    labels = see.zoo.labels("efficientnet-lite0")
    assert len(labels) == 1000 and labels[285] == "Egyptian cat" and labels[967] == "espresso"
    assert see.zoo.labels("lenet-digits") == [str(i) for i in range(10)]
    with pytest.raises(ValueError, match="bundled photos: astronaut"):
        see.zoo.image("chelse")
    with pytest.raises(ValueError, match="did you mean 'lenet-digits'"):
        see.zoo.load("lenet-digit")


def test_preprocess_geometry_and_roundtrip():
    x = PREP(see.zoo.image("coffee"))  # 600×400 → shorter side 256 → centre 224
    assert x.shape == (1, 3, 224, 224) and x.dtype == torch.float32
    assert 0 <= x.min() and x.max() <= 1
    img = see.zoo.to_image(x)
    assert img.size == (224, 224)
    back = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    assert torch.allclose(back, x, atol=0.5 / 255 + 1e-6)  # only 8-bit rounding
    assert torch.equal(PREP(np.asarray(see.zoo.image("coffee"))), x)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "LA", "CMYK"])
def test_odd_modes_are_converted(mode, tmp_path):
    rgb = see.zoo.image("chelsea")
    if mode == "I;16":  # real 16-bit range: 0..65535
        img = Image.fromarray(np.asarray(rgb.convert("L")).astype(np.uint16) * 257)
    else:
        img = rgb.convert(mode)
    path = tmp_path / ("x.png" if mode != "CMYK" else "x.jpg")
    img.save(path)
    x = PREP(path)
    assert x.shape == (1, 3, 224, 224)
    if mode == "L" or mode == "I;16":
        assert torch.allclose(x[:, 0], x[:, 1]) and torch.allclose(x[:, 1], x[:, 2])  # grey stays grey
    if mode == "I;16":  # 16-bit is scaled, not clipped to white
        assert 0.2 < x.mean() < 0.8


def test_rgba_transparency_on_white():
    a = np.zeros((40, 40, 4), dtype=np.uint8)  # fully transparent black
    assert np.asarray(read_image(a)).min() == 255


def test_huge_image_is_downscaled_early(tmp_path):
    path = tmp_path / "big.jpg"
    Image.new("RGB", (6000, 4000), (10, 200, 30)).save(path, quality=80)
    img = read_image(path)
    assert max(img.size) <= 2048
    assert PREP(path).shape == (1, 3, 224, 224)


@pytest.mark.parametrize("make, msg", [
    (lambda p: p / "missing.png", "no such image file"),
    (lambda p: (p / "bad.png").write_bytes(b"not an image") and p / "bad.png", "cannot read"),
    (lambda p: Image.new("RGB", (20, 300)).save(p / "thin.png") or p / "thin.png", "at least 32 px"),
    (lambda p: p, "is a directory"),
])
def test_bad_image_files(tmp_path, make, msg):
    with pytest.raises(ValueError, match=msg):
        PREP(make(tmp_path))


def test_bad_arrays():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        PREP(np.full((64, 64, 3), 2.0))
    with pytest.raises(ValueError, match="NaN"):
        PREP(np.full((64, 64), np.nan))
    with pytest.raises(ValueError, match="shape"):
        PREP(np.zeros((64, 64, 5)))


def test_with_normalization_wraps_a_user_model():
    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 2, 3).train()
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    wrapped = see.zoo.with_normalization(net, mean, std)
    x = torch.rand(2, 3, 8, 8)
    ref = net((x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1))
    assert torch.allclose(wrapped(x), ref, atol=1e-6)
    assert wrapped.training and "model.weight" in dict(wrapped.named_parameters())
    with pytest.raises(ValueError, match="expected an image batch"):
        wrapped(torch.rand(2, 1, 8, 8))


def test_efficientnet_photos_reproduce_known_classes():
    model, prep = see.zoo.load("efficientnet-lite0")
    x = torch.cat([prep(see.zoo.image("chelsea")), prep(see.zoo.image("coffee"))])
    preds = see.predict(model, x, k=1, labels=see.zoo.labels("efficientnet-lite0"))
    assert [p[0].index for p in preds] == [285, 967]
    with pytest.raises(ValueError, match="NaN"):
        see.predict(model, torch.full((1, 3, 224, 224), float("nan")))
