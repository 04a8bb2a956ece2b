"""Attacks: exact projections, a float64 FGSM reference, Captum agreement, targets reached, hygiene."""
import copy

import pytest
import torch
import torch.nn.functional as F

import seethrough as see
from seethrough.adversarial import ATTACKS, quantize
from seethrough.testing import untouched


@pytest.fixture(scope="module")
def lenet():
    return see.zoo.load("lenet-digits")[0]


@pytest.fixture(scope="module")
def lenet64(lenet):
    return copy.deepcopy(lenet).double()


@pytest.fixture(scope="module")
def digits():
    x, y = see.zoo.digits("test")
    return x[:24], y[:24]


def _ce(model, x, y):
    with torch.no_grad():
        return F.cross_entropy(model(x), y, reduction="none")


@pytest.mark.parametrize("method,opts", [
    ("fgsm", {"eps": 16}), ("bim", {"eps": 16}), ("pgd", {"eps": 16}), ("pgd", {"eps": 16, "steps": 3, "step_size": 40}),
])
def test_linf_ball_and_pixel_range_hold_exactly(lenet, digits, method, opts):
    x, y = digits
    r = see.attack(lenet, x, method, label=y, **opts)
    e = opts["eps"] / 255
    assert (r.x_adv <= x + e).all() and (r.x_adv >= x - e).all()
    assert (r.x_adv >= 0).all() and (r.x_adv <= 1).all()
    assert r.linf.max() <= opts["eps"] * (1 + 1e-6)


def test_l2_ball_holds(lenet, digits):
    x, y = digits
    r = see.attack(lenet, x, "pgd", label=y, eps=400, norm="l2", step_size=200)
    norms = (r.x_adv - x).flatten(1).norm(dim=1)
    assert (norms <= 400 / 255 * (1 + 1e-5)).all() and norms.max() > 0.9 * 400 / 255
    assert (r.x_adv >= 0).all() and (r.x_adv <= 1).all()


def test_fgsm_equals_float64_reference(lenet64, digits):
    x, y = digits[0].double(), digits[1]
    r = see.attack(lenet64, x, "fgsm", label=y, eps=8)
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(lenet64(xr), y, reduction="sum"), xr)
    e = 8 / 255
    ref = torch.minimum(torch.maximum(x + e * g.sign(), x - e), x + e).clamp(0, 1)
    assert torch.equal(r.x_adv, ref)
    # targeted: a step *down* the target's loss
    r = see.attack(lenet64, x, "fgsm", target=3, eps=8)
    (g,) = torch.autograd.grad(F.cross_entropy(lenet64(xr), torch.full_like(y, 3), reduction="sum"), xr)
    assert torch.equal(r.x_adv, (x - e * g.sign()).clamp(0, 1))


def test_attacks_raise_the_loss(lenet, digits):
    x, y = digits
    before = _ce(lenet, x, y)
    fgsm = _ce(lenet, see.attack(lenet, x, "fgsm", label=y, eps=16).x_adv, y)
    pgd = _ce(lenet, see.attack(lenet, x, "pgd", label=y, eps=16).x_adv, y)
    assert fgsm.mean() > before.mean() + 1 and (pgd > before).all()
    assert pgd.mean() > fgsm.mean()  # iterating finds more than one step


def test_captum_fgsm_and_pgd_agree(lenet64, digits):
    import captum.robust as robust
    x, y = digits[0].double(), digits[1]
    loss = lambda out, t: F.cross_entropy(out, t, reduction="none")  # noqa: E731  (Captum wants one loss per sample)
    ours = see.attack(lenet64, x, "fgsm", label=y, eps=8).x_adv
    theirs = robust.FGSM(lenet64, loss_func=loss, lower_bound=0, upper_bound=1).perturb(x, 8 / 255, y)
    # Captum leaves pixels whose |gradient| <= 1e-6 unchanged; sign(g) moves them.
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss(lenet64(xr), y).sum(), xr)
    big = g.abs() > 1e-6
    assert torch.allclose(ours[big], theirs[big], atol=1e-12, rtol=0)
    ours = see.attack(lenet64, x, "bim", label=y, eps=16, steps=5, step_size=5).x_adv
    theirs = robust.PGD(lenet64, loss_func=loss, lower_bound=0, upper_bound=1).perturb(
        x, radius=16 / 255, step_size=5 / 255, step_num=5, target=y)
    # Captum's threshold on tiny gradients makes the iterates drift apart pixel-wise on the
    # digits' flat background; the attacks must still be equally strong.
    assert (ours - theirs).abs().max() <= 2 * 16 / 255 + 1e-12
    lo, lt = _ce(lenet64, ours, y), _ce(lenet64, theirs, y)
    assert abs(lo.mean() - lt.mean()) < 0.05 * lt.mean()
    assert torch.equal(lenet64(ours).argmax(1) != y, lenet64(theirs).argmax(1) != y)


