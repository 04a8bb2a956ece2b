"""The course's observations (sphere test, transfer), the patch, adversarial training, CLI and report."""
import math

import pytest
import torch
from typer.testing import CliRunner

import seethrough as see
from seethrough.adversarial import Placements, apply_patch, digits_model, robust_digits_model
from seethrough.cli import app
from seethrough.testing import untouched


@pytest.fixture(scope="module")
def lenet():
    return see.zoo.load("lenet-digits")[0]


@pytest.fixture(scope="module")
def digits():
    return see.zoo.digits("test")


def _halfplane():
    """Two classes split by the line x0 = 0.5 on (N, 1, 1, 2) 'images'."""
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2, 2))
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([[-1.0, 0.0], [1.0, 0.0]]))
        net[1].bias.copy_(torch.tensor([0.5, -0.5]))
    return net


def test_sphere_test_matches_the_circle_geometry():
    net = _halfplane()
    x = torch.tensor([[[[0.3, 0.5]]]])           # distance 0.2 from the boundary
    x_adv = torch.tensor([[[[0.5, 0.5]]]])       # ‖x − x̃‖ = 0.2, radius 2 × 0.2 = 0.4
    with untouched(net):
        s = see.sphere_test(net, x, x_adv, n_samples=4000, radius_factor=2, seed=0, batch_size=512)
    expected = math.acos(0.2 / 0.4) / math.pi    # arc of the circle beyond the line: 1/3
    assert abs(s.fraction.item() - expected) < 0.025
    assert s.radius.item() == pytest.approx(0.4)
    t = see.sphere_test(net, x, x_adv, n_samples=4000, radius_factor=2, seed=0, batch_size=37)
    assert torch.equal(s.classes, t.classes)      # batch invariant
    assert see.sphere_test(net, x, x_adv, n_samples=500, radius_factor=0.9).changed.item() == 0  # inside: nothing changes


def test_sphere_on_lenet_and_bad_input(lenet, digits):
    x = digits[0][:2]
    r = see.attack(lenet, x, "pgd", eps=48)
    assert r.success.all()
    with untouched(lenet):
        s = see.sphere_test(lenet, x, r, n_samples=100, radius_factor=2)
    assert (s.changed < 10).all()  # the course's observation: random directions rarely flip
    with untouched(lenet, allow_raise=ValueError):
        see.sphere_test(lenet, x, r.x_adv[:1], n_samples=10)
    with pytest.raises(ValueError, match="n_samples \\(points per image\\)"):
        see.sphere_test(lenet, x, r, n_samples=0)


def test_transfer_between_independently_seeded_models(lenet, digits):
    x, y = digits[0][:120], digits[1][:120]
    other = digits_model(seed=1)
    with torch.no_grad():
        assert (other(x).argmax(1) == y).float().mean() > 0.93
        assert not torch.equal(other.fc3.weight, lenet.fc3.weight)
    r = see.attack(lenet, x, "pgd", label=y, eps=48)
    with untouched(other):
        fooled = see.transfer(r, other)
    with torch.no_grad():
        assert torch.equal(fooled, other(r.x_adv).argmax(1) != y)
    assert fooled.float().mean() > 0.3  # examples transfer far above the ~3 % clean error


def test_adversarial_training_buys_robustness(lenet, digits):
    x, y = digits[0][:150], digits[1][:150]
    robust = robust_digits_model(eps=32)
    before = see.robust_accuracy(lenet, x, y, eps=[0, 32])
    after = see.robust_accuracy(robust, x, y, eps=[0, 32])
    assert after[1] > before[1] + 0.15
    assert after[0] > 0.9


def test_adversarial_training_leaves_the_input_model_alone(lenet, digits):
    x, y = digits
    with untouched(lenet):
        a = see.adversarial_training(lenet, x[:64], y[:64], eps=16, steps=2, epochs=1, seed=5)
    b = see.adversarial_training(lenet, x[:64], y[:64], eps=16, steps=2, epochs=1, seed=5)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))  # seeded: reproducible
    with untouched(lenet, allow_raise=ValueError):
        see.adversarial_training(lenet, x[:64], y[:64], eps=-3)


def test_apply_patch_touches_only_the_covered_pixels():
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    where = Placements(torch.tensor([1]), torch.tensor([0.25], dtype=torch.float64),
                       torch.tensor([[0.5, -0.5]], dtype=torch.float64), torch.zeros(1, dtype=torch.float64))
    out = apply_patch(x, torch.zeros(3, 4, 4), where)[0]
    covered = out != x[1]
    # side 0.25 × 16 = 4 px, centred at (x=12, y=4): rows 2..5, columns 10..13
    assert covered.any(dim=0).nonzero()[:, 0].unique().tolist() == [2, 3, 4, 5]
    assert covered.any(dim=0).nonzero()[:, 1].unique().tolist() == [10, 11, 12, 13]
    assert out[covered].abs().max() < 1e-5  # bilinear sampling of an aligned patch: exact up to float round-off


def test_patch_pushes_digits_to_the_target(lenet, digits):
    x = digits[0][:64]
    with untouched(lenet):
        r = see.train_patch(lenet, x, target=8, steps=150, n_samples=32, step_size=0.1, scale=(0.35, 0.45), seed=0)
    assert r.patch.min() >= 0 and r.patch.max() <= 1
    assert r.success > 2 * r.random_success and r.success > 0.08
    with untouched(lenet, allow_raise=ValueError):
        see.train_patch(lenet, x, target=12, steps=1)


def test_cli_attack_writes_files_and_rejects_bad_eps(tmp_path):
    img = tmp_path / "cat.png"
    see.zoo.image("chelsea").save(img)
    runner = CliRunner()
    res = runner.invoke(app, ["attack", str(img), "-m", "lenet-digits", "--method", "fgsm", "--eps", "60",
                              "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    for f in ("original.png", "adversarial.png", "difference.png", "history.png", "history.csv"):
        assert (tmp_path / "out" / f).stat().st_size > 0
    assert "after 8-bit rounding" in res.output
    lines = (tmp_path / "out" / "history.csv").read_text().splitlines()
    assert len(lines) == 3  # header, clean, after the one FGSM step
    bad = runner.invoke(app, ["attack", str(img), "-m", "lenet-digits", "--eps", "-2"])
    assert bad.exit_code == 2 and bad.output.strip().startswith("error:") and "eps" in bad.output


def test_report_section_quick():
    import seethrough.report.sections  # noqa: F401  (registers the sections)
    from seethrough.report.registry import SECTIONS, Context, Table

    blocks = SECTIONS["adversarial"].build(Context(quick=True))
    table = next(b for b in blocks if isinstance(b, Table))
    assert len(table.rows) == 12 and table.rows[0][1].startswith("Egyptian cat")
    assert table.rows[-1][1] != table.rows[-1][2]
