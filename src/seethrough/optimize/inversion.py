"""Feature inversion (Mahendran & Vedaldi, 2015): what does a layer's code still know of the image?

Starting from grey noise, find an image x̂ whose representation at ``layer`` matches the
original's, minimising Mahendran & Vedaldi's objective

    ‖Φ(x̂) − Φ(x)‖² / ‖Φ(x)‖²  +  λ_α · mean(‖x̂ − ½‖^α) / (B√C)^α  +  λ_V · mean((dx² + dy²)^(β/2)) / V^β

(α = 6, β = 2, B = ½ the pixel range about grey, V = B/6.5; :mod:`~seethrough.optimize.priors`),
with the habits that make deep layers invertible: *jitter* (the image is shifted by a few
random pixels at every step, so no pattern can rely on one exact alignment; the IJCV
version, 2016), a *coarse-to-fine* schedule (the image is first optimised at a quarter and a
half of its size and upsampled, so large structures settle before fine detail), a learning
rate decaying linearly to zero within each scale, and regularisation that grows with depth
(Mahendran & Vedaldi weight it per layer): a layer that sees the image at stride s gets
λ_V = ``tv``·s/side (a layer without spatial extent, s = side: ``tv`` itself; an overcomplete
layer, whose code has at least as many numbers as the image, none) and a jitter of at most
s/4 pixels. The image is a decorrelated Fourier spectrum by default
(``param="fourier"``, as in :func:`~seethrough.optimize.maximize.visualize`), which at the
middle blocks gives a higher SSIM than plain pixels. Shallow layers give back the photo; deep ones keep what
matters for the class, which :func:`invert` measures as SSIM with the original per depth.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..hooks import hooks
from ..deprecation import renamed
from ..inputs import check_images
from . import transforms as T
from .engine import Visualization, ascend, check_positive, check_steps, chunked, forward_checked, new_param
from .priors import alpha_norm, tv_norm
from .priors import penalty as _penalty
from .similarity import layout_correlation, ssim

# The objective seethrough used before 2026-12 (pixels, no jitter, one scale, constant rate,
# small unnormalised TV + L2): kept so a test can show what the paper's recipe adds.
PLAIN = {"tv": 0.0, "alpha": 0.0, "priors": {"tv": 0.5, "l2": 0.05}, "jitter": 0, "scales": 1, "decay": False,
         "param": "pixel"}
SIZE_HINT = "pass images x of the size and channels the model expects"


@dataclass
class Inversion(Visualization):
    """A reconstruction from ``layer``: ``x`` ``(N, C, H, W)``, ``trace`` the relative
    representation distance ``‖Φ(x̂) − Φ(x)‖² / ‖Φ(x)‖²`` before each step, ``similarity``
    the SSIM of ``x`` with the original per image (``None`` for images under 11 px), ``layout``
    the correlation of their brightness on a 16 × 16 grid (:func:`~seethrough.optimize.similarity.layout_correlation`;
    ``None`` under 16 px): SSIM gives a flat image about 0.3 on a smooth photo, the layout 0."""

    layer: str = ""
    similarity: torch.Tensor | None = field(default=None)
    layout: torch.Tensor | None = field(default=None)


@renamed(lr="step_size")
def invert(
    model: nn.Module,
    x: torch.Tensor,
    layer: str | Sequence[str],
    *,
    steps: int = 200,
    step_size: float = 0.05,
    tv: float = 3.0,
    alpha: float = 1.0,
    jitter: int | str = "auto",
    scales: int = 3,
    decay: bool = True,
    priors: dict | None = None,
    param: str = "fourier",
    transforms=None,
    seed: int = 0,
    batch_size: int | str = "auto",
    progress: bool = True,
) -> Inversion | list[Inversion]:
    """Reconstruct ``x`` ``(N, C, H, W)`` in [0, 1] from its representation at ``layer``.

    Several layers (a list) are inverted in one batched optimisation and give a list of
    :class:`Inversion`, one per layer. ``tv``: the weight λ_V of the normalised TV prior at a
    layer seeing the whole image (a layer at stride s gets ``tv``·s/side, an overcomplete one 0); 3 suits ImageNet
    models on photos, digit-sized models want about 0.1. ``alpha``: the weight λ_α of the
    α-norm. ``jitter``: the largest random shift per step in pixels (``"auto"``: 1 px per 64 px
    of image side, at least 1, and at most a quarter of the layer's stride). ``scales``: coarse-to-fine
    levels (3: a quarter, a half, then full size, which gets half the steps). ``step_size``: Adam's
    learning rate; ``decay``: it falls linearly to 0 within each level. ``progress``: bars over the steps. ``priors``: extra priors
    (``{"l2": w, ...}``, :mod:`seethrough.optimize.priors`); ``param`` and ``transforms``
    (applied after the jitter) as in :func:`~seethrough.optimize.maximize.visualize`.
    ``invert(..., **seethrough.optimize.inversion.PLAIN)`` is the plain objective without the
    paper's recipe, for comparison.

    >>> import torch, seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> x = see.zoo.digits("test")[0][:2]
    >>> inv = see.invert(model, x, "relu1", steps=30, tv=0.1, progress=False)
    >>> bool((inv.trace[:, -1] < inv.trace[:, 0]).all()), bool((inv.similarity > 0.5).all())
    (True, True)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    x = check_images(x)
    if x.min() < 0 or x.max() > 1:
        raise ValueError("x must be images in [0, 1]; normalisation belongs inside the model")
    single = isinstance(layer, str)
    layers = [layer] if single else list(layer)
    if not layers or not all(isinstance(l, str) for l in layers):
        raise ValueError(f"layer must be a layer name or a non-empty list of them, got {layer!r}")
    steps, step_size = check_steps(steps), check_positive(step_size, "step_size")
    scales = check_steps(scales, "scales")
    for name, v in (("tv", tv), ("alpha", alpha)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v >= 0 and math.isfinite(v)):
            raise ValueError(f"{name} must be a non-negative weight, got {v!r}")
    if not isinstance(decay, bool):
        raise ValueError(f"decay must be True or False, got {decay!r}")
    full = tuple(x.shape[-2:])
    levels = _levels(full, scales, steps)
    extra = _penalty(priors)
    user = T.resolve(transforms, max(full))
    n = x.shape[0]
    with torch.no_grad(), hooks(model, capture=layers, detach=True) as rec:
        forward_checked(model, x, SIZE_HINT)
        targets = {l: rec[l] for l in layers}
    norms = {l: t.pow(2).flatten(1).sum(1).clamp_min(1e-12) for l, t in targets.items()}
    strides = [_stride(targets[l], full) for l in layers]
    shifts = [_jitter(jitter, full, s) for s in strides]
    # An overcomplete code (at least as many numbers as the image: a stem) pins the image down
    # and a TV prior could only blur it; below that, regularise more the coarser the layer sees.
    tv_weights = [0.0 if targets[l][0].numel() >= x[0].numel() else tv * s / max(full) for l, s in zip(layers, strides)]
    channels = x.shape[1]

    def run(start: int, stop: int):
        rows = torch.arange(start, stop)
        which, src = rows // n, rows % n

        def score(acts, out):
            s = out.new_zeros(stop - start)
            for li in which.unique().tolist():
                sel = (which == li).nonzero().flatten()
                l = layers[li]
                d = (acts[l][sel] - targets[l][src[sel]]).pow(2).flatten(1).sum(1) / norms[l][src[sel]]
                s[sel] = -d
            return s

        row_tv = torch.tensor([tv_weights[i] for i in which.tolist()], dtype=x.dtype, device=x.device)
        row_shift = [shifts[i] for i in which.tolist()]

        def penalty(img):
            p = img.new_zeros(img.shape[0])
            if alpha:
                p = p + alpha * alpha_norm(img)
            if tv:
                p = p + row_tv * tv_norm(img)
            return p if extra is None else p + extra(img)

        jitter_rows = _row_roll(row_shift)
        transform = T.compose(*(t for t in (jitter_rows, user) if t is not None)) if jitter_rows or user else None
        g = torch.Generator().manual_seed(seed)  # one transform stream, replayed by every chunk
        traces, p, done = [], None, 0
        for size, k in levels:
            q = new_param(param, (stop - start, channels, *size), start, seed, None, x.device, x.dtype, shared=True)
            if p is not None:  # carry the coarser image up to this level
                with torch.no_grad():
                    q.set_image(F.interpolate(p.image(), size=size, mode="bilinear", align_corners=False).clamp(0, 1))
            p = q
            traces.append(ascend(model, p, score, layers, steps=k, step_size=step_size, transform=transform, penalty=penalty,
                                 generator=g, desc="invert step", hint=SIZE_HINT, out_size=full, decay=decay,
                                 first=done, total=steps, progress=progress))
            done += k
        return p.image().detach(), -torch.cat(traces, 1)

    xs, trace = chunked(run, n * len(layers), x, model, "invert", batch_size, "invert", progress)
    settings = {"steps": steps, "step_size": step_size, "tv": tv, "alpha": alpha, "param": param,
                "priors": {getattr(k, "__name__", k): v for k, v in (priors or {}).items()},
                "scales": [list(s) for s, _ in levels], "decay": decay,
                "transforms": transforms if isinstance(transforms, str) or transforms is None else "custom", "seed": seed}
    results = []
    for li, l in enumerate(layers):
        xi = xs[li * n:(li + 1) * n]
        sim = ssim(xi, x) if min(full) >= 11 else None
        lay = layout_correlation(xi, x) if min(full) >= 16 else None
        info = {**settings, "layer": l, "stride": strides[li], "tv_weight": tv_weights[li], "jitter": shifts[li]}
        results.append(Inversion(xi, trace[li * n:(li + 1) * n], [f"invert:{l}"] * n, info, seed=seed, layer=l,
                                 similarity=sim, layout=lay))
    return results[0] if single else results


def _stride(act: torch.Tensor, size: tuple[int, int]) -> float:
    """How many input pixels one position of the layer spans: side / map side, or the whole
    side for a layer without spatial extent (pooled features, logits)."""
    if act.dim() == 4:
        return min(float(max(size)), max(size[0] / act.shape[2], size[1] / act.shape[3]))
    return float(max(size))


def _row_roll(shifts: list[int]):
    """Jitter with one random draw per step shared by the batch, scaled to each row's largest
    shift: every row sees the same sequence whatever chunk it is in."""
    top = max(shifts)
    if top == 0:
        return None
    groups: dict[int, list[int]] = {}
    for i, d in enumerate(shifts):
        groups.setdefault(d, []).append(i)

    def t(x, g):
        u = torch.rand(2, generator=g, dtype=torch.float64) * 2 - 1
        out = x
        for d, idx in groups.items():
            dy, dx = (int(round(float(v) * d)) for v in u)
            if d and (dy or dx):
                out = out.index_copy(0, torch.tensor(idx, device=x.device), torch.roll(x[idx], (dy, dx), (2, 3)))
        return out

    return t


def _jitter(jitter: int | str, size: tuple[int, int], stride: float) -> int:
    if jitter == "auto":
        return min(max(1, round(max(size) / 64)), int(stride // 4))
    if isinstance(jitter, bool) or not isinstance(jitter, int) or jitter < 0:
        raise ValueError(f"jitter must be 'auto' or a non-negative int (pixels), got {jitter!r}")
    if jitter >= min(size):
        raise ValueError(f"jitter of {jitter} px is too large for a {size[0]}×{size[1]} image; use less than {min(size)}")
    return jitter


def _levels(size: tuple[int, int], scales: int, steps: int) -> list[tuple[tuple[int, int], int]]:
    """Coarse-to-fine sizes (halving, at least 4 px a side) and steps: the full size gets half
    the steps (all of them with one scale), the coarser levels share the rest equally."""
    sizes = [tuple(max(4, round(s / 2 ** k)) for s in size) for k in range(scales - 1, -1, -1)]
    if scales == 1:
        return [(size, steps)]
    coarse = steps // 2 // (scales - 1)
    if coarse == 0:
        raise ValueError(f"{steps} steps cannot be shared among {scales} scales; give at least {2 * (scales - 1)} "
                         "steps or fewer scales")
    return [(s, coarse) for s in sizes[:-1]] + [(size, steps - coarse * (scales - 1))]
