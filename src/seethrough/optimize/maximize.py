"""Activation maximisation and class models: ``see.visualize(model, objective, …)``."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..deprecation import renamed
from ..inputs import check_images
from . import objectives as O
from . import transforms as T
from .engine import Visualization, ascend, check_positive, check_steps, chunked, new_param
from .priors import penalty as _penalty


@renamed(n="n_samples", lr="step_size")
def visualize(
    model: nn.Module,
    objective: O.Objective | str | Sequence[O.Objective | str],
    *,
    n_samples: int | None = None,
    size: int | tuple[int, int] | None = None,
    channels: int | None = None,
    param: str = "fourier",
    init: torch.Tensor | None = None,
    steps: int = 256,
    step_size: float = 0.05,
    transforms="standard",
    priors: dict | None = None,
    blur_every: int = 0,
    blur_sigma: float = 0.5,
    diversity: float = 0.0,
    diversity_layer: str | None = None,
    seed: int = 0,
    batch_size: int | str = "auto",
    progress: bool = True,
) -> Visualization:
    """Optimise input images to maximise ``objective`` (gradient ascent with Adam).

    ``objective``: an :class:`~seethrough.optimize.objectives.Objective`, its string form
    (``"logit:285"``, ``"channel:blocks.10:17"``), or a list of them - one image each.
    ``n_samples`` images per objective (default 1); ``step_size``: Adam's learning rate. ``param``: ``"fourier"`` (decorrelated, 1/f) or
    ``"pixel"``. ``init``: start from these images in [0, 1] instead of noise (``(1|N, C, H, W)``).
    ``transforms``: ``"standard"`` (pad, jitter, scale, rotate), ``None``, or transforms from
    :mod:`seethrough.optimize.transforms`. ``priors``: ``{"l2"|"tv"|"edge"|callable: weight}``.
    ``blur_every``: blur the image every k steps (σ = ``blur_sigma``). ``diversity``: weight of
    a term pushing the batch's Gram matrices apart at ``diversity_layer`` (default: the
    objective's first layer); it couples the batch, so it runs as one batch. ``progress``: bars
    over the steps and chunks (:mod:`seethrough.progress`).
    ``size``/``channels``: the input the model takes (default: ``init``'s, else 224 and the
    first convolution's input channels).

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> v = see.visualize(model, "logit:3", size=32, param="pixel", transforms=None, steps=20, seed=0, progress=False)
    >>> v.x.shape, bool(v.trace[0, -1] > v.trace[0, 0])
    (torch.Size([1, 1, 32, 32]), True)
    >>> model(v.x).argmax().item()
    3
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    objs = list(objective) if isinstance(objective, (list, tuple)) else [objective]
    objs = [O._as_objective(o) for o in objs]
    if not objs:
        raise ValueError("objective is an empty list; give at least one objective")
    per = 1 if n_samples is None else n_samples
    if isinstance(per, bool) or not isinstance(per, int) or per < 1:
        raise ValueError(f"n_samples must be a positive int (images per objective), got {n_samples!r}")
    steps = check_steps(steps)
    step_size = check_positive(step_size, "step_size")
    if isinstance(blur_every, bool) or not isinstance(blur_every, int) or blur_every < 0:
        raise ValueError(f"blur_every must be a non-negative int (0 = never), got {blur_every!r}")
    if not isinstance(diversity, (int, float)) or isinstance(diversity, bool) or diversity < 0:
        raise ValueError(f"diversity must be a non-negative weight, got {diversity!r}")
    ref = next(model.parameters(), None)
    device, dtype = (ref.device, ref.dtype) if ref is not None else (torch.device("cpu"), torch.float32)
    shape = _shape(model, init, size, channels)
    total = len(objs) * per
    if init is not None:
        init = check_images(init, name="init").to(device=device, dtype=dtype)
        if init.shape[0] not in (1, total):
            raise ValueError(f"init has {init.shape[0]} images; give 1 or one per optimised image ({total})")
        if init.min() < 0 or init.max() > 1:
            raise ValueError("init must be images in [0, 1]")
        init = init.expand(total, *init.shape[1:])
    transform = T.resolve(transforms, max(shape[1:]))
    prior = _penalty(priors)
    expanded = [o for o in objs for _ in range(per)]
    div = None
    if diversity:
        layer = diversity_layer or next((l for o in objs for l in o.layers), None)
        if layer is None:
            raise ValueError("diversity needs a layer: pass diversity_layer= (the objective reads no layer)")
        div = diversity * O.diversity(layer)
        batch_size = total  # the diversity term compares images, so they optimise together
    like = torch.empty((1, *shape), device=device, dtype=dtype)

    def run(start: int, stop: int):
        obj = O.stack(expanded[start:stop])
        layers = obj.layers if div is None else O._union(obj, div)
        p = new_param(param, (stop - start, *shape), start, seed, None if init is None else init[start:stop], device, dtype)
        trace = ascend(model, p, obj.fn, layers, steps=steps, step_size=step_size, transform=transform, penalty=prior,
                       extra=None if div is None else div.fn, blur_every=blur_every, blur_sigma=blur_sigma,
                       generator=torch.Generator().manual_seed(seed), progress=progress)
        return p.image().detach(), trace

    x, trace = chunked(run, total, like, model, "visualize", batch_size, "visualize", progress)
    settings = {"objective": [o.name for o in objs], "n_samples": per, "param": param, "steps": steps, "step_size": step_size,
                "transforms": transforms if isinstance(transforms, str) or transforms is None else "custom",
                "priors": {getattr(k, "__name__", k): v for k, v in (priors or {}).items()}, "blur_every": blur_every,
                "diversity": diversity, "size": list(shape[1:]), "seed": seed}
    return Visualization(x, trace, [o.name for o in expanded], settings, seed=seed)


def _shape(model: nn.Module, init, size, channels) -> tuple[int, int, int]:
    if init is not None:
        if not isinstance(init, torch.Tensor) or init.dim() != 4:
            raise ValueError("init must be an image batch (N, C, H, W) in [0, 1]")
        c, h, w = init.shape[1:]
        if size is not None and _hw(size) != (h, w):
            raise ValueError(f"size {size} disagrees with init's {h}×{w}; drop one")
        return (c, h, w)
    h, w = _hw(224 if size is None else size)
    if channels is None:
        conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        channels = conv.in_channels if conv is not None else 3
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"channels must be a positive int, got {channels!r}")
    return (channels, h, w)


def _hw(size) -> tuple[int, int]:
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    if not (isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(s, int) and s >= 8 for s in size)):
        raise ValueError(f"size must be an int or (height, width) of at least 8 px, got {size!r}")
    return tuple(size)
