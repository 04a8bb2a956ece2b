"""DeepDream (Mordvintsev, Olah & Tyka, 2015): amplify what a layer already sees in a photo.

Gradient ascent on ``‖h‖²`` (whose gradient with respect to ``h`` is ``h`` itself), from the
photo, with normalised steps (the gradient divided by its mean absolute value, so the step
size is in pixel units), a random circular shift per step (jitter), and octaves: the photo
is processed from small to full size, the detail dreamt at each scale carried upward.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..hooks import hooks
from ..inputs import check_images
from ..progress import bar, report
from . import objectives as O
from .engine import Visualization, check_positive, check_steps, chunked, forward_checked


def dream(
    model: nn.Module,
    image: torch.Tensor,
    layer: str | Sequence[str] | None = None,
    *,
    objective: O.Objective | str | None = None,
    steps: int = 10,
    octaves: int = 3,
    octave_scale: float = 1.4,
    step_size: float = 0.01,
    jitter: int = 16,
    seed: int = 0,
    batch_size: int | str = "auto",
    progress: bool = True,
) -> Visualization:
    """Dream ``image`` ``(N, C, H, W)`` in [0, 1] at ``layer`` (or several: their ‖h‖² add up).

    ``objective`` replaces the layer's ‖h‖² by any objective (e.g. ``"channel:blocks.10:17"``).
    ``steps`` per octave; ``octaves`` scales, each ``octave_scale`` smaller than the next;
    ``step_size``: mean absolute pixel change per step; ``jitter``: maximal random shift in px.
    The trace ``(N, octaves*steps)`` holds the objective before each step. ``progress``: a bar over
    the steps (:mod:`seethrough.progress`).

    >>> import torch, seethrough as see
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
    >>> x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    >>> d = see.dream(net, x, "1", steps=5, octaves=2, progress=False)
    >>> bool(d.trace[0, -1] > d.trace[0, 0]), bool(0 <= d.x.min() and d.x.max() <= 1)
    (True, True)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    image = check_images(image, name="image")
    if image.min() < 0 or image.max() > 1:
        raise ValueError("image must be in [0, 1]; normalisation belongs inside the model")
    if objective is None:
        if layer is None:
            raise ValueError("dream needs a layer (e.g. 'blocks.10') or an objective")
        layers = [layer] if isinstance(layer, str) else list(layer)
        if not layers:
            raise ValueError("layer is an empty list; name at least one layer")
        obj = sum((O.layer_l2(l) for l in layers[1:]), O.layer_l2(layers[0]))
    else:
        if layer is not None:
            raise ValueError("give either layer= or objective=, not both")
        obj = O._as_objective(objective)
    steps, octaves = check_steps(steps), check_steps(octaves, "octaves")
    step_size = check_positive(step_size, "step_size")
    if not isinstance(octave_scale, (int, float)) or octave_scale < 1:
        raise ValueError(f"octave_scale must be a number ≥ 1, got {octave_scale!r}")
    if isinstance(jitter, bool) or not isinstance(jitter, int) or jitter < 0:
        raise ValueError(f"jitter must be a non-negative int (pixels), got {jitter!r}")
    h, w = image.shape[-2:]
    sizes = [(max(8, round(h / octave_scale ** k)), max(8, round(w / octave_scale ** k))) for k in range(octaves - 1, -1, -1)]

    if len(set(sizes)) > 1:
        hint = (f"dream runs the model on the image at every octave's size ({', '.join(f'{a}×{b}' for a, b in sizes)}); "
                "a model that takes one input size needs octaves=1 (or octave_scale=1)")
    else:
        hint = "pass an image of the size and channels the model expects"

    def run(start: int, stop: int):
        return _dream(model, image[start:stop], obj, sizes, steps, step_size, jitter, torch.Generator().manual_seed(seed), hint,
                      progress)

    x, trace = chunked(run, image.shape[0], image, model, "dream", batch_size, "dream", progress)
    settings = {"objective": obj.name, "steps": steps, "octaves": octaves, "octave_scale": octave_scale,
                "step_size": step_size, "jitter": jitter, "seed": seed}
    return Visualization(x, trace, [obj.name] * x.shape[0], settings, seed=seed)


def _dream(model, base, obj, sizes, steps, step_size, jitter, g, hint, progress=True):
    trace = []
    steps_bar = bar(total=len(sizes) * steps, desc="dream", progress=progress)
    detail = torch.zeros_like(F.interpolate(base, size=sizes[0], mode="area"))
    with hooks(model, capture=list(obj.layers)) as rec:
        for k, size in enumerate(sizes):
            scaled = base if size == tuple(base.shape[-2:]) else F.interpolate(base, size=size, mode="area")
            x = (scaled + F.interpolate(detail, size=size, mode="bilinear", align_corners=False)).clamp(0, 1)
            for step in range(steps):
                dy, dx = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=g)) if jitter else (0, 0)
                xs = torch.roll(x, (dy, dx), (2, 3)).requires_grad_()
                rec.clear()
                out = forward_checked(model, xs, hint) if step == 0 else model(xs)
                s = obj.fn({n: rec[n] for n in obj.layers}, out)
                trace.append(s.detach())
                (grad,) = torch.autograd.grad(s.sum(), xs)
                grad = grad / grad.abs().flatten(1).mean(1).clamp_min(1e-12).view(-1, 1, 1, 1)
                x = torch.roll(xs.detach() + step_size * grad, (-dy, -dx), (2, 3)).clamp(0, 1)
                report("dream step", k * steps + step + 1, len(sizes) * steps)
                steps_bar.update(1)
            detail = x - scaled
        rec.clear()
    steps_bar.close()
    return x, torch.stack(trace, 1)
