"""``logreg-digits``: multinomial logistic regression with L2 on the digits, trained to optimality.

The influence-function case where the theory is exact: the objective is strictly convex, so
Newton's method reaches the optimum to machine precision, and leave-one-out retraining (warm
started from it) is exact too. Input 1×32×32 in [0, 1], average-pooled back to 8×8 (the
resolution the digits were scanned at): 64 features, 10 classes, 650 parameters.
"""
from __future__ import annotations

import functools
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

#: L2 coefficient of the objective ``mean cross-entropy + L2/2 · ‖θ‖²`` (bias included, which
#: also removes softmax's shift symmetry); pass it as ``damping`` to :func:`seethrough.influence`.
LOGREG_L2 = 1e-3


def logreg(seed: int = 0) -> nn.Module:
    """The untrained architecture: ``pool`` (4×4 average) → ``flatten`` → ``linear`` (64 → 10).

    >>> logreg()(torch.zeros(2, 1, 32, 32)).shape
    torch.Size([2, 10])
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential()
        model.add_module("pool", nn.AvgPool2d(4))
        model.add_module("flatten", nn.Flatten())
        model.add_module("linear", nn.Linear(64, 10))
    return model.eval()


def fit_newton(model: nn.Module, x: torch.Tensor, y: torch.Tensor, l2: float = LOGREG_L2, *,
               tol: float = 1e-10, max_iter: int = 50) -> nn.Module:
    """Minimise ``mean CE + l2/2·‖θ‖²`` by Newton's method in float64, starting from ``model``'s weights.

    The Hessian is written in closed form, ``(1/n) Σ (diag p − ppᵀ) ⊗ φφᵀ + l2·I`` with features
    ``φ = [pooled pixels, 1]``. Returns a new float32 model; ``model`` is not modified.

    >>> x = torch.rand(40, 1, 32, 32); y = torch.arange(40) % 10
    >>> m = fit_newton(logreg(), x, y)
    >>> m.linear.weight.dtype
    torch.float32
    """
    phi = torch.cat([F.avg_pool2d(x.double(), 4).flatten(1), torch.ones(len(x), 1, dtype=torch.float64)], dim=1)
    n, d = phi.shape
    onehot = F.one_hot(y, 10).double()
    w = torch.cat([model.linear.weight.detach().double(), model.linear.bias.detach().double()[:, None]], dim=1)

    def objective(w):
        return F.cross_entropy(phi @ w.T, y).item() + 0.5 * l2 * float((w * w).sum())

    for _ in range(max_iter):
        p = torch.softmax(phi @ w.T, dim=1)
        g = (p - onehot).T @ phi / n + l2 * w
        if g.norm() < tol:
            break
        pp = torch.einsum("ic,ie->ice", p, p)
        cov = torch.diag_embed(p) - pp                                   # (n, 10, 10)
        # One (d × d) block φᵀ diag(cov[:, c, e]) φ per class pair, as a batched matmul.
        blocks = (phi.T.unsqueeze(0) * cov.permute(1, 2, 0).reshape(100, 1, n)) @ phi
        h = blocks.reshape(10, 10, d, d).permute(0, 2, 1, 3).reshape(10 * d, 10 * d) / n
        h += l2 * torch.eye(10 * d, dtype=torch.float64)
        step = torch.linalg.solve(h, g.reshape(-1)).reshape(10, d)
        t, f0 = 1.0, objective(w)
        while objective(w - t * step) > f0 - 1e-4 * t * float((g * step).sum()) and t > 1e-8:
            t /= 2  # backtracking: a full Newton step from zero can overshoot
        w = w - t * step
    out = logreg()
    with torch.no_grad():
        out.linear.weight.copy_(w[:, :-1])
        out.linear.bias.copy_(w[:, -1])
    return out.eval()


#: held-out accuracy a freshly fitted logreg-digits must reach to be cached (measured: 95.6 %)
MIN_TEST_ACCURACY = 0.93


@functools.lru_cache(maxsize=1)
def _trained_state() -> dict[str, torch.Tensor]:
    from .cache import cache_dir, cached_state
    from .lenet import digit_accuracy, digits

    def fit() -> dict[str, torch.Tensor]:
        x, y = digits("train")
        start = logreg()
        with torch.no_grad():
            for p in start.parameters():
                p.zero_()  # a convex problem: start from zero, so the optimum does not depend on a seed
        return fit_newton(start, x, y).state_dict()

    def check(state: dict[str, torch.Tensor]) -> str | None:
        model = logreg()
        model.load_state_dict(state)
        acc = digit_accuracy(model, "test")
        return None if acc >= MIN_TEST_ACCURACY else f"its test accuracy is {acc:.1%}, below {MIN_TEST_ACCURACY:.0%}"

    path = cache_dir() / f"logreg-digits-v1-l2-{LOGREG_L2:g}.pt"
    return cached_state(path, {"name": "logreg-digits", "version": "v1", "l2": LOGREG_L2}, fit, check)


def logreg_digits() -> nn.Module:
    """The trained model (about 95.5 % test accuracy), optimal to a gradient norm below 1e-10.

    >>> from seethrough.zoo.lenet import digit_accuracy
    >>> digit_accuracy(logreg_digits()) > 0.9
    True
    """
    model = logreg()
    model.load_state_dict(_trained_state())
    return model.eval()


def retrainer(x: torch.Tensor, y: torch.Tensor, l2: float = LOGREG_L2,
              start: nn.Module | None = None) -> Callable[[torch.Tensor], nn.Module]:
    """``retrain(keep)``: refit to optimality on ``x[keep]``, warm-started at ``start`` (for ``Influence.validate``).

    >>> x = torch.rand(30, 1, 32, 32); y = torch.arange(30) % 10
    >>> retrainer(x, y)(torch.arange(29)).linear.weight.shape
    torch.Size([10, 64])
    """
    start = start if start is not None else logreg_digits()
    return lambda keep: fit_newton(start, x[keep], y[keep], l2)
