"""Pictures of the trust checks: the randomisation strip with its similarity curves, the
deletion/insertion curves against the random ranking, and the trust badge under a map."""
from __future__ import annotations

from typing import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from .heatmap import _blend, reduce_channels  # noqa: E402
from .optimize import figure_to_image  # noqa: E402

_METRIC_LABELS = {"spearman": "Spearman", "spearman_abs": "Spearman (abs)", "ssim": "SSIM", "hog": "HOG"}


def sanity_figure(result, sample: int = 0, title: str = "") -> Image.Image:
    """A :class:`~seethrough.sanity.SanityResult` as one picture: the original map and the map after
    each randomisation step (top), the similarity per step and metric with the edge-detector
    reference as dashed lines (bottom, mean over samples).

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> x, _ = see.zoo.digits("test")
    >>> r = see.sanity.randomization(model, x[:2], "saliency", metrics=("spearman_abs",), progress=False)
    >>> see.render.sanity_figure(r).size[0] > 0
    True
    """
    steps = len(result.layers)
    fig = plt.figure(figsize=(1.5 * (steps + 1), 4.6))
    grid = fig.add_gridspec(2, steps + 1, height_ratios=[1, 1.25])
    maps = [result.original[sample:sample + 1]] + [m[sample:sample + 1] for m in result.maps]
    titles = ["original"] + [f"{'…' if result.mode == 'cascading' and k else ''}{n or 'model'}"
                             for k, n in enumerate(result.layers)]
    x = result.x[sample:sample + 1]
    for k, (m, t) in enumerate(zip(maps, titles)):
        ax = fig.add_subplot(grid[0, k])
        a2d = reduce_channels(m, "auto")[0].double().cpu().numpy()
        ax.imshow(_blend(x[0], a2d, 0.85, 99.0, None))
        ax.set_title(t, fontsize=8)
        ax.axis("off")
    ax = fig.add_subplot(grid[1, :])
    steps_x = np.arange(1, steps + 1)
    for m_i, metric in enumerate(result.metrics):
        mean = result.scores[:, m_i].nanmean(1).numpy()
        line, = ax.plot(steps_x, mean, marker="o", label=_METRIC_LABELS.get(metric, metric))
        ax.axhline(float(result.edge[m_i].nanmean()), ls="--", lw=1, color=line.get_color())
    ax.set_xticks(steps_x, [n or "model" for n in result.layers], fontsize=8, rotation=30)
    ax.set_ylim(-0.6, 1.05)
    ax.axhline(0, color="0.6", lw=0.6)
    ax.set_ylabel("similarity to original")
    ax.set_xlabel(f"layers randomised ({result.mode}, from the output down); dashed: Sobel edges of the input")
    ax.legend(fontsize=8, loc="lower left")
    fig.suptitle(title or f"{result.method}: model-parameter randomization", fontsize=10)
    fig.tight_layout()
    return figure_to_image(fig)


def faithfulness_figure(curves: Mapping[str, object], title: str = "") -> Image.Image:
    """Curves (mean over samples) of several :class:`~seethrough.metrics.CurveResult` s, one panel
    per metric, each method a colour and its random ranking dashed; AUCs in the legend.

    ``curves`` maps a method name to ``{metric: CurveResult}``.

    >>> import seethrough as see
    >>> lenet, _ = see.zoo.load("lenet-digits")
    >>> x = see.zoo.digits("test")[0][:2]
    >>> d = see.metrics.deletion(lenet, x, see.attribute(lenet, x, "saliency"), steps=8, progress=False)
    >>> faithfulness_figure({"saliency": {"deletion": d}}).mode
    'RGB'
    """
    metrics = list(dict.fromkeys(m for per in curves.values() for m in per))
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.4 * len(metrics), 3.4), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, metric in zip(axes[0], metrics):
        for c, (method, per) in enumerate(curves.items()):
            if metric not in per:
                continue
            r = per[metric]
            f = r.fraction.numpy()
            ax.plot(f, r.curve.mean(0).numpy(), color=colors[c % len(colors)],
                    label=f"{method} ({float(r.score.mean()):.2f})")
            ax.plot(f, r.random.mean(0).numpy(), color=colors[c % len(colors)], ls="--", lw=1,
                    label=f"random ({float(r.random_score.mean()):.2f})")
        ax.set_title(metric.replace("_", " "), fontsize=10)
        ax.set_xlabel("fraction of the image changed")
        ax.set_ylabel("class probability" if r.options.get("score", "probability") == "probability" else "score")
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return figure_to_image(fig)


def badge_strip(x: torch.Tensor, attribution: torch.Tensor, badge, sample: int = 0, size: int = 224) -> Image.Image:
    """The map over the image with the trust badge written under it: its numbers, then the verdict
    with its reasons (green: passes, orange: caution), wrapped to the picture's width. The same
    lines are in the image's ``info["caption"]`` (written to a PNG's text chunk on save).

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> x, _ = see.zoo.digits("test")
    >>> a, badge = see.attribute(model, x[:1], "grad-x-input", trust=True)
    >>> img = see.render.badge_strip(x[:1], a, badge)
    >>> img.size[0], img.info["caption"].splitlines()[-1] == badge.verdict[0]
    (224, True)
    """
    a2d = reduce_channels(attribution[sample:sample + 1], "auto")[0].double().cpu().numpy()
    img = Image.fromarray((_blend(x[sample], a2d, 0.85, 99.0, None) * 255).astype(np.uint8)).resize((size, size))
    ok = badge.verdict[sample].startswith("passes")
    font = ImageFont.load_default()
    lines = badge.lines(sample)
    rows = [(row, k == len(lines) - 1) for k, line in enumerate(lines) for row in wrap_text(line, font, size - 8)]
    out = Image.new("RGB", (size, size + 14 * len(rows) + 6), "white")
    out.paste(img, (0, 0))
    draw = ImageDraw.Draw(out)
    for k, (row, is_verdict) in enumerate(rows):
        color = ((20, 120, 40) if ok else (200, 100, 0)) if is_verdict else (30, 30, 30)
        draw.text((4, size + 3 + 14 * k), row, fill=color, font=font)
    out.info["caption"] = "\n".join(lines)
    return out


def wrap_text(text: str, font, width: int) -> list[str]:
    """``text`` broken at spaces into lines no wider than ``width`` pixels in ``font`` (a longer word stays whole).

    >>> from PIL import ImageFont
    >>> wrap_text("a b c", ImageFont.load_default(), 10_000)
    ['a b c']
    """
    rows: list[str] = []
    for word in text.split(" "):
        if rows and font.getlength(rows[-1] + " " + word) <= width:
            rows[-1] += " " + word
        else:
            rows.append(word)
    return rows


def side_by_side(images: list[Image.Image], pad: int = 6) -> Image.Image:
    """PIL images in one row on white, top-aligned (badge strips of several methods).

    >>> side_by_side([Image.new("RGB", (4, 5)), Image.new("RGB", (3, 2))]).size
    (13, 5)
    """
    out = Image.new("RGB", (sum(i.width for i in images) + pad * (len(images) - 1), max(i.height for i in images)), "white")
    left = 0
    for img in images:
        out.paste(img, (left, 0))
        left += img.width + pad
    return out
