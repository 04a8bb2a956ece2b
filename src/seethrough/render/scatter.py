"""2-D scatter plots of embeddings: points coloured by class, or thumbnails as markers."""
from __future__ import annotations

import math
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.offsetbox import AnnotationBbox, OffsetImage  # noqa: E402


def _colors(n_classes: int):
    cmap = plt.get_cmap("tab10" if n_classes <= 10 else "tab20" if n_classes <= 20 else "turbo")
    return [cmap(i if n_classes <= 20 else i / max(n_classes - 1, 1)) for i in range(n_classes)]


def _xy(coords) -> np.ndarray:
    a = coords.detach().cpu().double().numpy() if isinstance(coords, torch.Tensor) else np.asarray(coords, dtype=float)
    if a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(f"coords must have shape (N, 2), got {tuple(a.shape)}")
    return a


def scatter(
    coords,
    labels=None,
    *,
    classes: Sequence[str] | None = None,
    thumbnails: torch.Tensor | None = None,
    ax=None,
    title: str = "",
    size: float = 6.0,
    zoom: float = 1.0,
    legend: bool = True,
) -> "Figure":
    """Draw ``(N, 2)`` coordinates coloured by ``labels``; with ``thumbnails`` ``(N, C, h, w)``
    in [0, 1] each point is drawn as its picture, framed in its class colour. Returns the
    matplotlib figure (``ax``'s when given).

    >>> fig = scatter(torch.randn(30, 2), torch.arange(30) % 3, classes=["a", "b", "c"])
    >>> [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    ['a', 'b', 'c']
    """
    xy = _xy(coords)
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 5))
    y = None if labels is None else np.asarray(labels.tolist() if isinstance(labels, torch.Tensor) else labels, dtype=int)
    if y is not None and len(y) != len(xy):
        raise ValueError(f"labels has {len(y)} entries for {len(xy)} points")
    n_classes = 0 if y is None else int(y.max()) + 1
    colors = _colors(max(n_classes, 1))
    if thumbnails is not None:
        _thumbnails(ax, xy, thumbnails, y, colors, zoom)
        if legend and y is not None and classes is not None:
            from matplotlib.patches import Patch

            ax.legend(handles=[Patch(edgecolor=colors[c], facecolor="none", linewidth=2, label=str(classes[c]))
                               for c in range(min(n_classes, len(classes)))], fontsize=7, loc="center left",
                      bbox_to_anchor=(1.0, 0.5), frameon=False)
    elif y is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=size, c="#444", linewidths=0)
    else:
        for c in range(n_classes):
            pts = xy[y == c]
            if len(pts):
                name = classes[c] if classes is not None and c < len(classes) else str(c)
                ax.scatter(pts[:, 0], pts[:, 1], s=size, color=colors[c], linewidths=0, label=name)
        if legend and n_classes <= 20:
            ax.legend(markerscale=max(1.0, 20 / size) ** 0.5, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5),
                      frameon=False, handletextpad=0.1)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax.figure


def _thumbnails(ax, xy: np.ndarray, thumbs: torch.Tensor, y, colors, zoom: float) -> None:
    if not isinstance(thumbs, torch.Tensor) or thumbs.dim() != 4 or len(thumbs) != len(xy):
        raise ValueError(f"thumbnails must be an (N, C, h, w) tensor with N = {len(xy)}, one per point")
    imgs = thumbs.detach().cpu().float().clamp(0, 1).permute(0, 2, 3, 1).numpy()
    for i, (pt, img) in enumerate(zip(xy, imgs)):
        img = img[..., 0] if img.shape[-1] == 1 else img
        box = AnnotationBbox(OffsetImage(img, zoom=zoom, cmap="gray"), tuple(pt), frameon=True, pad=0.1,
                             bboxprops={"edgecolor": colors[y[i]] if y is not None else "#444", "linewidth": 1.5})
        ax.add_artist(box)
    pad = 0.08 * (np.ptp(xy, axis=0) + 1e-9)
    ax.set_xlim(xy[:, 0].min() - pad[0], xy[:, 0].max() + pad[0])
    ax.set_ylim(xy[:, 1].min() - pad[1], xy[:, 1].max() + pad[1])


def scatter_grid(panels: Sequence[tuple[str, object]], labels=None, *, classes=None, ncols: int | None = None,
                 size: float = 3.0, point: float = 4.0, suptitle: str = "") -> "Figure":
    """Several ``(title, coords)`` panels side by side, sharing one colouring and one legend.

    >>> fig = scatter_grid([("a", torch.randn(9, 2)), ("b", torch.randn(9, 2))], torch.arange(9) % 2)
    >>> [ax.get_title() for ax in fig.axes]
    ['a', 'b']
    """
    if not panels:
        raise ValueError("scatter_grid needs at least one (title, coords) panel")
    ncols = ncols or min(len(panels), 6)
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.4 if suptitle else 0)), squeeze=False)
    for i, (ax, (title, coords)) in enumerate(zip(axes.flat, panels)):
        scatter(coords, labels, classes=classes, ax=ax, title=title, size=point, legend=i == len(panels) - 1)
    for ax in axes.flat[len(panels):]:
        fig.delaxes(ax)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def embedding(result, layers: Sequence[str] | None = None, *, ncols: int | None = None, size: float = 3.0, point: float = 4.0) -> "Figure":
    """The course's figure from a :class:`seethrough.embed.Embedding`: one panel per layer,
    titled with the layer's width and its k-NN class-separation scores.

    >>> import seethrough as see
    >>> x = torch.randn(12, 3, generator=torch.Generator().manual_seed(0))
    >>> e = see.embed(torch.nn.Linear(3, 2), (x, torch.arange(12) % 2), ["input"], "pca", progress=False)
    >>> embedding(e).axes[0].get_title().splitlines()[0]
    'input · 3 dims'
    """
    layers = list(layers) if layers is not None else result.layers
    panels = []
    for name in layers:
        title = f"{name} · {result.dims[name]:,} dims"
        sep = result.separation.get(name)
        if sep is not None:
            o = result.options
            title += (f"\n{o.get('k', 5)}-NN acc. {sep.knn:.1%} → {sep.knn_2d:.1%} in 2-D"
                      f"\n{o.get('purity_k', 30)}-NN purity {sep.purity:.1%} → {sep.purity_2d:.1%}")
        panels.append((title, result[name]))
    return scatter_grid(panels, result.labels, classes=result.classes, ncols=ncols, size=size, point=point)
