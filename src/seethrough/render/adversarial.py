"""Pictures of adversarial examples: original / adversarial / magnified difference,
the per-iteration history, the patch, and robustness curves."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from ..zoo import to_image  # noqa: E402


def _name(labels: Sequence[str] | None, c: int) -> str:
    return labels[c] if labels is not None and c < len(labels) else str(c)


def save_png(x: torch.Tensor, path: str | Path) -> Path:
    """Save one image ``(1, C, H, W)`` or ``(C, H, W)`` in [0, 1] as an 8-bit PNG
    (the rounding :func:`seethrough.adversarial.quantize` models).

    >>> import tempfile, os
    >>> p = save_png(torch.rand(1, 3, 4, 4), os.path.join(tempfile.mkdtemp(), "a.png"))
    >>> p.suffix
    '.png'
    """
    path = Path(path)
    to_image(x).save(path, format="PNG")
    return path


def difference(x: torch.Tensor, x_adv: torch.Tensor, magnify: float | None = None) -> Image.Image:
    """The perturbation as a picture: grey is 0, ``magnify`` (default: the largest change
    maps to full range) makes it visible.

    >>> difference(torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 0.01)).getpixel((0, 0))
    255
    """
    d = (x_adv - x).detach().float()
    if magnify is None:
        top = d.abs().max().item()
        magnify = 0.5 / top if top > 0 else 1.0
    return to_image((0.5 + magnify * d).clamp(0, 1))


def attack_figure(result, index: int = 0, labels: Sequence[str] | None = None, title: str = "") -> "Figure":
    """Original, adversarial, magnified difference and the per-iteration history of one
    sample of an :class:`~seethrough.adversarial.AttackResult` (under ``title`` if given); a matplotlib figure.

    >>> import seethrough as see
    >>> lenet, _ = see.zoo.load("lenet-digits")
    >>> r = see.attack(lenet, see.zoo.digits("test")[0][:1], "bim", eps=32, steps=3, progress=False)
    >>> len(attack_figure(r, 0, see.zoo.labels("lenet-digits")).axes)
    4
    """
    r, i = result, index
    x, xa = r.x[i:i + 1], r.x_adv[i:i + 1]
    gray = x.shape[1] == 1
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.6), gridspec_kw={"width_ratios": [1, 1, 1, 1.6]})
    c0, c1 = int(r.clean_class[i]), int(r.pred[i])
    panels = [
        (to_image(x), f"original: {_name(labels, c0)}\n({r.history_prob[i, 0]:.1%})"),
        (to_image(xa), f"adversarial: {_name(labels, c1)}\n({r.prob[i]:.1%})"),
        (difference(x, xa), f"difference ×{0.5 / max(r.linf[i].item() / 255, 1e-12):.0f}\n"
                            f"L∞ = {r.linf[i]:.1f}/255, ‖δ‖/‖x‖ = {r.relative[i]:.4f}"),
    ]
    for ax, (img, caption) in zip(axes, panels):
        ax.imshow(np.asarray(img), cmap="gray" if gray else None, vmin=0, vmax=255)
        ax.set_title(caption, fontsize=9)
        ax.axis("off")
    ax = axes[3]
    steps = np.arange(r.history_class.shape[1])
    goal = "target " + _name(labels, int(r.target[i])) if r.targeted else "true class " + _name(labels, int(r.label[i]))
    ax.plot(steps, r.history_goal_prob[i].numpy(), "o-", label=f"p({goal})")
    ax.plot(steps, r.history_prob[i].numpy(), "s--", label="p(predicted)")
    changes = [k for k in steps if k == 0 or r.history_class[i, k] != r.history_class[i, k - 1]]
    for k in changes:
        ax.annotate(_name(labels, int(r.history_class[i, k]))[:18], (k, float(r.history_prob[i, k])), fontsize=7,
                    rotation=20, xytext=(2, 4), textcoords="offset points")
    ax.set_xlabel("iteration")
    ax.set_ylim(0, 1.08)
    ax.set_title(f"{r.method}: success={bool(r.success[i])}, after 8-bit rounding={bool(r.success_8bit[i])}", fontsize=9)
    ax.legend(fontsize=8, loc="center right")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def patch_figure(result, x: torch.Tensor, labels: Sequence[str] | None = None, show: int = 6) -> "Figure":
    """The patch, then ``show`` held-out placements with the model's prediction.

    >>> import seethrough as see
    >>> lenet, _ = see.zoo.load("lenet-digits")
    >>> x = see.zoo.digits("test")[0][:8]
    >>> p = see.train_patch(lenet, x, target=8, steps=2, n_samples=4, eval_placements=4)
    >>> len(patch_figure(p, x, show=3).axes)
    4
    """
    from ..adversarial.patch import apply_patch

    where = result.eval_placements[:show]
    pasted = apply_patch(x, result.patch, where)
    fig, axes = plt.subplots(1, show + 1, figsize=(2.1 * (show + 1), 2.6))
    gray = x.shape[1] == 1
    axes[0].imshow(np.asarray(to_image(result.patch)), cmap="gray" if gray else None, vmin=0, vmax=255)
    axes[0].set_title(f"patch → {_name(labels, result.target)}", fontsize=9)
    for ax, img, p in zip(axes[1:], pasted, result.eval_pred[:show]):
        ax.imshow(np.asarray(to_image(img)), cmap="gray" if gray else None, vmin=0, vmax=255)
        ax.set_title(_name(labels, int(p))[:16], fontsize=9, color="crimson" if int(p) == result.target else "black")
    for ax in axes:
        ax.axis("off")
    fig.suptitle(f"held-out placements: {result.success:.0%} predicted as the target "
                 f"(a random-noise patch: {result.random_success:.0%})", fontsize=10)
    fig.tight_layout()
    return fig


def robustness_plot(eps: Sequence[float], curves: dict[str, Sequence[float]], *, title: str = "") -> "Figure":
    """Accuracy against ε (pixel units) for several models; a matplotlib figure.

    >>> fig = robustness_plot([0, 8, 16], {"plain": [0.98, 0.4, 0.05], "robust": [0.96, 0.8, 0.5]})
    >>> [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    ['plain', 'robust']
    """
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for name, acc in curves.items():
        ax.plot(list(eps), [float(a) for a in acc], "o-", label=name)
    ax.set_xlabel("ε (L∞, pixel units of 255)")
    ax.set_ylabel("accuracy under PGD")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
