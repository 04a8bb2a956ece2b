"""A refused damping is never suggested back: the hint of every solver exceeds the damping that failed."""
import re

import pytest
import torch

import seethrough as see
from seethrough.influence.solvers import cg, exact_inverse
from seethrough.testing import untouched


def suggested(message: str) -> float:
    return float(re.search(r"try damping=([0-9.e+-]+)", message).group(1))


def test_cg_on_lenet_at_damping_0_01_suggests_more_than_0_01():
    # The issue's call: lenet-digits' Hessian is indefinite; the message used to say "e.g. damping=0.01".
    model, _ = see.zoo.load("lenet-digits")
    x, y = see.zoo.digits("train")
    xt, yt = see.zoo.digits("test")
    with untouched(model, allow_raise=ValueError), pytest.raises(ValueError, match="negative curvature") as err:
        see.influence(model, (x[:32], y[:32]), (xt[:1], yt[:1]), method="cg", damping=0.01, progress=False)
    hint = suggested(str(err.value))
    assert hint > 0.01 and "damping=0.01 " in str(err.value)


def test_the_cg_hint_exceeds_the_failed_damping_until_the_solve_succeeds():
    # An indefinite 2×2 matrix with eigenvalues -1 and 3: CG refuses any damping ≤ 1, and each hint is
    # larger than the one that failed, so following the hints ends in a solve (checked against the inverse).
    h = torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=torch.float64)
    v = torch.tensor([[1.0, 0.3]], dtype=torch.float64)
    damping, tried = 0.01, []
    for _ in range(10):
        try:
            s = cg(lambda u: u @ h, v, damping)
            break
        except ValueError as e:
            tried.append(damping)
            damping = suggested(str(e))
            assert damping > tried[-1]
    else:
        pytest.fail(f"the hints never led to a solve: {tried}")
    assert tried and damping > 1.0
    torch.testing.assert_close(s, v @ torch.linalg.inv(h + damping * torch.eye(2, dtype=torch.float64)))


def test_the_exact_hint_exceeds_the_failed_damping():
    h = torch.diag(torch.tensor([-0.004, 1.0], dtype=torch.float64))
    for damping in (0.0, 0.004, 0.003):
        with pytest.raises(ValueError, match="not positive definite") as err:
            exact_inverse(h, damping)
        hint = suggested(str(err.value))
        assert hint > damping and hint > 0.004
        exact_inverse(h, hint)  # the hint works: -0.004 + hint > 0
