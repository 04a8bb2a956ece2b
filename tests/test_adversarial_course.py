"""The course's gradient ascent (Fleuret, deep learning 9.4): its step acts on the normalised input,
it reproduces the slides on EfficientNet, and where it fails (confident LeNet digits) PGD works.

The numbers docs/adversarial.md states about ascent are computed here and looked up in the doc.
"""
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import seethrough as see
from seethrough.adversarial.attacks import input_std
from seethrough.testing import untouched

DOC = Path(__file__).resolve().parents[1] / "docs" / "adversarial.md"


def _doc() -> str:
    return " ".join(DOC.read_text(encoding="utf-8").split())  # line breaks do not matter


def _tiny(seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2),
                              torch.nn.Flatten(), torch.nn.Linear(16, 5)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    return net


def _course(body, z, y, lr, steps):
    """The slides' loop, written out: SGD with learning rate ``lr`` on −CE of the tensor the
    network sees (the normalised image); one image's loss is its own (reduction="sum")."""
    for _ in range(steps):
        z = z.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(body(z), y, reduction="sum"), z)
        z = z + lr * g
    return z.detach()


def test_ascent_is_sgd_on_the_normalised_input_as_in_the_course():
    body = _tiny()
    model = see.zoo.with_normalization(body)  # ImageNet mean and std
    x = torch.rand(3, 3, 12, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.6 + 0.2
    norm = model.normalize
    with torch.no_grad():
        y = body(norm(x)).argmax(1)
    with untouched(model):
        r = see.attack(model, x, "ascent", step_size=0.1, steps=4, clamp=False, progress=False)
    ref = _course(body, norm(x), y, 0.1, 4) * norm.std.double() + norm.mean.double()  # back to pixels
    assert torch.allclose(r.x_adv, ref, atol=1e-12, rtol=0)
    # space="pixel": the same loop on [0, 1] pixels, a step std⁻² ≈ 20× larger
    p = see.attack(model, x, "ascent", step_size=0.1, steps=4, clamp=False, space="pixel", progress=False)
    assert torch.allclose(p.x_adv, _course(model, x, y, 0.1, 4), atol=1e-12, rtol=0)
    assert (p.x_adv - x).norm() > 10 * (r.x_adv - x).norm()
    # a model without a Normalize module: nothing to undo, the step is in pixels either way
    plain = see.attack(body, x, "ascent", step_size=0.1, steps=2, clamp=False, progress=False)
    assert input_std(body) is None and torch.allclose(plain.x_adv, _course(body, x, y, 0.1, 2), atol=1e-12, rtol=0)


def test_bad_space_is_a_clear_error():
    with pytest.raises(ValueError, match="space must be 'normalized'"):
        see.attack(_tiny(), torch.rand(1, 3, 8, 8, dtype=torch.float64), "ascent", space="normalised")


def _confident_digits(lenet, k=32):
    x, y = see.zoo.digits("test")
    with torch.no_grad():
        p = lenet(x).softmax(1)
    keep = (p.argmax(1) == y) & (p.max(1).values > 0.99)
    return x[keep][:k], y[keep][:k]


def test_on_confident_digits_ascent_stalls_and_pgd_fools_them():
    """LeNet has no normalisation, so ascent steps lr·∇ in pixels; on digits the model gives
    > 99 % the cross-entropy gradient is ~1e-3, and ten steps of 0.1 barely move the image."""
    lenet, _ = see.zoo.load("lenet-digits")
    x, y = _confident_digits(lenet)
    assert len(x) == 32
    with untouched(lenet):
        asc = see.attack(lenet, x, "ascent", label=y, progress=False)
        pgd = see.attack(lenet, x, "pgd", label=y, eps=48, progress=False)
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(lenet(xr), y, reduction="sum"), xr)
    grad = g.flatten(1).norm(dim=1)
    fooled_asc, fooled_pgd = int(asc.success.sum()), int(pgd.success.sum())
    assert fooled_asc <= 4 and fooled_pgd == 32
    assert float(grad.median()) < 0.01  # the vanishing gradient behind the stall
    doc = _doc()
    assert f"fools {fooled_asc} of 32 confident test digits" in doc, fooled_asc
    assert f"PGD at ε = 48/255 fools {fooled_pgd} of 32" in doc, fooled_pgd
    assert f"median ‖∇ₓ CE‖ of {float(grad.median()):.4f}" in doc, float(grad.median())


@pytest.mark.slow
def test_the_course_ascent_reproduces_the_slides_on_efficientnet():
    """Ten steps of lr = 0.1 on chelsea and coffee: the label flips within two steps, the
    perturbation is under 1 % of the image's norm (the slides: 1.02 % and 0.27 %), and random
    points on a sphere twice as far away keep the label."""
    model, prep = see.zoo.load("efficientnet-lite0")
    names = ("chelsea", "coffee")
    x = torch.cat([prep(see.zoo.image(n)) for n in names])
    with untouched(model):
        r = see.attack(model, x, "ascent", step_size=0.1, steps=10, progress=False)
        s = see.sphere_test(model, x, r, n_samples=100, radius_factor=2, progress=False)
    clean = r.history_class[:, :1]
    flip = [int((row != c).nonzero()[0]) for row, c in zip(r.history_class, clean)]
    norm = model.normalize
    with torch.no_grad():
        rel_z = ((r.x_adv - x) / norm.std).flatten(1).norm(dim=1) / norm(x).flatten(1).norm(dim=1)
    assert r.success.all() and r.success_8bit.all() and max(flip) <= 2
    assert (r.relative < 0.01).all() and (rel_z < 0.01).all()
    assert (s.changed <= 2).all()
    doc = _doc()
    assert f"leaves its class after {flip[0]} and {flip[1]} steps" in doc, flip
    # the percentages as the doc prints them, to within their last digit (float rounding may move it)
    m = re.search(r"‖δ‖/‖x‖ = ([\d.]+)% and ([\d.]+)% in pixels, ([\d.]+)% and ([\d.]+)% on the normalised input", doc)
    assert m, "the doc's sentence on ‖δ‖/‖x‖ is missing"
    stated = [float(v) / 100 for v in m.groups()]
    measured = r.relative.tolist() + rel_z.tolist()
    assert all(abs(a - b) <= 0.00011 for a, b in zip(stated, measured)), (stated, measured)
    ch = " and ".join(str(int(c)) for c in s.changed)
    assert f"{ch} of 100 random points" in doc, ch
