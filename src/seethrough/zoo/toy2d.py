"""A two-spirals toy problem and a one-hidden-layer ReLU MLP that solves it.

Every hidden ReLU unit of the MLP is a line (hyperplane) in the input plane, so
snapshots of ``fc1`` during training show how the network carves the plane into
the pieces that separate the spirals.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

# 1.5 turns: too few hyperplanes cannot separate it, 20 ReLUs comfortably can.
_TURNS = 1.5


class MLP2D(nn.Module):
    """2 -> 20 ReLU -> 2 classifier for points in the plane.

    >>> MLP2D()(torch.zeros(5, 2)).shape
    torch.Size([5, 2])
    """

    def __init__(self, hidden: int = 20) -> None:
        super().__init__()
        self.fc1 = nn.Linear(2, hidden)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(hidden, 2)
        self.reset_hyperplanes()

    def reset_hyperplanes(self, scale: float = 3.0, extent: float = 0.8) -> None:
        """Re-draw ``fc1`` so each unit's line passes through a random point of the data square.

        PyTorch's default init puts many lines far outside [-1, 1]^2, where those
        units are dead or purely linear on the data; training then stalls on some
        seeds, and a plot of the hyperplanes starts out mostly empty. Steeper
        weights (``scale``) make each unit's kink sharp enough to matter at once.
        """
        with torch.no_grad():
            w = torch.randn_like(self.fc1.weight) * scale
            point = (torch.rand_like(self.fc1.weight) * 2 - 1) * extent
            self.fc1.weight.copy_(w)
            self.fc1.bias.copy_(-(w * point).sum(dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.relu(self.fc1(x)))


def mlp_2d(seed: int = 0) -> nn.Module:
    """An untrained :class:`MLP2D` in eval mode, initialised reproducibly from ``seed``.

    The caller's global RNG state is left as it was.

    >>> a, b = mlp_2d(3), mlp_2d(3)
    >>> torch.equal(a.fc1.weight, b.fc1.weight), a.training
    (True, False)
    """
    # fork_rng: nn.Linear's init draws from the global RNG, which we must not reset for the caller.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MLP2D()
    return model.eval()


def toy_2d(n: int = 400, seed: int = 0, noise: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved spirals (1.5 turns each): ``X`` float32 (n, 2), ``y`` int64 in {0, 1}.

    Class 0 gets ``n // 2`` points, class 1 the rest, shuffled together. Radii
    run from 0.1 to 1, so points lie roughly in [-1, 1]^2. ``noise`` is the
    Gaussian jitter relative to each point's distance from the centre.

    >>> X, y = toy_2d(10, seed=1)
    >>> tuple(X.shape), X.dtype, y.dtype, int(y.sum())
    ((10, 2), torch.float32, torch.int64, 5)
    """
    if n < 2:
        raise ValueError(f"n must be at least 2 so that both classes appear, got {n}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    gen = torch.Generator().manual_seed(seed)
    y = torch.cat([torch.zeros(n // 2, dtype=torch.int64), torch.ones(n - n // 2, dtype=torch.int64)])
    t = torch.rand(n, generator=gen, dtype=torch.float64)
    radius = 0.1 + 0.9 * t
    # The second spiral is the first rotated by half a turn, so the arms interleave.
    angle = 2 * math.pi * _TURNS * t + math.pi * y
    x = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)
    # Jitter grows with the radius: the inner turn is short and tightly wound, and
    # absolute noise there would merge the two arms into an unlearnable blob.
    x = x + noise * radius[:, None] * torch.randn(n, 2, generator=gen, dtype=torch.float64)
    perm = torch.randperm(n, generator=gen)
    return x[perm].to(torch.float32), y[perm]


def toy_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of points ``model`` classifies correctly (mode left unchanged).

    >>> X, y = toy_2d()
    >>> 0.0 <= toy_accuracy(mlp_2d(), X, y) <= 1.0
    True
    """
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()


def train_mlp_2d(
    model: nn.Module | None = None,
    steps: int = 1000,
    lr: float = 0.03,
    seed: int = 0,
    on_step: Callable[[nn.Module, int, float], None] | None = None,
    data: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> nn.Module:
    """Full-batch Adam training on :func:`toy_2d` (or ``data``); returns the model in eval mode.

    ``model`` defaults to ``mlp_2d(seed)`` and is trained in place.
    ``on_step(model, step, loss)`` runs after each update, with ``step`` counted
    from 1 and ``loss`` the full-batch loss that update was computed from.

    >>> steps = []
    >>> model = train_mlp_2d(steps=3, on_step=lambda m, s, loss: steps.append(s))
    >>> steps, model.training
    ([1, 2, 3], False)
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if model is None:
        model = mlp_2d(seed)
    x, y = toy_2d() if data is None else data
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    # Cosine decay settles the boundary at the end; with a constant lr, Adam keeps
    # jittering and the final accuracy depends on where the last step lands.
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
    model.train()
    for step in range(1, steps + 1):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        sched.step()
        if on_step is not None:
            on_step(model, step, loss.item())
    return model.eval()
