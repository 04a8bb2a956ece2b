"""Pictures for TCAV, influence functions and distilled trees (matplotlib figures)."""
from __future__ import annotations

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def tcav_plot(result, *, title: str = "") -> "Figure":
    """Per layer: the concept's TCAV scores against the random CAVs' (dots), with the p-values.

    >>> import torch
    >>> from seethrough.concepts import LayerTCAV, TCAVResult
    >>> r = TCAVResult("stripes", 7, 0.05, {"l": LayerTCAV("l", .9, torch.ones(3), torch.full((3,), .5), torch.ones(3), .01, True)})
    >>> bool(tcav_plot(r).axes[0].get_ylim()[1] >= 1)
    True
    """
    plt = _plt()
    layers = list(result.layers.values())
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(layers), 3.2))
    for i, r in enumerate(layers):
        for j, (scores, colour) in enumerate(((r.concept_scores, "tab:orange"), (r.random_scores, "tab:gray"))):
            xs = i + (j - 0.5) * 0.35 + np.linspace(-0.06, 0.06, len(scores))
            ax.bar(i + (j - 0.5) * 0.35, float(scores.mean()), width=0.3, color=colour, alpha=0.35)
            ax.scatter(xs, scores.numpy(), s=10, color=colour, zorder=3)
        ax.text(i, 1.04, f"p={r.pvalue:.2g}" + (" *" if r.significant else ""), ha="center", fontsize=8)
    ax.set_xticks(range(len(layers)), [r.layer for r in layers])
    ax.set_ylim(0, 1.12)
    ax.axhline(0.5, color="k", lw=0.5, ls=":")
    ax.set_ylabel("TCAV score")
    ax.set_title(title or f"'{result.concept}' for class {result.target} (orange) vs random CAVs (grey)", fontsize=9)
    fig.tight_layout()
    return fig


def influence_gallery(result, test: int = 0, k: int = 6, *, labels=None) -> "Figure":
    """The test input, then its ``k`` most helpful and ``k`` most harmful training inputs with scores.

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("logreg-digits")
    >>> (x, y), (xt, yt) = see.zoo.digits("train"), see.zoo.digits("test")
    >>> inf = see.influence(model, (x[:40], y[:40]), (xt[:1], yt[:1]), damping=see.zoo.LOGREG_L2, progress=False)
    >>> influence_gallery(inf, k=3).axes[0].get_title() == f"test: {int(yt[0])}"
    True
    """
    plt = _plt()
    x_test, y_test = result.test
    x_train, y_train = result.train
    rows = [("helpful", *result.top(k, "helpful", test)), ("harmful", *result.top(k, "harmful", test))]
    fig, axes = plt.subplots(2, k + 1, figsize=(1.25 * (k + 1), 3.0))
    name = (lambda c: labels[int(c)]) if labels else (lambda c: str(int(c)))

    def show(ax, img, title):
        img = img.detach().float()
        ax.imshow(img[0].numpy() if img.shape[0] == 1 else img.permute(1, 2, 0).clamp(0, 1).numpy(),
                  cmap="gray_r" if img.shape[0] == 1 else None)
        ax.set_title(title, fontsize=7)
        ax.set_xticks([]), ax.set_yticks([])

    for r, (kind, idx, vals) in enumerate(rows):
        show(axes[r, 0], x_test[test], f"test: {name(y_test[test])}" if r == 0 else "")
        axes[r, 0].set_ylabel(kind, fontsize=8)
        for c, (i, v) in enumerate(zip(idx.tolist(), vals.tolist())):
            show(axes[r, c + 1], x_train[i], f"#{i} '{name(y_train[i])}'\n{v:+.2g}")
    if len(rows[0][1]) < k:
        for ax in axes[:, len(rows[0][1]) + 1:].flat:
            ax.axis("off")
    fig.tight_layout()
    return fig