def test_targeted_attacks_reach_the_target_on_lenet(lenet, digits):
    x, y = digits
    for method, opts in [("pgd", {"eps": 64, "steps": 20}), ("bim", {"eps": 64, "steps": 20}), ("ascent", {"step_size": 0.5, "steps": 20})]:
        r = see.attack(lenet, x, method, target=3, **opts)
        assert r.success.all() and (r.pred == 3).all(), method


def test_efficientnet_flips_at_one_pixel_level_and_pgd_reaches_toaster():
    model, prep = see.zoo.load("efficientnet-lite0")
    x = torch.cat([prep(see.zoo.image(n)) for n in ("chelsea", "coffee")])
    r = see.attack(model, x[:1], "fgsm", eps=1)
    assert r.success[0] and r.linf[0] <= 1 + 1e-4 and r.relative[0] < 0.01
    r = see.attack(model, x, "pgd", target=859, eps=4, steps=20)
    assert (r.pred == 859).all() and r.success_8bit.all()


def test_batch_size_and_seed(lenet64, digits):
    x, y = digits[0].double(), digits[1]
    a = see.attack(lenet64, x, "pgd", label=y, eps=16, batch_size=5, seed=3)
    b = see.attack(lenet64, x, "pgd", label=y, eps=16, batch_size=24, seed=3)
    c = see.attack(lenet64, x, "pgd", label=y, eps=16, batch_size=24, seed=4)
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.history_class, b.history_class)
    assert not torch.equal(b.x_adv, c.x_adv)


def test_history_and_8bit_quantization(lenet, digits):
    x, y = digits
    r = see.attack(lenet, x, "pgd", label=y, eps=24, steps=6)
    assert r.history_class.shape == (24, 7)
    with torch.no_grad():
        assert torch.equal(r.history_class[:, 0], lenet(x).argmax(1))
        assert torch.equal(r.history_class[:, -1], lenet(r.x_adv).argmax(1))
        q = r.x_adv_8bit()
        assert torch.equal(q * 255, (q * 255).round())
        assert torch.equal(r.success_8bit, lenet(q).argmax(1) != y)
    assert torch.equal(quantize(torch.tensor([0.6 / 255, 1.4 / 255])) * 255, torch.tensor([1.0, 1.0]))


def test_hygiene_every_attack(lenet, digits):
    x, y = digits
    for method in ATTACKS:
        with untouched(lenet):
            see.attack(lenet, x[:4], method)
        with untouched(lenet, allow_raise=ValueError):
            see.attack(lenet, x[:4], method, target=10)  # raises inside the hooks context


def test_bad_input_is_clear(lenet, digits):
    x, y = digits
    cases = [
        ({"method": "pgd", "eps": -1}, ValueError, "eps is in pixel units"),
        ({"method": "pgd", "eps": 300}, ValueError, "[0, 255]"),
        ({"method": "bim", "steps": 0}, ValueError, "steps must be a positive int"),
        ({"method": "pgd", "target": 10}, ValueError, "target 10 is out of range"),
        ({"method": "pdg"}, ValueError, "did you mean 'pgd'"),
        ({"method": "fgsm", "steps": 3}, TypeError, "does not take option(s) steps"),
        ({"method": "pgd", "norm": "l1"}, ValueError, "norm must be 'linf' or 'l2'"),
        ({"method": "ascent", "step_size": 0}, ValueError, "step_size must be a positive"),
    ]
    for kw, exc, text in cases:
        with pytest.raises(exc, match=None) as info:
            see.attack(lenet, x[:2], **kw)
        assert text in str(info.value), (kw, str(info.value))


def test_already_misclassified_is_reported_not_an_error(lenet, digits):
    x, y = digits
    wrong = (y[:4] + 1) % 10
    r = see.attack(lenet, x[:4], "fgsm", label=wrong, eps=1)
    assert r.already_wrong.all() and "already misclassified" in r.lines()[0]
