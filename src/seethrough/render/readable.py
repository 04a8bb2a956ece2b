"""What makes a picture readable on its own: a title, a stated colour scale, a diverging colour map
for signed values, dead units named, and wide strips wrapped into grids (issue 19, item 8).

The helpers here are shared by the CLI's pictures, the report and the explorer, so that the same
map is drawn the same way everywhere:

* :func:`for_display` — RISE's map is an expected class probability, positive everywhere; its
  per-image mean carries no spatial information and, left in, makes the map a flat wash. The
  report and the CLI both subtract it here (one helper, not two copies).
* :func:`is_signed` / :func:`robust_scale` — a map with any negative value is signed and drawn with
  a diverging map symmetric around 0 (``vmin = -vmax``), clipped at the 99th percentile of ``|a|``
  so a few extreme pixels do not turn the rest into faint specks.
* :func:`grid_shape` — ``n`` items as ≤ 6 columns, near-square beyond 6.
* :func:`constant_units` — units whose values are all equal (all zero: dead).
"""
from __future__ import annotations

import math
import textwrap
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
from matplotlib.cm import ScalarMappable  # noqa: E402
from PIL import Image  # noqa: E402
from PIL.PngImagePlugin import PngInfo  # noqa: E402

from .optimize import figure_to_image  # noqa: E402

__all__ = ["save_picture", "for_display", "is_signed", "robust_scale", "grid_shape", "constant_units", "labelled_grid",
           "SIGNED_CMAP", "UNSIGNED_CMAP", "CENTRED_METHODS"]

SIGNED_CMAP = "RdBu_r"  # red positive, blue negative, white 0
UNSIGNED_CMAP = "inferno"
# Methods whose map is a score averaged over random masks: its mean is the average score, not evidence.
CENTRED_METHODS = ("rise",)


def for_display(method: str, attribution: torch.Tensor) -> torch.Tensor:
    """The map as it should be shown: for RISE each sample minus its own mean (the average masked
    probability), every other method unchanged. Per sample, so a batch shows what N calls show.

    >>> a = torch.tensor([[[[0.5, 0.75]]], [[[0.25, 0.25]]]])
    >>> for_display("rise", a).flatten().tolist()
    [-0.125, 0.125, 0.0, 0.0]
    >>> for_display("saliency", a) is a
    True
    """
    if method not in CENTRED_METHODS:
        return attribution
    dims = tuple(range(1, attribution.dim()))
    return attribution - attribution.mean(dim=dims, keepdim=True)


def is_signed(m: np.ndarray | torch.Tensor) -> bool:
    """Whether a map has any negative value (then it is drawn with a diverging colour map).

    >>> is_signed(np.array([0.0, 2.0])), is_signed(np.array([-1e-9, 2.0]))
    (False, True)
    """
    return bool((m < 0).any())


def robust_scale(m: np.ndarray, percentile: float = 99.0) -> float:
    """The colour scale's end: the ``percentile`` of ``|m|`` (its maximum if that is 0; 1 for an all-zero map).

    >>> robust_scale(np.arange(101.0)), robust_scale(np.r_[np.zeros(200), 3.0]), robust_scale(np.zeros(3))
    (99.0, 3.0, 1.0)
    """
    a = np.abs(np.asarray(m, dtype=np.float64))
    return float(np.percentile(a, percentile)) or float(a.max()) or 1.0


def grid_shape(n: int, max_cols: int = 6) -> tuple[int, int]:
    """(rows, columns) for ``n`` items: one row up to ``max_cols``, else near-square with ≤ ``max_cols`` columns.

    >>> grid_shape(4), grid_shape(21), grid_shape(100)
    ((1, 4), (5, 5), (17, 6))
    """
    if n < 1:
        raise ValueError(f"grid_shape needs at least one item, got {n}")
    cols = n if n <= max_cols else min(max_cols, math.ceil(math.sqrt(n)))
    return math.ceil(n / cols), cols


def constant_units(values: torch.Tensor) -> torch.Tensor:
    """``values (U, ...)`` → a bool ``(U,)``: the units whose values are all equal (all zero: dead).

    >>> constant_units(torch.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, 3.0]])).tolist()
    [True, False, True]
    """
    v = values.detach().reshape(values.shape[0], -1)
    return (v == v[:, :1]).all(1)


def unit_label(name: str, values: torch.Tensor) -> str:
    """``name``, with ``" · dead"`` if its values are all zero or ``" · constant"`` if all one non-zero value.

    >>> unit_label("ch 3", torch.zeros(2, 2)), unit_label("f4", torch.ones(2)), unit_label("ch 5", torch.arange(3.0))
    ('ch 3 · dead', 'f4 · constant', 'ch 5')
    """
    v = values.detach().flatten()
    if bool((v == 0).all()):
        return f"{name} · dead"
    if bool((v == v[0]).all()):
        return f"{name} · constant"
    return name


