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


def shown_steps(steps: int, most: int = 12) -> list[int]:
    """Which randomisation steps (0-based) the sanity strip shows: all up to ``most``, else ``most``
    evenly spaced ones, always the first and the last.

    >>> shown_steps(5), shown_steps(99)
    ([0, 1, 2, 3, 4], [0, 9, 18, 27, 36, 45, 53, 62, 71, 80, 89, 98])
    """
    if steps <= most:
        return list(range(steps))
    return sorted({int(i) for i in np.linspace(0, steps - 1, most).round()})


def sanity_figure(result, sample: int = 0, title: str = "", most: int = 12) -> Image.Image:
    """A :class:`~seethrough.sanity.SanityResult` as one picture: the original map (left), the map
    after at most ``most`` randomisation steps (top; always the first and the last, evenly spaced
    between), each centred above its step on the x axis of the similarity curves below (every step,
    per metric, mean over samples; the edge-detector reference dashed). At most ~2,500 px wide;
    the drawn texts are in ``info["texts"]``.

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> x, _ = see.zoo.digits("test")
    >>> r = see.sanity.randomization(model, x[:2], "saliency", metrics=("spearman_abs",), progress=False)
    >>> img = see.render.sanity_figure(r)
    >>> img.size[0] <= 2500, img.info["texts"][1:3]
    (True, ['original', 'fc3'])
    """
    from .heatmap import map_rgb

    steps = len(result.layers)
    show = shown_steps(steps, most)
    cell, right, x0 = 1.35, 0.35, 0.45 + 1.35 + 0.55  # inches: image side, right margin, curve axis start
    width = x0 + len(show) * cell * 1.1 + right
    height = 5.1
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((x0 / width, 0.75 / height, (width - x0 - right) / width, 2.0 / height))
    pos = [k + 1 for k in show]  # 1-based step numbers on the shared x axis
    slot = min(np.diff(pos)) if len(pos) > 1 else 1
    lo, hi = pos[0] - slot / 2, pos[-1] + slot / 2
    ax.set_xlim(lo, hi)
    axis_in = width - x0 - right
    side = min(cell, 0.94 * slot * axis_in / (hi - lo))
    x = result.x[sample:sample + 1]
    name = lambda k: f"{'…' if result.mode == 'cascading' and k else ''}{result.layers[k] or 'model'}"  # noqa: E731
    texts = [title or f"{result.method}: model-parameter randomization", "original"]

    def draw(left_in: float, m: torch.Tensor, label: str):
        im = fig.add_axes((left_in / width, 3.05 / height, side / width, side / height))
        im.imshow(map_rgb(x[0], reduce_channels(m, "auto")[0].double().cpu().numpy())[0])  # signed: red +, blue −
        im.set_title(label[:18], fontsize=7)
        im.axis("off")
        return im

    draw(0.45 + (cell - side) / 2, result.original[sample:sample + 1], "original")
    strip = []
    for k, p in zip(show, pos):
        centre = x0 + (p - lo) / (hi - lo) * axis_in
        strip.append(draw(centre - side / 2, result.maps[k][sample:sample + 1], f"{k + 1}: {name(k)}"))
        ax.axvline(p, color="0.85", lw=0.8, zorder=0)
        texts.append(result.layers[k] or "model")
    steps_x = np.arange(1, steps + 1)
    for m_i, metric in enumerate(result.metrics):
        mean = result.scores[:, m_i].nanmean(1).numpy()
        line, = ax.plot(steps_x, mean, marker="o", ms=3 if steps > 20 else 5, label=_METRIC_LABELS.get(metric, metric))
        ax.axhline(float(result.edge[m_i].nanmean()), ls="--", lw=1, color=line.get_color())
    ax.set_xticks(pos, [f"{k + 1}: {(result.layers[k] or 'model')[:16]}" for k in show], fontsize=7, rotation=30, ha="right")
    if steps > len(show):
        ax.set_xticks(steps_x, minor=True)
    ax.set_ylim(-0.6, 1.05)
    ax.axhline(0, color="0.6", lw=0.6)
    ax.set_ylabel("similarity to original", fontsize=8)
    shown = (f"maps shown for {len(show)} of {steps} steps (first, last and evenly between); curves: every step"
             if steps > len(show) else f"all {steps} steps shown")
    ax.set_xlabel(f"step: layers randomised ({result.mode}, from the output down); dashed: Sobel edges of the input. "
                  + shown, fontsize=7)
    ax.legend(fontsize=7, loc="lower left")
    fig.suptitle(texts[0], fontsize=10, y=0.99)
    texts.append(shown)
    fig.canvas.draw()  # where each map and its step landed, in pixels: the strip and the curves share one x axis
    columns = [(float(np.mean(im.get_window_extent().intervalx)), float(ax.transData.transform((p, 0))[0]))
               for im, p in zip(strip, pos)]
    img = figure_to_image(fig, dpi=fig.dpi)
    img.info["texts"] = texts
    img.info["columns"] = columns
    return img


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
    img = figure_to_image(fig)
    img.info["texts"] = ([title] if title else []) + [t.get_text() for ax in axes[0] for t in ax.get_legend().get_texts()]
    return img


def badge_strip(x: torch.Tensor, attribution: torch.Tensor, badge, sample: int = 0, size: int = 224,
                title: str = "") -> Image.Image:
    """The map over the image (under ``title``, wrapped, if given) with the trust badge written under
    it: its numbers, then the verdict with its reasons (green: passes, orange: caution or undefined),
    wrapped to the picture's width. The same lines are in the image's ``info["caption"]`` (kept in a
    PNG's text chunks by :func:`seethrough.render.save_picture`, as the CLI saves it).

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> x, _ = see.zoo.digits("test")
    >>> a, badge = see.attribute(model, x[:1], "grad-x-input", trust=True)
    >>> img = see.render.badge_strip(x[:1], a, badge)
    >>> img.size[0], img.info["caption"].splitlines()[-1] == badge.verdict[0]
    (224, True)
    """
    from .heatmap import map_rgb

    a2d = reduce_channels(attribution[sample:sample + 1], "auto")[0].double().cpu().numpy()
    rgb, _, _ = map_rgb(x[sample], a2d)
    img = Image.fromarray((rgb * 255).astype(np.uint8)).resize((size, size))
    ok = badge.verdict[sample].startswith("passes")
    font = ImageFont.load_default()
    lines = badge.lines(sample)
    heads = wrap_text(title, font, size - 8) if title else []
    top = 14 * len(heads) + (6 if heads else 0)
    rows = [(row, k == len(lines) - 1) for k, line in enumerate(lines) for row in wrap_text(line, font, size - 8)]
    out = Image.new("RGB", (size, top + size + 14 * len(rows) + 6), "white")
    out.paste(img, (0, top))
    draw = ImageDraw.Draw(out)
    for k, row in enumerate(heads):
        draw.text((4, 3 + 14 * k), row, fill=(0, 0, 0), font=font)
    for k, (row, is_verdict) in enumerate(rows):
        color = ((20, 120, 40) if ok else (200, 100, 0)) if is_verdict else (30, 30, 30)
        draw.text((4, top + size + 3 + 14 * k), row, fill=color, font=font)
    out.info["caption"] = "\n".join(lines)
    out.info["texts"] = [title] if title else []
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
