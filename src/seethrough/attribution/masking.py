"""The shared core of the perturbation methods: score masked copies of the input, in batches.

Occlusion, LIME, KernelSHAP and RISE all evaluate ``f(x * m + baseline * (1 - m))`` for many
masks ``m``; they differ only in how they choose the masks and how they combine the scores.
Here live the two things they share: turning a ``baseline`` option into a tensor, and
:func:`masked_scores`, which runs all (image, mask) pairs through the model on the batching
engine without one Python iteration per sample.
"""
from __future__ import annotations

import copy
from numbers import Real
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ..batching import bytes_per_item, model_key, run_batched
from ..hooks import hooks
from ..targets import target_indices, target_scores
from .common import BASELINES, make_baseline

# masks(image_index, mask_index) -> (k, 1 or C, H, W) in [0, 1]; 1 keeps the pixel.
MaskFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def resolve_baseline(x: torch.Tensor, baseline: Any, *, blur_sigma: float | None = None) -> torch.Tensor:
    """The image that replaces masked pixels, shaped like ``x``.

    ``baseline`` is a number (a constant grey level in [0, 1] pixel units), ``"mean"`` (each
    image's per-channel mean), ``"black"``/``"zeros"``, ``"blur"`` (a Gaussian-blurred copy,
    sigma ``blur_sigma``) or a tensor that broadcasts to ``x``'s shape - the gradient methods'
    :func:`~seethrough.attribution.common.make_baseline` plus ``"mean"``.

    >>> x = torch.rand(2, 3, 8, 8)
    >>> resolve_baseline(x, "mean")[0, :, 0, 0].allclose(x[0].mean((1, 2)))
    True
    """
    if isinstance(baseline, str) and baseline not in _NAMED:
        raise ValueError(f"baseline must be a number, one of {', '.join(map(repr, _NAMED))} or a tensor, got {baseline!r}")
    if isinstance(baseline, str) and baseline == "mean":
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x).clone()
    if not isinstance(baseline, (str, Real, torch.Tensor)) or isinstance(baseline, bool):
        raise TypeError(f"baseline must be a number, one of {', '.join(map(repr, _NAMED))} or a tensor, "
                        f"got {type(baseline).__name__}")
    return make_baseline(x, baseline, blur_sigma)


_NAMED = ("mean", *BASELINES)


def clean_forward(model: nn.Module, x: torch.Tensor, target: Any, score: str | None = None,
                  ) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The target class per sample (``None`` for a callable target) and the clean scores
    (``score``: see :func:`seethrough.targets.target_scores`)."""
    with hooks(model), torch.no_grad():
        out = model(x)
    idx = target_indices(out, target)
    return idx, target_scores(out, target, idx, score).detach()


def masked_scores(
    model: nn.Module,
    x: torch.Tensor,
    target: Any,
    indices: torch.Tensor | None,
    counts: int | Sequence[int],
    masks: MaskFn,
    baseline: torch.Tensor,
    *,
    batch_size: int | str = "auto",
    memory_budget: int | None = None,
    progress: bool = True,
    desc: str = "",
    score: str | None = None,
) -> list[torch.Tensor]:
    """Scores of ``x[i] * m + baseline[i] * (1 - m)`` for ``counts[i]`` masks per image.

    All (image, mask) pairs form one stream of items evaluated by :func:`run_batched`, so
    the batch size is chosen once for the whole work, across images. Returns one ``(counts[i],)``
    tensor per image. ``indices`` are the target classes from :func:`clean_forward`; ``score``
    how they are read (logit, probability or log-probability; ``None`` for a callable target).
    """
    n_img = x.shape[0]
    counts = [counts] * n_img if isinstance(counts, int) else list(counts)
    offsets = torch.tensor([0, *counts]).cumsum(0)
    total = int(offsets[-1])

    def evaluate(start: int, stop: int) -> torch.Tensor:
        item = torch.arange(start, stop)
        img = torch.searchsorted(offsets, item, right=True) - 1
        local = item - offsets[img]
        img_d = img.to(x.device)
        m = masks(img, local).to(device=x.device, dtype=x.dtype)
        batch = torch.lerp(baseline[img_d], x[img_d], m).contiguous(memory_format=layout)
        out = net(batch)
        return target_scores(out, target, None if indices is None else indices[img_d], score).detach()

    with hooks(model), torch.no_grad():
        net, layout = channels_last_copy(model, x)  # copied inside hooks(): the copy is in eval mode too
        scores = run_batched(
            evaluate, total, batch_size=batch_size, item_bytes=bytes_per_item(x, "forward"),
            memory_budget=memory_budget, key=model_key(model, x, "forward"), progress=progress,
            desc=desc, device=x.device,
        )
    return list(scores.split(counts))


def channels_last_copy(model: nn.Module, x: torch.Tensor) -> tuple[nn.Module, torch.memory_format]:
    """The model to run many forward passes with, and the memory layout to feed it.

    For image batches on a CPU, a channels-last *copy* of a convolutional model: measured
    1.4× faster per image on EfficientNet-Lite0 at batch 8 (``benchmarks/run.py``), and a copy
    so the user's model keeps its own layout. Anything else, or a model that cannot be copied,
    runs as given.

    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    >>> fast, layout = channels_last_copy(net, torch.rand(2, 3, 8, 8))
    >>> fast is not net, layout == torch.channels_last, net[0].weight.is_contiguous()
    (True, True, True)
    >>> lin = nn.Linear(4, 2)                     # no conv, no image batch: runs as given
    >>> channels_last_copy(lin, torch.rand(2, 4)) == (lin, torch.contiguous_format)
    True
    """
    plain = (model, torch.contiguous_format)
    if x.dim() != 4 or x.device.type != "cpu" or not any(isinstance(m, nn.Conv2d) for m in model.modules()):
        return plain
    try:
        return copy.deepcopy(model).to(memory_format=torch.channels_last), torch.channels_last
    except Exception:  # a module that refuses deepcopy (some scripted or wrapped models) runs as given
        return plain
