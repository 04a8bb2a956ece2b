"""Attribution heatmaps: one overlay, or several methods side by side.

Channel reduction lives here, not in the methods: ``reduce="auto"`` sums signed maps over the
channels and takes the per-pixel maximum of non-negative ones (Simonyan et al.'s choice for
saliency). Signed maps get a diverging colormap centred on zero, non-negative ones a sequential
one; both are clipped at a percentile of |attribution| so that a few extreme pixels do not wash
out the rest.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from .optimize import figure_to_image  # noqa: E402

__all__ = ["overlay", "panel", "reduce_channels", "heat_rgb"]

_REDUCE = ("auto", "sum", "abs-sum", "max-abs", "max", "norm")


def reduce_channels(attribution: torch.Tensor, reduce: str = "auto") -> torch.Tensor:
    """(N, C, H, W) → (N, H, W).

    >>> reduce_channels(torch.tensor([[[[1.0]], [[-3.0]]]]), "sum").item()
    -2.0
    """
    a = attribution.detach().float()
    if a.dim() == 3:
        a = a.unsqueeze(0)
    if a.dim() != 4:
        raise ValueError(f"attribution must have shape (N, C, H, W), got {tuple(attribution.shape)}")
    if reduce not in _REDUCE:
        raise ValueError(f"reduce must be one of {', '.join(map(repr, _REDUCE))}, got {reduce!r}")
    if reduce == "auto":
        reduce = "max" if bool((a >= 0).all()) else "sum"
    if reduce == "sum":
        return a.sum(1)
    if reduce == "abs-sum":
        return a.abs().sum(1)
    if reduce == "max-abs":
        return a.abs().amax(1)
    if reduce == "max":
        return a.amax(1)
    return a.norm(dim=1)


def heat_rgb(m: np.ndarray, percentile: float = 99.0, cmap: str | None = None) -> tuple[np.ndarray, bool]:
    """A 2-D map → (H, W, 4) RGBA floats and whether it was treated as signed.

    >>> rgba, signed = heat_rgb(np.array([[-1.0, 0.0], [0.5, 1.0]]))
    >>> rgba.shape, signed
    ((2, 2, 4), True)
    """
    signed = bool((m < 0).any() and (m > 0).any() and np.abs(m[m < 0]).sum() > 0.02 * np.abs(m).sum())
    top = float(np.percentile(np.abs(m), percentile)) or float(np.abs(m).max()) or 1.0
    if signed:
        v = np.clip(m / top, -1, 1) * 0.5 + 0.5
        colors = plt.get_cmap(cmap or "bwr")(v)
        colors[..., 3] = np.sqrt(np.abs(v - 0.5) * 2)  # transparent near zero; sqrt keeps thin structures visible
    else:
        v = np.clip(np.abs(m) / top, 0, 1)
        colors = plt.get_cmap(cmap or "inferno")(v)
        colors[..., 3] = np.sqrt(v)
    return colors, signed


def _image_np(x: torch.Tensor) -> np.ndarray:
    img = x.detach().float().cpu().clamp(0, 1)
    if img.shape[0] == 1:
        img = img.expand(3, -1, -1)
    return img.permute(1, 2, 0).numpy()


def _blend(x: torch.Tensor, a2d: np.ndarray, alpha: float, percentile: float, cmap: str | None) -> np.ndarray:
    base = _image_np(x)
    if a2d.shape != base.shape[:2]:
        t = torch.from_numpy(a2d)[None, None]
        a2d = torch.nn.functional.interpolate(t, size=base.shape[:2], mode="bilinear", align_corners=False)[0, 0].numpy()
    heat, _ = heat_rgb(a2d, percentile, cmap)
    w = alpha * heat[..., 3:4]
    gray = base.mean(2, keepdims=True) * 0.6 + 0.2  # a muted photo lets the heat stand out
    return np.clip((1 - w) * gray + w * heat[..., :3], 0, 1)


def _check(x: torch.Tensor, attribution: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"x must be an image batch (N, C, H, W) in [0, 1], got {getattr(x, 'shape', type(x).__name__)}")
    if not isinstance(attribution, torch.Tensor) or attribution.dim() != 4 or attribution.shape[0] != x.shape[0]:
        raise ValueError(f"attribution must be (N, C, H, W) with N = {x.shape[0]} like x, got {getattr(attribution, 'shape', None)}")


def overlay(x: torch.Tensor, attribution: torch.Tensor, *, reduce: str = "auto", alpha: float = 0.8,
            percentile: float = 99.0, cmap: str | None = None, size: int | None = None) -> Image.Image:
    """The attribution blended on the (greyed) image; a batch gives a horizontal strip.

    >>> x = torch.rand(2, 3, 16, 16)
    >>> overlay(x, x - 0.5).size
    (32, 16)
    """
    _check(x, attribution)
    maps = reduce_channels(attribution, reduce).cpu().numpy()
    tiles = [_blend(x[i], maps[i], alpha, percentile, cmap) for i in range(x.shape[0])]
    out = Image.fromarray((np.concatenate(tiles, axis=1) * 255).round().astype(np.uint8))
    if size is not None:
        out = out.resize((size * x.shape[0], size), Image.BILINEAR)
    return out


def panel(x: torch.Tensor, attributions: Mapping[str, torch.Tensor] | Sequence[tuple[str, torch.Tensor]], *,
          reduce: str = "auto", percentile: float = 99.0, title: str = "", tile: float = 2.2,
          label: str | None = "image") -> Image.Image:
    """Several attributions side by side (one row per sample, the image first), with titles.

    >>> x = torch.rand(1, 3, 16, 16)
    >>> panel(x, {"a": x, "b": -x}).size[0] > panel(x, {"a": x}).size[0]
    True
    """
    items = list(attributions.items()) if isinstance(attributions, Mapping) else list(attributions)
    if not items:
        raise ValueError("panel needs at least one (title, attribution) pair")
    for _, a in items:
        _check(x, a)
    n, cols = x.shape[0], len(items) + (1 if label else 0)
    fig, axes = plt.subplots(n, cols, figsize=(tile * cols, tile * n + (0.4 if title else 0)), squeeze=False)
    for i in range(n):
        col = 0
        if label:
            axes[i, 0].imshow(_image_np(x[i]))
            axes[i, 0].set_title(label if i == 0 else "", fontsize=9)
            col = 1
        for j, (name, a) in enumerate(items):
            m = reduce_channels(a[i:i + 1], reduce)[0].cpu().numpy()
            axes[i, col + j].imshow(_blend(x[i], m, 0.85, percentile, None))
            axes[i, col + j].set_title(name if i == 0 else "", fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return figure_to_image(fig, dpi=80)
