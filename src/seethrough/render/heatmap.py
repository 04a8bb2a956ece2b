"""Attribution heatmaps: one overlay, or several methods side by side.

Channel reduction lives here, not in the methods: ``reduce="auto"`` sums signed maps over the
channels and takes the per-pixel maximum of non-negative ones (Simonyan et al.'s choice for
saliency). Signed maps get a diverging colormap centred on zero, non-negative ones a sequential
one; both are clipped at a percentile of |attribution| so that a few extreme pixels do not wash
out the rest.
"""
from __future__ import annotations

import textwrap
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from .optimize import figure_to_image  # noqa: E402
from .readable import SIGNED_CMAP, UNSIGNED_CMAP, grid_shape, is_signed, robust_scale  # noqa: E402

__all__ = ["overlay", "panel", "reduce_channels", "heat_rgb", "map_rgb", "attribution_figure"]

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


def map_rgb(x: torch.Tensor, a2d: np.ndarray, percentile: float = 99.0) -> tuple[np.ndarray, bool, float]:
    """One image ``(C, H, W)`` and its 2-D map → ``(H, W, 3)`` RGB, whether the map is signed, and its scale.

    A signed map (any negative value) is drawn opaque with a diverging colour map, ``vmin = -vmax =
    -scale`` (the ``percentile`` of |a|), shaded by the image's brightness so the object stays
    recognisable: red where positive, blue where negative, light grey at 0. A non-negative map is
    blended over the greyed image (:func:`overlay`'s look), 0 → ``scale``.

    >>> rgb, signed, scale = map_rgb(torch.ones(1, 2, 2), np.array([[-1.0, 0.0], [0.0, 1.0]]))
    >>> signed, scale, bool(rgb[1, 1, 0] > rgb[1, 1, 2]), bool(rgb[0, 0, 2] > rgb[0, 0, 0])
    (True, 1.0, True, True)
    """
    base = _image_np(x)
    if a2d.shape != base.shape[:2]:
        t = torch.from_numpy(np.ascontiguousarray(a2d, dtype=np.float64))[None, None]
        a2d = torch.nn.functional.interpolate(t, size=base.shape[:2], mode="bilinear", align_corners=False)[0, 0].numpy()
    scale = robust_scale(a2d, percentile)
    if not is_signed(a2d):
        return _blend(x, a2d, 0.85, percentile, None), False, scale
    v = np.clip(a2d / scale, -1, 1) * 0.5 + 0.5
    colors = plt.get_cmap(SIGNED_CMAP)(v)[..., :3]
    shade = 0.7 + 0.3 * base.mean(2, keepdims=True)  # the photo as light and shade; hue carries the sign
    return np.clip(colors * shade, 0, 1), True, scale


def _colorbar(fig, ax, signed: bool, scale: float, **kw):
    norm = matplotlib.colors.Normalize(-scale if signed else 0.0, scale)
    sm = matplotlib.cm.ScalarMappable(norm, SIGNED_CMAP if signed else UNSIGNED_CMAP)
    cb = fig.colorbar(sm, ax=ax, fraction=0.046, pad=0.03, **kw)
    cb.ax.tick_params(labelsize=6)
    cb.set_ticks([-scale, 0, scale] if signed else [0, scale])
    cb.ax.set_yticklabels([f"{t:+.2g}" if signed and t else f"{t:.2g}" for t in cb.get_ticks()])
    return cb


