"""RISE (Petsiuk, Das & Saenko, 2018): average random smooth masks weighted by the score they leave.

On tabular rows and token ids there is no neighbourhood to smooth over: a mask keeps each feature
(token) independently with probability ``p``, hidden features take the background's values (the
score is the mean over the background rows), hidden tokens the mask/pad id (:mod:`.masking`), and
the map is ``(N, F)`` / ``(N, L)`` (padding: 0).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..boundary import as_boundary
from .common import check_positive_int
from .masking import clean_forward, masked_scores, position_scores, positions, resolve_baseline, unit_or_score, unit_target
from .registry import register


class RiseMasks:
    """``n`` random smooth masks for ``size = (H, W)``, drawn once (small grids and shifts)
    and upsampled on demand, so a batch of masks costs no more memory than the batch.

    A mask is a ``cells × cells`` grid of Bernoulli(``p``) bits, bilinearly upsampled to
    ``(cells + 1)`` cell sizes and cropped at a random shift, as in the paper.

    >>> m = RiseMasks(100, (32, 32), cells=4, p=0.5, seed=0)
    >>> m(torch.arange(3)).shape
    torch.Size([3, 1, 32, 32])
    """

    def __init__(self, n: int, size: tuple[int, int], *, cells: int = 7, p: float = 0.5, seed: int = 0,
                 device: torch.device | str = "cpu"):
        # The small grids and shifts are drawn on the CPU (the same masks on every device for a seed) and moved
        # to ``device`` once; the upsampling and cropping of each batch then run there.
        g = torch.Generator().manual_seed(seed)
        self.size = size
        self.cell = (-(-size[0] // cells), -(-size[1] // cells))  # ceil
        self.grids = (torch.rand(n, 1, cells, cells, generator=g) < p).float().to(device)
        self.shift_y = torch.randint(0, self.cell[0], (n,), generator=g).to(device)
        self.shift_x = torch.randint(0, self.cell[1], (n,), generator=g).to(device)

    def __call__(self, k: torch.Tensor) -> torch.Tensor:
        cells, dev = self.grids.shape[-1], self.grids.device
        k = k.to(dev)
        up = F.interpolate(self.grids[k], size=((cells + 1) * self.cell[0], (cells + 1) * self.cell[1]),
                           mode="bilinear", align_corners=False)
        h, w = self.size
        rows = (self.shift_y[k, None] + torch.arange(h, device=dev)).view(-1, 1, h, 1).expand(-1, 1, h, up.shape[-1])
        up = up.gather(2, rows)
        cols = (self.shift_x[k, None] + torch.arange(w, device=dev)).view(-1, 1, 1, w).expand(-1, 1, h, w)
        return up.gather(3, cols).clamp_(0, 1)  # bilinear rounding may overshoot 1 by an ulp


@register("rise", family="perturbation", paper="Petsiuk, Das & Saenko, 2018", region=True, score="probability",
          kinds=("image", "tabular", "tokens"))
def rise(
    model: nn.Module,
    x: torch.Tensor,
    target: Any = None,
    *,
    n_samples: int = 2000,
    cells: int = 7,
    p: float = 0.5,
    baseline: Any = None,
    seed: int = 0,
    score: str | None = None,
    batch_size: int | str = "auto",
    memory_budget: int | None = None,
    progress: bool = True,
    unit: Any = None,
    compile: bool = False,
) -> torch.Tensor:
    """RISE saliency ``Σ_i f(x ⊙ M_i) M_i / (n_samples · p)``: ``(N, 1, H, W)``.

    ``n_samples`` masks of a ``cells × cells`` grid keeping each cell with probability ``p``;
    the same masks (``seed``) serve every image, so an image gets the same map alone or in any
    batch. Hidden pixels take the ``baseline`` (default 0, black, as in the paper). ``f`` is the
    target's softmax **probability** by default (``score="probability"``, as the paper and its
    reference code); ``score="logit"`` or ``"log-probability"`` on request. ``unit=(layer, channel[,
    position])`` explains that unit's activation instead (``target`` None). ``compile``: run the masked
    forwards through torch.compile with frozen weights, once per model and shape, the first call paying the
    compile time (images only, docs/speed.md).

    >>> import seethrough as see
    >>> x, y = see.zoo.digits("test")
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> see.attribute(model, x[:2], "rise", target=y[:2], n_samples=64).shape
    torch.Size([2, 1, 32, 32])
    """
    check_positive_int("n_samples", n_samples, 2)
    check_positive_int("cells", cells)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p < 1:
        raise ValueError(f"p (the probability of keeping a cell) must be in (0, 1), got {p!r}")
    target = unit_target(model, x, target, unit, "rise")
    if not isinstance(compile, bool) or (compile and as_boundary(model, x).kind != "image"):
        raise ValueError(f"compile is True or False and compiles image passes only; got {compile!r} on "
                         f"{as_boundary(model, x).kind} input")
    if as_boundary(model, x).kind in ("tabular", "tokens"):
        return _rise_positions(model, x, target, n_samples=n_samples, p=p, baseline=baseline, seed=seed, score=score,
                               batch_size=batch_size, memory_budget=memory_budget, progress=progress)
    h, w = x.shape[2:]
    if cells > min(h, w):
        raise ValueError(f"cells={cells} is finer than the image ({h}×{w}); choose cells ≤ {min(h, w)}")
    base = resolve_baseline(x, 0.0 if baseline is None else baseline)
    make = RiseMasks(n_samples, (h, w), cells=cells, p=p, seed=seed, device=x.device)
    score = unit_or_score(score, target, "probability")
    indices, _ = clean_forward(model, x, target, score)
    scores = torch.stack(masked_scores(model, x, target, indices, n_samples, lambda _, k: make(k), base,
                                       batch_size=batch_size, memory_budget=memory_budget, progress=progress,
                                       desc="rise", score=score, compile=compile))  # (N, n_samples)
    # Σ_i score_i M_i without materialising all masks: accumulate chunk by chunk.
    total = torch.zeros(x.shape[0], h * w, device=x.device, dtype=x.dtype)
    for start in range(0, n_samples, 256):
        k = torch.arange(start, min(start + 256, n_samples), device=x.device)
        m = make(k).view(len(k), -1).to(dtype=x.dtype)
        total += scores[:, k] @ m
    return (total / (n_samples * p)).view(x.shape[0], 1, h, w)


def _rise_positions(model, x, target, *, n_samples, p, baseline, seed, score, batch_size, memory_budget, progress):
    pos = positions(model, x, baseline, "rise")
    g = torch.Generator().manual_seed(seed)
    masks = (torch.rand(n_samples, pos.size, generator=g) < p).to(x.device)  # the same for every sample; moved once
    score = unit_or_score(score, target, "probability")
    indices, _ = clean_forward(pos.b, x, target, score)
    scores = torch.stack(position_scores(pos, target, indices, n_samples, lambda _, k: masks[k], batch_size=batch_size,
                                         memory_budget=memory_budget, progress=progress, desc="rise", score=score))
    dtype = x.dtype if x.is_floating_point() else scores.dtype
    out = scores.to(dtype) @ masks.to(device=x.device, dtype=dtype) / (n_samples * p)
    return out * pos.real
