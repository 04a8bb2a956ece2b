"""Pictures of tabular explanations: one row's waterfall or bars, global importance, rank agreement, the summary plot.

Everything here takes tensors from the computation and returns a matplotlib figure (turn it into
a PIL image with :func:`seethrough.render.figure_to_image`). Colours follow the shap package's
convention so a reader who knows it can read these at a glance: red pushes the score up, blue
pushes it down; in the summary plot a dot is red for a high feature value and blue for a low one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

_UP, _DOWN = "#ff0051", "#008bfb"


def _vector(values, name: str = "values") -> np.ndarray:
    v = values.detach().double().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values, dtype=np.float64)
    if v.ndim == 2 and v.shape[0] == 1:
        v = v[0]
    if v.ndim != 1:
        raise ValueError(f"{name} must hold one value per feature (F,) or one row (1, F), got shape {v.shape}")
    return v


def _names(names: Sequence[str] | None, f: int) -> list[str]:
    if names is None:
        return [f"x{j}" for j in range(f)]
    names = [str(n) for n in names]
    if len(names) != f:
        raise ValueError(f"got {len(names)} feature names for {f} features")
    return names


@dataclass(frozen=True)
class Step:
    """One bar of a waterfall: a feature's contribution (``feature`` its index; ``None`` for the rest together)."""

    label: str
    start: float
    end: float
    feature: int | None


def waterfall_steps(values, base: float, *, top: int | None = 10, names: Sequence[str] | None = None,
                    row=None) -> list[Step]:
    """The bars of a waterfall from ``base``: the ``top`` largest |contributions| and one bar for the rest.

    In drawing order from the base up: the rest first, then the features from the smallest
    |value| to the largest, so the last step ends at ``base + sum(values)``, the explained score.

    >>> steps = waterfall_steps(torch.tensor([0.5, -2.0, 0.25]), 1.0, top=2, names=["a", "b", "c"])
    >>> [(s.label, s.start, s.end) for s in steps]
    [('1 other feature', 1.0, 1.25), ('a', 1.25, 1.75), ('b', 1.75, -0.25)]
    """
    v = _vector(values)
    labels = _names(names, len(v))
    if row is not None:
        r = _vector(row, "row")
        labels = [f"{n} = {x:.4g}" for n, x in zip(labels, r)]
    order = np.argsort(-np.abs(v), kind="stable")
    shown = order if top is None else order[:top]
    rest = [] if top is None else order[top:]
    steps: list[Step] = []
    at = float(base)
    if len(rest):
        total = float(v[rest].sum())
        steps.append(Step(f"{len(rest)} other feature{'s' if len(rest) > 1 else ''}", at, at + total, None))
        at += total
    for j in shown[::-1]:
        steps.append(Step(labels[j], at, at + float(v[j]), int(j)))
        at += float(v[j])
    return steps


