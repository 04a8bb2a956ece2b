"""The adversarial patch (Brown, Mané, Roy, Abadi & Gilmer, 2017).

One universal patch, optimised over random positions, scales and rotations on a set of
images, that pushes the model's prediction to a target class wherever it is pasted.
Placement is differentiable (an affine grid sample), batched over the placements.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..batching import bytes_per_item, model_key, run_batched
from ..deprecation import renamed
from ..hooks import hooks
from ..inputs import check_images
from ..outputs import MODEL_HINT, class_output
from ..progress import bar, report
from ..results import ResultProtocol, call_options
from ..targets import target_indices


@dataclass
class Placements:
    """Where a patch goes, one row per pasted copy: the image index, the patch side as a
    fraction of the image side, the centre in [-1, 1] coordinates (x, y), the angle (radians)."""

    image: torch.Tensor
    scale: torch.Tensor
    center: torch.Tensor
    angle: torch.Tensor

    def __getitem__(self, s: slice) -> "Placements":
        return Placements(self.image[s], self.scale[s], self.center[s], self.angle[s])


@renamed(n="n_samples")
def random_placements(n_samples: int, n_images: int, scale: tuple[float, float], max_angle: float,
                      gen: torch.Generator) -> Placements:
    """``n_samples`` placements drawn uniformly; the patch's centre keeps it inside the image when unrotated.

    >>> random_placements(3, 2, (0.25, 0.4), 0.0, torch.Generator().manual_seed(0)).image.shape
    torch.Size([3])
    """
    n = n_samples
    s = scale[0] + (scale[1] - scale[0]) * torch.rand(n, generator=gen, dtype=torch.float64)
    c = (torch.rand(n, 2, generator=gen, dtype=torch.float64) * 2 - 1) * (1 - s)[:, None]
    a = (torch.rand(n, generator=gen, dtype=torch.float64) * 2 - 1) * max_angle
    return Placements(torch.randint(n_images, (n,), generator=gen), s, c, a)


def apply_patch(x: torch.Tensor, patch: torch.Tensor, where: Placements) -> torch.Tensor:
    """Paste ``patch`` (C, h, w) on ``x[where.image]``, one output image per placement.

    Pixels the patch does not cover are copied from ``x`` exactly.

    >>> x = torch.zeros(1, 1, 8, 8)
    >>> where = Placements(torch.tensor([0]), torch.tensor([0.5]), torch.zeros(1, 2), torch.zeros(1))
    >>> apply_patch(x, torch.ones(1, 4, 4), where)[0, 0].sum().item()
    16.0
    """
    base = x[where.image]
    n, c, h, w = base.shape
    cos, sin = torch.cos(where.angle), torch.sin(where.angle)
    # The grid maps each output pixel u to patch coordinates R(-θ)(u - centre) / scale.
    rot = torch.stack([torch.stack([cos, sin], 1), torch.stack([-sin, cos], 1)], 1) / where.scale[:, None, None]
    shift = -(rot @ where.center[:, :, None])
    theta = torch.cat([rot, shift], dim=2).to(x)
    grid = F.affine_grid(theta, [n, c, h, w], align_corners=False)
    ink = torch.cat([patch, torch.ones_like(patch[:1])]).unsqueeze(0).expand(n, -1, -1, -1)
    pasted = F.grid_sample(ink, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    img, mask = pasted[:, :c], pasted[:, c:]
    # Multiplying by (1 - mask) where mask is 0 keeps uncovered pixels bitwise unchanged.
    return torch.where(mask > 0, base * (1 - mask) + img, base)


@dataclass
class PatchResult(ResultProtocol):
    """The optimised ``patch`` (C, side, side) in [0, 1], the ``target`` class, the training
    ``loss`` per step, and on held-out placements: ``success`` (fraction predicted as the
    target, images whose clean prediction already is the target excluded) and
    ``random_success`` (the same placements with a uniform-noise patch, as a baseline)."""

    patch: torch.Tensor
    target: int
    loss: torch.Tensor
    success: float
    random_success: float
    eval_placements: Placements
    eval_pred: torch.Tensor
    options: dict = field(default_factory=dict)
    seed: int | None = None

    def summary(self) -> str:
        return (f"adversarial patch for class {self.target}: {self.success:.1%} of held-out placements predicted as it "
                f"(a random-noise patch: {self.random_success:.1%}); final loss {float(self.loss[-1]):.3f}")

    def to_frame(self):
        """One row per training step: the loss."""
        import pandas as pd

        return pd.DataFrame({"step": range(len(self.loss)), "loss": self.loss.double().tolist()})


@renamed(lr="step_size", batch="n_samples")
def train_patch(
    model: nn.Module,
    x: torch.Tensor,
    target: int,
    *,
    side: int | None = None,
    scale: tuple[float, float] = (0.25, 0.4),
    max_angle: float = math.pi / 8,
    steps: int = 200,
    step_size: float = 0.05,
    n_samples: int = 16,
    eval_placements: int = 16,
    seed: int = 0,
    batch_size: int | str = "auto",
    progress: bool = True,
) -> PatchResult:
    """Optimise a patch that makes ``model`` predict ``target`` on ``x`` (images in [0, 1]).

    Each of ``steps`` Adam steps (learning rate ``step_size``) pastes the patch on ``n_samples`` random (image, scale,
    position, rotation) placements — scale is the patch side over the image side — and
    lowers the target's cross-entropy. The result is evaluated on ``eval_placements``
    fresh placements per image.

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> x, y = see.zoo.digits("test")
    >>> r = see.train_patch(model, x[:32], target=0, steps=30, seed=0)
    >>> r.success > r.random_success
    True
    """
    opts = call_options(locals(), "model", "x")
    check_images(x, model=model)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not (0 < scale[0] <= scale[1] <= 1):
        raise ValueError(f"scale (patch side / image side) must be (low, high) with 0 < low <= high <= 1, got {scale!r}")
    if isinstance(step_size, bool) or not isinstance(step_size, (int, float)) or not step_size > 0:
        raise ValueError(f"step_size must be a positive number (Adam's learning rate), got {step_size!r}")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples (placements per step) must be a positive int, got {n_samples!r}")
    batch = n_samples
    x = x.detach()
    side = side or max(4, round(x.shape[-1] * scale[1]))
    gen = torch.Generator().manual_seed(seed)
    patch = torch.rand((x.shape[1], side, side), generator=gen, dtype=torch.float64).to(x)
    noise = torch.rand((x.shape[1], side, side), generator=gen, dtype=torch.float64).to(x)
    losses = []
    with hooks(model):
        with torch.no_grad():
            probe = class_output(model(x[:1]), hint=MODEL_HINT)
        t = int(target_indices(probe, target)[0])
        goal = torch.full((batch,), t, dtype=torch.long, device=x.device)
        param = patch.clone().requires_grad_(True)
        opt = torch.optim.Adam([param], lr=step_size)  # optimises our own tensor, never the model's
        for k in bar(range(steps), desc="patch", progress=progress):
            where = random_placements(batch, len(x), scale, max_angle, gen)
            loss = F.cross_entropy(model(apply_patch(x, param, where)), goal)
            (grad,) = torch.autograd.grad(loss, param)
            param.grad = grad
            opt.step()
            with torch.no_grad():
                param.clamp_(0, 1)  # a printable patch: valid pixels only
            losses.append(loss.detach())
            report("patch step", k + 1, steps)
        patch = param.detach()
        held = random_placements(eval_placements * len(x), len(x), scale, max_angle, torch.Generator().manual_seed(seed + 10_007))

        def classify(p: torch.Tensor) -> torch.Tensor:
            return run_batched(lambda a, b: model(apply_patch(x, p, held[a:b])).argmax(dim=1), len(held.image),
                               batch_size=batch_size, item_bytes=bytes_per_item(x), device=x.device,
                               key=model_key(model, x, "forward"),
                               progress=False)

        with torch.no_grad():
            clean = model(x).argmax(dim=1)
            pred, pred_noise = classify(patch), classify(noise)
    keep = clean[held.image] != t
    rate = (lambda p: float((p[keep] == t).float().mean()) if keep.any() else float("nan"))
    return PatchResult(patch=patch, target=t, loss=torch.stack(losses), success=rate(pred),
                       random_success=rate(pred_noise), eval_placements=held, eval_pred=pred, options=opts, seed=seed)