def wrap(title: str, width_in: float, fontsize: float = 9) -> str:
    """``title`` broken at spaces to fit a figure ``width_in`` inches wide (≈ 0.6 em a character).

    >>> wrap("a b c d e f g h i j k", 1.0).splitlines()
    ['a b c d e f g', 'h i j k']
    """
    return "\n".join(textwrap.wrap(title, max(8, int(width_in * 72 / (0.6 * fontsize))))) if title else title


def labelled_grid(cells: np.ndarray, labels: Sequence[str], *, title: str = "", ncol: int | None = None,
                  cmap: str = "gray", vmin: float | None = None, vmax: float | None = None,
                  cbar_label: str | None = None, cell: float = 1.15, max_cols: int = 16,
                  note: str = "") -> Image.Image:
    """``cells (N, h, w)`` (one colour scale, with a colour bar) or ``(N, h, w, 3)`` in [0, 1], each
    under its label; labels containing ``"dead"`` or ``"constant"`` are written in red.

    >>> img = labelled_grid(np.random.rand(5, 4, 4), [f"ch {i}" for i in range(5)], title="t", cbar_label="v")
    >>> img.info["texts"][:2], img.size[0] <= 2500
    (['t', 'ch 0'], True)
    """
    n = len(cells)
    if len(labels) != n:
        raise ValueError(f"got {len(labels)} labels for {n} cells")
    ncol = ncol or (n if n <= max_cols else min(max_cols, math.ceil(math.sqrt(n * 1.6))))
    nrow = math.ceil(n / ncol)
    rgb = cells.ndim == 4
    extra = 0.0 if rgb or cbar_label is None else 0.9
    fig, axes = plt.subplots(nrow, ncol, figsize=(cell * ncol + extra, (cell + 0.25) * nrow + 0.7 + (0.25 if note else 0)),
                             squeeze=False)
    lo = float(np.min(cells)) if vmin is None else vmin
    hi = float(np.max(cells)) if vmax is None else vmax
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= n:
            ax.axis("off")
            continue
        if rgb:
            ax.imshow(np.clip(cells[i], 0, 1), interpolation="nearest")
        else:
            ax.imshow(cells[i], cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        flagged = "dead" in labels[i] or "constant" in labels[i]
        ax.set_title(labels[i], fontsize=7, color="crimson" if flagged else "black", pad=2)
        if flagged:
            for s in ax.spines.values():
                s.set_edgecolor("crimson")
                s.set_linewidth(1.5)
    texts = ([title] if title else []) + list(labels) + ([note] if note else []) + ([cbar_label] if extra else [])
    if title:
        fig.suptitle(wrap(title, fig.get_figwidth()), fontsize=9)
    if note:
        fig.text(0.5, 0.01, note, ha="center", va="bottom", fontsize=7, color="0.25")
    fig.tight_layout(rect=(0, 0.04 if note else 0, 1 if not extra else 1 - extra / fig.get_figwidth(), 1))
    if extra:
        cax = fig.add_axes((1 - 0.75 * extra / fig.get_figwidth(), 0.15, 0.18 / fig.get_figwidth(), 0.7))
        fig.colorbar(ScalarMappable(Normalize(lo, hi), cmap), cax=cax).set_label(cbar_label, fontsize=7)
        cax.tick_params(labelsize=6)
    img = figure_to_image(fig)
    img.info["texts"] = texts
    return img


def save_picture(img: Image.Image, path) -> None:
    """Save a picture; a PNG keeps what it says (``info["texts"]``, ``info["caption"]``) in its text
    chunks (``Title``, ``Description``), so a reader of the file, or a test, finds the same words.

    >>> import os, tempfile
    >>> img = Image.new("RGB", (4, 4)); img.info["texts"] = ["conv1", "ch 0 · dead"]
    >>> p = os.path.join(tempfile.mkdtemp(), "a.png"); save_picture(img, p)
    >>> Image.open(p).text["Description"].splitlines()
    ['conv1', 'ch 0 · dead']
    """
    texts = list(img.info.get("texts", [])) + str(img.info.get("caption", "")).splitlines()
    if not str(path).lower().endswith(".png") or not texts:
        img.save(path)
        return
    meta = PngInfo()
    meta.add_itxt("Title", texts[0])
    meta.add_itxt("Description", "\n".join(texts))
    img.save(path, pnginfo=meta)
