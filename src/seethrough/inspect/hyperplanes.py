"""The perceptron's hyperplanes: each hidden unit of mlp-2d is a line w·x + b = 0 in the plane.

Snapshots of the first layer during training show the lines moving into place while the
decision regions take shape (pictures: ``see.render.hyperplane_frames`` / ``save_gif``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from ..results import ResultProtocol, records
from ..deprecation import renamed

SNAPSHOT_STEPS = (1, 4, 7, 10, 16, 34, 77, 100)


@dataclass(frozen=True)
class Snapshot:
    step: int
    loss: float  # full-batch training loss of this step
    accuracy: float  # on the training points, after the step
    weight: torch.Tensor  # (hidden, 2): unit j's line is weight[j] · x + bias[j] = 0
    bias: torch.Tensor  # (hidden,)
    regions: torch.Tensor  # (grid, grid) probability of class 1 over the extent, row 0 at the bottom


@dataclass(frozen=True)
class HyperplaneRun(ResultProtocol):
    snapshots: list[Snapshot]
    x: torch.Tensor
    y: torch.Tensor
    extent: tuple[float, float, float, float]  # (x0, x1, y0, y1)
    options: dict = field(default_factory=dict)
    seed: int | None = None


def default_steps(total: int) -> list[int]:
    """1, 4, 7, 10, 16, 34, 77, 100, then every 100 steps, and always the last step.

    >>> default_steps(350)
    [1, 4, 7, 10, 16, 34, 77, 100, 200, 300, 350]
    """
    steps = [s for s in SNAPSHOT_STEPS if s <= total] + list(range(200, total + 1, 100))
    return sorted(set(steps + [total])) if total > 0 else []


@renamed(lr="step_size")
@records("data")
def hyperplanes(
    steps: int = 1000,
    *,
    snapshots: Sequence[int] | None = None,
    seed: int = 0,
    step_size: float | None = None,
    grid: int = 120,
    data: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> HyperplaneRun:
    """Train mlp-2d (``steps`` full-batch updates on the toy spirals, or ``data``) and record
    its hidden units' lines and decision regions at ``snapshots`` (default :func:`default_steps`).
    ``step_size`` (Adam's learning rate) ``None`` uses the zoo's training default.

    >>> run = hyperplanes(steps=20, snapshots=[1, 20], grid=8)
    >>> [s.step for s in run.snapshots], run.snapshots[0].weight.shape
    ([1, 20], torch.Size([20, 2]))
    """
    from ..zoo import toy_2d
    from ..zoo.toy2d import mlp_2d, train_mlp_2d

    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 2:
        raise ValueError(f"grid must be an int >= 2 (points per side), got {grid!r}")
    wanted = default_steps(steps) if snapshots is None else sorted(set(int(s) for s in snapshots))
    if not wanted or wanted[0] < 1 or wanted[-1] > steps:
        raise ValueError(f"snapshots must be steps between 1 and steps={steps}, got {list(snapshots or [])}")
    x, y = toy_2d(seed=seed) if data is None else data
    pad = 0.15 * float((x.max(0).values - x.min(0).values).max())
    lo, hi = x.min(0).values - pad, x.max(0).values + pad
    extent = (lo[0].item(), hi[0].item(), lo[1].item(), hi[1].item())
    gx = torch.linspace(extent[0], extent[1], grid)
    gy = torch.linspace(extent[2], extent[3], grid)
    points = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), -1).reshape(-1, 2)
    found: list[Snapshot] = []
    want = set(wanted)

    def on_step(model: nn.Module, step: int, loss: float) -> None:
        if step not in want:
            return
        layer = _first_linear(model)
        with torch.no_grad():
            probs = model(points).softmax(1)[:, 1].reshape(grid, grid)
            acc = (model(x).argmax(1) == y).double().mean().item()
        found.append(Snapshot(step, loss, acc, layer.weight.detach().clone(), layer.bias.detach().clone(), probs))

    # step_size=None keeps the zoo's own default, so the last snapshot is exactly the zoo's mlp-2d.
    extra = {} if step_size is None else {"lr": step_size}
    train_mlp_2d(mlp_2d(seed), steps=steps, seed=seed, on_step=on_step, data=(x, y), **extra)
    return HyperplaneRun(found, x, y, extent)


def _first_linear(model: nn.Module) -> nn.Linear:
    for m in model.modules():
        if isinstance(m, nn.Linear):
            if m.in_features != 2:
                raise ValueError(f"hyperplanes need a first Linear layer with 2 inputs, got {m.in_features}")
            return m
    raise ValueError("the model has no nn.Linear layer")
