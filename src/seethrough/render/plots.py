"""Plots of inspection results: activation histograms, sparsity over training, weight health,
linear-model feature importance. Each returns a matplotlib figure."""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def histogram_plot(stats: Mapping[str, object], *, title: str = "") -> "Figure":
    """Activation histograms of :func:`seethrough.layer_stats` results, one panel per layer,
    with dead-unit fraction and sparsity in each panel's title (symmetric-log value axis).

    >>> from seethrough.inspect.stats import batch_stats
    >>> len(histogram_plot({"a": batch_stats(torch.randn(8, 3))}).axes)
    1
    """
    names = list(stats)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 2.8), squeeze=False)
    for ax, name in zip(axes[0], names):
        s = stats[name]
        edges, hist = s.edges.numpy(), s.hist.double().numpy()
        keep = np.nonzero(hist)[0]
        lo, hi = (keep.min(), keep.max() + 1) if len(keep) else (0, len(hist))
        ax.stairs(hist[lo:hi] / hist.sum(), edges[lo:hi + 1], fill=True, color="#4c72b0")
        ax.set_xscale("symlog", linthresh=1e-2)
        ax.set_title(f"{name}\ndead {s.dead_fraction:.0%} · sparsity {s.sparsity:.0%}", fontsize=9)
        ax.set_xlabel("activation")
    axes[0][0].set_ylabel("fraction of values")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def sparsity_plot(curves: Mapping[str, torch.Tensor], *, title: str = "Sparsity during training") -> "Figure":
    """Sparsity per layer (fraction of zero activations) against the epoch; epoch 0 is the initialisation.

    >>> sparsity_plot({"relu1": torch.tensor([0.5, 0.6])}).axes[0].get_xlabel()
    'epoch'
    """
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, c in curves.items():
        c = torch.as_tensor(c).double().numpy()
        ax.plot(np.arange(len(c)), c, marker="o", ms=3, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("sparsity (fraction ≤ 0)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def weight_health_plot(health: Sequence[object], *, title: str = "") -> "Figure":
    """Per layer: RMS weight and the high-frequency energy of its conv filters (≈0.8 is white noise).

    >>> from seethrough.inspect.weights import weight_health
    >>> len(weight_health_plot(weight_health(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3)))).axes)
    2
    """
    names = [h.name for h in health]
    y = np.arange(len(names))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 0.25 * len(names) + 1.4), sharey=True)
    a1.barh(y, [h.rms for h in health], color="#4c72b0")
    a1.set_yticks(y, names, fontsize=7)
    a1.invert_yaxis()
    a1.set_xlabel("RMS weight")
    hf = [np.nan if h.high_freq is None else h.high_freq for h in health]
    a2.barh(y, hf, color="#dd8452")
    a2.axvline(0.8, color="k", ls=":", lw=1)
    a2.set_xlim(0, 1)
    a2.set_xlabel("high-frequency energy (conv k≥2)")
    for i, h in enumerate(health):
        flags = [f for f, v in (("zero", h.zero_filters), ("dup", h.duplicate_pairs)) if v]
        if flags:
            a2.text(0.98, i, " ".join(f"{f}:{getattr(h, 'zero_filters' if f == 'zero' else 'duplicate_pairs')}" for f in flags),
                    ha="right", va="center", fontsize=6, color="crimson", transform=a2.get_yaxis_transform())
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def importance_plot(result, *, top: int | None = None, title: str = "Feature importance |w|") -> "Figure":
    """A sorted bar chart of a :func:`seethrough.inspect.linear.linear_importance` result,
    coloured by the weight's sign.

    >>> from seethrough.inspect.linear import linear_importance
    >>> importance_plot(linear_importance(torch.tensor([1.0, -2.0]))).axes[0].get_xlabel()
    '|w| (standardised features)'
    """
    n = len(result.names) if top is None else min(top, len(result.names))
    w = result.weights[:n].double().numpy()
    fig, ax = plt.subplots(figsize=(6, 0.22 * n + 1.2))
    ax.barh(np.arange(n), np.abs(w), color=np.where(w >= 0, "#4c72b0", "#c44e52"))
    ax.set_yticks(np.arange(n), result.names[:n], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("|w| (standardised features)")
    ax.set_title(title + " · blue: w>0, red: w<0", fontsize=9)
    fig.tight_layout()
    return fig