def waterfall(values, row=None, names: Sequence[str] | None = None, *, base: float, top: int | None = 10,
              title: str = "", base_label: str = "E[f(X)]", score_label: str = "f(x)") -> "Figure":
    """A shap-style waterfall of one row's contributions: from ``base`` at the bottom to ``base + sum`` at the top.

    Each bar is labelled with the feature's name and, given ``row``, its value; the dashed
    lines mark the base value and the explained score.

    >>> fig = waterfall(torch.tensor([0.5, -2.0, 0.25]), torch.tensor([1., 2., 3.]), ["a", "b", "c"], base=1.0, top=2)
    >>> [t.get_text() for t in fig.axes[0].get_yticklabels()]
    ['1 other feature', 'a = 1', 'b = 2']
    """
    steps = waterfall_steps(values, base, top=top, names=names, row=row)
    score = steps[-1].end if steps else float(base)
    fig, ax = plt.subplots(figsize=(7, 0.34 * len(steps) + 1.6))
    for i, s in enumerate(steps):
        d = s.end - s.start
        ax.barh(i, d, left=s.start, color=_UP if d >= 0 else _DOWN, height=0.7)
        ax.text(max(s.start, s.end), i, f" {d:+.3g}", va="center", ha="left", fontsize=7)
    ax.set_yticks(range(len(steps)), [s.label for s in steps], fontsize=7)
    ax.axvline(float(base), color="0.4", ls="--", lw=0.8)
    ax.axvline(score, color="0.2", ls="--", lw=0.8)
    ax.set_xlabel(f"{base_label} = {float(base):.4g}   →   {score_label} = {score:.4g}", fontsize=8)
    ax.set_ylim(-0.7, len(steps) - 0.3)
    ax.margins(x=0.15)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def feature_bars(values, row=None, names: Sequence[str] | None = None, *, top: int | None = 10, title: str = "",
                 xlabel: str = "attribution") -> "Figure":
    """One row's signed attributions as bars, the ``top`` largest |values| first.

    >>> fig = feature_bars(torch.tensor([0.5, -2.0, 0.25]), names=["a", "b", "c"], top=2)
    >>> [t.get_text() for t in fig.axes[0].get_yticklabels()]
    ['b', 'a']
    """
    v = _vector(values)
    labels = _names(names, len(v))
    if row is not None:
        labels = [f"{n} = {x:.4g}" for n, x in zip(labels, _vector(row, "row"))]
    order = np.argsort(-np.abs(v), kind="stable")[: top or len(v)]
    fig, ax = plt.subplots(figsize=(6, 0.26 * len(order) + 1.2))
    ax.barh(np.arange(len(order)), v[order], color=np.where(v[order] >= 0, _UP, _DOWN))
    ax.set_yticks(np.arange(len(order)), [labels[j] for j in order], fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0, color="0.3", lw=0.6)
    ax.set_xlabel(xlabel, fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def importance_bars(importances: Mapping[str, object], names: Sequence[str] | None = None, *, top: int | None = 15,
                    order_by: str | None = None, title: str = "") -> "Figure":
    """Global importance of several methods side by side, each scaled to its own maximum (scales differ).

    Features are ordered by ``order_by`` (default: the first method), the ``top`` first.

    >>> fig = importance_bars({"a": torch.tensor([1., 3.]), "b": torch.tensor([2., 1.])}, ["x", "y"])
    >>> [t.get_text() for t in fig.axes[0].get_yticklabels()]
    ['y', 'x']
    """
    methods = list(importances)
    if not methods:
        raise ValueError("importance_bars needs at least one method")
    vecs = {m: _vector(importances[m], m) for m in methods}
    f = len(next(iter(vecs.values())))
    labels = _names(names, f)
    key = methods[0] if order_by is None else order_by
    if key not in vecs:
        raise ValueError(f"order_by {key!r} is not one of the methods: {', '.join(methods)}")
    order = np.argsort(-vecs[key], kind="stable")[: top or f]
    height = 0.8 / len(methods)
    colours = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(7, 0.11 * len(order) * len(methods) + 1.4))
    for k, m in enumerate(methods):
        peak = np.nanmax(np.abs(vecs[m])) or 1.0
        ax.barh(np.arange(len(order)) + (k - (len(methods) - 1) / 2) * height, vecs[m][order] / peak, height=height,
                color=colours(k), label=m)
    ax.set_yticks(np.arange(len(order)), [labels[j] for j in order], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("importance / the method's largest", fontsize=8)
    ax.legend(fontsize=7, loc="lower right")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def rank_heatmap(matrix, labels: Sequence[str], *, title: str = "", value: str = "Spearman ρ") -> "Figure":
    """A method × method agreement matrix (values in [-1, 1]) with each cell's number written in it.

    >>> fig = rank_heatmap(torch.tensor([[1.0, 0.5], [0.5, 1.0]]), ["a", "b"])
    >>> sorted(t.get_text() for t in fig.axes[0].texts)
    ['0.50', '0.50', '1.00', '1.00']
    """
    m = matrix.detach().double().cpu().numpy() if isinstance(matrix, torch.Tensor) else np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] != len(labels):
        raise ValueError(f"matrix must be square with one row per label ({len(labels)}), got shape {m.shape}")
    fig, ax = plt.subplots(figsize=(0.75 * len(labels) + 2.2, 0.65 * len(labels) + 1.2))
    im = ax.imshow(m, vmin=-1, vmax=1, cmap="RdBu_r")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, "–" if np.isnan(m[i, j]) else f"{m[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if abs(np.nan_to_num(m[i, j])) > 0.6 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    fig.colorbar(im, ax=ax, shrink=0.8, label=value)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def _swarm(x: np.ndarray, bins: int = 60, width: float = 0.4) -> np.ndarray:
    """Vertical offsets that stack the points falling into the same x bin (a deterministic beeswarm)."""
    lo, hi = float(np.min(x)), float(np.max(x))
    b = np.zeros(len(x), dtype=int) if hi <= lo else np.minimum(((x - lo) / (hi - lo) * bins).astype(int), bins - 1)
    offsets = np.zeros(len(x))
    counts = np.bincount(b, minlength=bins)
    step = width / max(1, (counts.max() + 1) // 2)
    seen = np.zeros(bins, dtype=int)
    for i in np.argsort(x, kind="stable"):
        k = seen[b[i]]
        seen[b[i]] += 1
        offsets[i] = ((k + 1) // 2) * step * (1 if k % 2 else -1)
    return offsets


def summary_plot(attributions, rows, names: Sequence[str] | None = None, *, top: int | None = None, title: str = "",
                 xlabel: str = "attribution") -> "Figure":
    """A shap-style summary (beeswarm): one dot per (row, feature), x its attribution, colour the feature's value.

    Features are sorted by mean |attribution|, the ``top`` first (all by default). Colours run
    from blue (the feature's 5th percentile among ``rows``) to red (its 95th), so a reader sees
    whether high values of a feature push the score up or down.

    >>> a, x = torch.randn(7, 3), torch.rand(7, 3)
    >>> fig = summary_plot(a, x, ["p", "q", "r"])
    >>> sum(len(c.get_offsets()) for c in fig.axes[0].collections)
    21
    """
    a = attributions.detach().double().cpu().numpy() if isinstance(attributions, torch.Tensor) else np.asarray(attributions, float)
    x = rows.detach().double().cpu().numpy() if isinstance(rows, torch.Tensor) else np.asarray(rows, float)
    if a.ndim != 2 or a.shape != x.shape:
        raise ValueError(f"attributions and rows must both be (N, F) of one shape, got {a.shape} and {x.shape}")
    labels = _names(names, a.shape[1])
    order = np.argsort(-np.abs(a).mean(0), kind="stable")[: top or a.shape[1]]
    lo, hi = np.nanpercentile(x, 5, axis=0), np.nanpercentile(x, 95, axis=0)
    colour = np.clip((x - lo) / np.where(hi > lo, hi - lo, 1.0), 0, 1)
    xs, ys, cs = [], [], []
    for pos, j in enumerate(order):
        xs.append(a[:, j])
        ys.append(pos + _swarm(a[:, j]))
        cs.append(colour[:, j])
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(order) + 1.4))
    sc = ax.scatter(np.concatenate(xs), np.concatenate(ys), c=np.concatenate(cs), cmap="coolwarm", vmin=0, vmax=1,
                    s=9, linewidths=0, alpha=0.85)
    ax.set_yticks(range(len(order)), [labels[j] for j in order], fontsize=7)
    ax.set_ylim(len(order) - 0.5, -0.5)
    ax.axvline(0, color="0.5", lw=0.6)
    ax.set_xlabel(xlabel, fontsize=8)
    bar = fig.colorbar(sc, ax=ax, ticks=[0, 1], aspect=40, pad=0.02)
    bar.ax.set_yticklabels(["low", "high"], fontsize=7)
    bar.set_label("feature value", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