def attribution_figure(x: torch.Tensor, attribution: torch.Tensor, *, title: str = "", reduce: str = "auto",
                       percentile: float = 99.0, sample: int = 0, size: float = 3.2) -> Image.Image:
    """One sample's map with a title and a colour bar stating its scale: signed maps diverging
    around 0 (red +, blue −), clipped at ±the ``percentile`` of |a|; non-negative ones 0 → that value.
    The drawn texts are in ``info["texts"]``.

    >>> x = torch.rand(1, 1, 8, 8)
    >>> img = attribution_figure(x, x - 0.5, title="grad-x-input")
    >>> img.info["texts"][0], "diverging" in img.info["texts"][1]
    ('grad-x-input', True)
    """
    _check(x, attribution)
    m = reduce_channels(attribution[sample:sample + 1], reduce)[0].double().cpu().numpy()
    rgb, signed, scale = map_rgb(x[sample], m, percentile)
    fig, ax = plt.subplots(figsize=(size + 0.9, size + 0.6))
    ax.imshow(rgb, interpolation="nearest" if rgb.shape[0] < 64 else "antialiased")
    ax.axis("off")
    scale_text = (f"diverging: red +, blue −, clipped at ±{scale:.3g} ({percentile:g}th pct of |a|)" if signed
                  else f"0 → {scale:.3g} ({percentile:g}th pct of |a|)")
    ax.set_title("\n".join(textwrap.wrap(title, 52)), fontsize=9)
    _colorbar(fig, ax, signed, scale).set_label(scale_text, fontsize=6)
    fig.tight_layout()
    img = figure_to_image(fig, dpi=100)
    img.info["texts"] = [title, scale_text]
    return img


def panel(x: torch.Tensor, attributions: Mapping[str, torch.Tensor] | Sequence[tuple[str, torch.Tensor]], *,
          reduce: str = "auto", percentile: float = 99.0, title: str = "", tile: float = 2.2,
          label: str | None = "image", max_cols: int = 6) -> Image.Image:
    """Several attributions (the image first), each with its title and a colour bar stating its scale;
    wrapped into a grid of at most ``max_cols`` columns (near-square beyond), one block per sample.
    Signed maps are diverging around 0 (see :func:`map_rgb`). The drawn texts are in ``info["texts"]``.

    >>> x = torch.rand(1, 3, 16, 16)
    >>> panel(x, {"a": x, "b": -x}).size[0] > panel(x, {"a": x}).size[0]
    True
    >>> img = panel(x, {f"m{i}": x - 0.5 for i in range(20)})
    >>> img.size[0] <= 2500, "m19" in img.info["texts"]
    (True, True)
    """
    items = list(attributions.items()) if isinstance(attributions, Mapping) else list(attributions)
    if not items:
        raise ValueError("panel needs at least one (title, attribution) pair")
    for _, a in items:
        _check(x, a)
    n, count = x.shape[0], len(items) + (1 if label else 0)
    rows, cols = grid_shape(count, max_cols)
    fig, axes = plt.subplots(n * rows, cols, figsize=((tile + 0.45) * cols, (tile + 0.3) * n * rows + (0.4 if title else 0)),
                             squeeze=False)
    texts = [title] if title else []
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        cells = iter(axes[i * rows:(i + 1) * rows].flat)
        if label:
            ax = next(cells)
            ax.imshow(_image_np(x[i]), interpolation="nearest" if x.shape[-1] < 64 else "antialiased")
            ax.set_title(label if i == 0 else "", fontsize=9)
        for name, a in items:
            ax = next(cells)
            m = reduce_channels(a[i:i + 1], reduce)[0].double().cpu().numpy()
            rgb, signed, scale = map_rgb(x[i], m, percentile)
            ax.imshow(rgb, interpolation="nearest" if rgb.shape[0] < 64 else "antialiased")
            ax.set_title(name if i == 0 else "", fontsize=9)
            _colorbar(fig, ax, signed, scale)
            texts.append(name)
    if title:
        fig.suptitle(title, fontsize=10)
    note = f"signed maps: red +, blue −, white 0, scale ±{percentile:g}th pct of |a|; non-negative: 0 → {percentile:g}th pct"
    fig.text(0.5, 0.005, note, ha="center", va="bottom", fontsize=7, color="0.3")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    img = figure_to_image(fig, dpi=80)
    img.info["texts"] = texts + [note]
    return img