def loo_scatter(validation, *, title: str = "") -> "Figure":
    """Predicted vs actual change of the test loss after removing each point, with Pearson/Spearman.

    ``validation`` is what :meth:`seethrough.influence.Influence.validate` returns.

    >>> import torch, types
    >>> v = types.SimpleNamespace(predicted=torch.tensor([0.1, 0.2, 0.4]), actual=torch.tensor([0.1, 0.25, 0.38]),
    ...                           pearson=0.99, spearman=1.0)
    >>> loo_scatter(v).axes[0].get_xlabel()
    'predicted Δ test loss'
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(3.4, 3.2))
    p, a = validation.predicted.numpy(), validation.actual.numpy()
    lo, hi = float(min(p.min(), a.min())), float(max(p.max(), a.max()))
    ax.plot([lo, hi], [lo, hi], color="k", lw=0.6, ls=":")
    ax.scatter(p, a, s=14)
    ax.set_xlabel("predicted Δ test loss")
    ax.set_ylabel("actual Δ test loss (retrained)")
    ax.set_title(title or f"leave-one-out: Pearson {validation.pearson:.3f}, Spearman {validation.spearman:.3f}", fontsize=8)
    fig.tight_layout()
    return fig


def tree_plot(surrogate, *, class_names=None, feature_names=None) -> "Figure":
    """A scikit-learn tree as boxes, or a soft tree's inner-node filters drawn as images (for image inputs).

    >>> import torch, seethrough as see
    >>> s = see.distill(torch.nn.Linear(2, 2), torch.rand(200, 2), depth=2)
    >>> len(tree_plot(s).axes)
    1
    """
    plt = _plt()
    if surrogate.kind == "tree":
        from sklearn.tree import plot_tree

        d = surrogate.estimator.get_depth()
        fig, ax = plt.subplots(figsize=(min(2 + 2.2 * 2 ** min(d, 4), 20), 1.2 + 1.1 * d))
        plot_tree(surrogate.estimator, ax=ax, filled=True, impurity=False, fontsize=6, max_depth=4,
                  class_names=class_names, feature_names=feature_names, label="none", proportion=True)
        return fig
    tree = surrogate.estimator
    depth = tree.depth
    w = tree.inner.weight.detach()
    leaves = tree.leaves.detach().softmax(1)
    shape = surrogate.input_shape
    image_like = len(shape) == 3
    fig, axes = plt.subplots(depth + 1, 2 ** depth, figsize=(0.9 * 2 ** depth, 1.0 * (depth + 1)))
    axes = np.asarray(axes).reshape(depth + 1, 2 ** depth)
    for ax in axes.flat:
        ax.axis("off")
    for d in range(depth):
        span = 2 ** depth // 2 ** d
        for i in range(2 ** d):
            ax = axes[d, i * span + span // 2 - (1 if span > 1 else 0)]
            f = w[2 ** d - 1 + i]
            if image_like:
                img = f.reshape(shape)[0] if shape[0] == 1 else f.reshape(shape).mean(0)
                m = float(img.abs().max()) or 1.0
                ax.imshow(img.numpy(), cmap="RdBu_r", vmin=-m, vmax=m)
            else:
                ax.bar(range(len(f)), f.numpy())
            ax.set_title(f"node {2 ** d - 1 + i}", fontsize=6)
    for j in range(2 ** depth):
        ax = axes[depth, j]
        ax.bar(range(leaves.shape[1]), leaves[j].numpy(), color="tab:orange")
        ax.set_title(f"leaf → {int(leaves[j].argmax())}", fontsize=6)
        ax.axis("on"), ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    return fig


def fidelity_plot(depths, fidelities, *, accuracies=None, title: str = "") -> "Figure":
    """Fidelity (and accuracy) of the surrogate against its depth.

    >>> fidelity_plot([1, 2, 4], [0.7, 0.85, 0.95], accuracies=[0.6, 0.8, 0.9]).axes[0].get_xlabel()
    'depth'
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(3.6, 3.0))
    ax.plot(depths, fidelities, "o-", label="fidelity (agrees with model)")
    if accuracies is not None:
        ax.plot(depths, accuracies, "s--", label="accuracy (true labels)")
    ax.set_xlabel("depth")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7)
    ax.set_title(title or "distilled tree: fidelity against depth", fontsize=8)
    fig.tight_layout()
    return fig


