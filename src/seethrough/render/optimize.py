"""Pictures of optimised inputs: labelled galleries and objective traces."""
from __future__ import annotations

import io
import math
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402


def _array(x: torch.Tensor) -> np.ndarray:
    a = x.detach().cpu().float().clamp(0, 1).numpy()
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def gallery(x: torch.Tensor, titles: Sequence[str] | None = None, *, ncol: int | None = None,
            cell: float = 1.6, title: str = "") -> Image.Image:
    """A grid of a batch ``(N, C, H, W)`` in [0, 1] with a caption under each image, as a PIL image.

    >>> import torch
    >>> gallery(torch.rand(3, 3, 8, 8), ["a", "b", "c"]).mode
    'RGB'
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"gallery expects images (N, 1|3, H, W), got {getattr(x, 'shape', type(x).__name__)}")
    n = x.shape[0]
    if titles is not None and len(titles) != n:
        raise ValueError(f"got {len(titles)} titles for {n} images")
    ncol = ncol or min(n, 8)
    nrow = math.ceil(n / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(cell * ncol, (cell + 0.35) * nrow + (0.4 if title else 0)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(_array(x[i]), cmap="gray" if x.shape[1] == 1 else None, vmin=0, vmax=1, interpolation="nearest" if x.shape[-1] < 64 else "antialiased")
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return figure_to_image(fig)


def figure_to_image(fig, dpi: int = 100) -> Image.Image:
    """Render a matplotlib figure to an RGB PIL image and close it.

    >>> fig = plt.figure(figsize=(2, 1))
    >>> figure_to_image(fig, dpi=50).size
    (100, 50)
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def trace_plot(trace: torch.Tensor, labels: Sequence[str] | None = None, *, ylabel: str = "objective",
               title: str = "") -> "Figure":
    """Objective per step (one line per image of ``trace`` ``(N, steps)``) as a matplotlib figure.

    >>> import torch
    >>> trace_plot(torch.rand(2, 5), ["a", "b"]).axes[0].get_ylabel()
    'objective'
    """
    t = trace.detach().cpu().float().numpy()
    fig, ax = plt.subplots(figsize=(5, 3))
    for i, row in enumerate(t):
        ax.plot(row, label=None if labels is None else labels[i], lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    if labels is not None and len(labels) <= 10:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
