"""Pictures and pages of scan analyses: unit atlas pages, the dissection summary, the activation atlas.

The atlas pages are plain HTML with inline CSS and PNG files beside them: they open from the
disk with no server and no network (no CDN, no script).
"""
from __future__ import annotations

import base64
import html
import io
import math
import re
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from .optimize import figure_to_image  # noqa: E402

_CSS = """body{font-family:system-ui,sans-serif;margin:1.2em;color:#222}a{color:#1a5fb4;text-decoration:none}
.grid{display:flex;flex-wrap:wrap;gap:10px}.cell{width:150px;font-size:12px;border:1px solid #ddd;padding:4px}
.cell img{width:70px;height:70px;image-rendering:pixelated}.dead{background:#fbe9e7}.tag{color:#666}
.ex{display:inline-block;margin:3px;font-size:11px;text-align:center;width:104px}.ex img{width:96px;height:96px;image-rendering:pixelated}
table{border-collapse:collapse}td{padding:2px 8px;border-bottom:1px solid #eee}"""


def data_url(image: Image.Image) -> str:
    """A PIL image as a ``data:image/png;base64`` URL.

    >>> data_url(Image.new("RGB", (1, 1)))[:22]
    'data:image/png;base64,'
    """
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def unit_image(x: torch.Tensor, min_side: int = 96) -> Image.Image:
    """An image ``(C, H, W)`` in [0, 1] (C = 1 or 3) as PIL, enlarged by an integer factor (nearest) to ``min_side``.

    >>> unit_image(torch.zeros(1, 8, 8)).size
    (96, 96)
    """
    from ..zoo import to_image

    img = to_image(x.detach().float().clamp(0, 1))
    k = max(1, math.ceil(min_side / max(img.size)))
    return img.resize((img.width * k, img.height * k), Image.Resampling.NEAREST) if k > 1 else img


def histogram_image(edges: Sequence[float], counts: Sequence[int], *, size: tuple[int, int] = (320, 120)) -> Image.Image:
    """A unit's activation histogram as bars, one per bin (the scan's bins are log-spaced, so the
    axis is close to a symmetric log), with the value range and the tallest bar's share written
    under it. Drawn with PIL: a matplotlib figure per unit would dominate an atlas's time.

    >>> histogram_image([0.0, 1.0, 2.0], [3, 1]).size
    (320, 120)
    """
    from PIL import ImageDraw

    w, h = size
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    c = np.asarray(counts, dtype=np.float64)
    if c.size and c.sum() > 0:
        frac = c / c.sum()
        plot_h, n = h - 18, len(frac)
        for i, f in enumerate(frac):
            x0, x1 = int(i * w / n), max(int(i * w / n), int((i + 1) * w / n) - 1)
            draw.rectangle([x0, plot_h - int(round(f / frac.max() * (plot_h - 2))), x1, plot_h], fill=(76, 114, 176))
        draw.line([0, plot_h, w, plot_h], fill=(120, 120, 120))
        draw.text((2, plot_h + 3), f"{edges[0]:.3g}", fill=(60, 60, 60))
        right = f"{edges[-1]:.3g}"
        draw.text((w - 6 * len(right) - 2, plot_h + 3), right, fill=(60, 60, 60))
        draw.text((w // 2 - 30, plot_h + 3), f"max {frac.max():.0%}", fill=(60, 60, 60))
    return img


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>{body}</body></html>\n")


def _state(r) -> str:
    return "" if r.dead is None else ("dead" if r.dead else "alive")


def atlas_pages(records: Mapping[str, Sequence[object]], out: Path, *, title: str = "") -> Path:
    """Write ``index.html``, ``<layer>.html`` and ``<layer>/<unit>.html`` (+ PNGs) for
    :class:`~seethrough.scan.atlas.UnitRecord` lists per layer; returns the index path."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for layer, recs in records.items():
        lid = _safe(layer)
        (out / lid).mkdir(exist_ok=True)
        cells = []
        for r in recs:
            stem = out / lid / str(r.unit)
            first = ""
            if r.visualization is not None:
                unit_image(r.visualization).save(f"{stem}-vis.png")
                first = f"<img src='{lid}/{r.unit}-vis.png' alt='visualisation'>"
            if r.images is not None and len(r.images):
                for j, p in enumerate(r.images):
                    unit_image(p).save(f"{stem}-ex{j}.png")
                first += f"<img src='{lid}/{r.unit}-ex0.png' alt='top example'>"
            if r.hist_counts:
                histogram_image(r.hist_edges, r.hist_counts).save(f"{stem}-hist.png")
            concept = f"<br><b>{html.escape(r.concept)}</b> (IoU {r.iou:.3f})" if r.concept else ""
            cells.append(f"<div class='cell {_state(r)}'><a href='{lid}/{r.unit}.html'>{first}<br>unit {r.unit}</a> "
                         f"<span class='tag'>{_state(r)}</span>{concept}</div>")
            (out / lid / f"{r.unit}.html").write_text(_unit_page(r))
        dead = [r for r in recs if r.dead]
        (out / f"{lid}.html").write_text(_page(f"{layer} · atlas", f"<p><a href='index.html'>atlas</a></p><h1>{html.escape(layer)}</h1>"
                                               f"<p>{len(recs)} units shown, {len(dead)} dead</p><div class='grid'>{''.join(cells)}</div>"))
        rows.append(f"<tr><td><a href='{lid}.html'>{html.escape(layer)}</a></td><td>{recs[0].units if recs else 0} units</td>"
                    f"<td>{len(recs)} shown</td><td>{len(dead)} dead</td></tr>")
    index = out / "index.html"
    index.write_text(_page("unit atlas", f"<h1>Unit atlas</h1><p>{html.escape(title)}</p><table>{''.join(rows)}</table>"))
    return index


def _unit_page(r) -> str:
    lid = _safe(r.layer)
    stats = [("state", _state(r) or "—"), ("examples active", "—" if r.active is None else f"{r.active:.1%}"),
             ("values ≤ threshold", "—" if r.sparsity is None else f"{r.sparsity:.1%}"),
             ("mean ± std", "—" if r.mean is None else f"{r.mean:.4g} ± {r.std:.4g}"),
             ("concept", f"{r.concept} (IoU {r.iou:.3f})" if r.concept else ("none" if r.iou is not None else "—"))]
    table = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in stats)
    vis = (f"<h2>Feature visualisation</h2><img src='{r.unit}-vis.png' width='192' style='image-rendering:pixelated'>"
           f"<p class='tag'>{html.escape(r.vis_note)}</p>") if r.visualization is not None else ""
    exs = "".join(f"<div class='ex'><img src='{r.unit}-ex{j}.png'><br>{html.escape(n)}<br>{v:.4g}"
                  f"{'' if lab is None else ' · ' + html.escape(str(lab))}</div>"
                  for j, (n, v, lab) in enumerate(zip(r.names, r.values, r.labels)))
    kind = "receptive-field crops" if r.cropped else "whole inputs"
    hist = f"<h2>Activation histogram</h2><img src='{r.unit}-hist.png'>" if r.hist_counts else ""
    body = (f"<p><a href='../index.html'>atlas</a> · <a href='../{lid}.html'>{html.escape(r.layer)}</a></p>"
            f"<h1>{html.escape(r.layer)} · unit {r.unit}</h1><table>{table}</table>{vis}"
            f"<h2>Top {len(r.ids)} examples</h2><p class='tag'>{kind}, strongest first (name, activation, label)</p>{exs}{hist}")
    return _page(f"{r.layer} · unit {r.unit}", body)


def dissection_plot(dissection, *, title: str = "") -> Image.Image:
    """Bau et al.'s summary: per layer, the number of units labelled with a concept of each category
    (bars), with the number of unique concepts written on each bar.

    >>> from seethrough.scan.dissect import Dissection
    >>> d = Dissection(["a"], ("red", "dots-4"), ("color", "pattern"), {"a": torch.zeros(2)},
    ...                {"a": torch.tensor([[0.1, 0.0], [0.0, 0.01]], dtype=torch.float64)})
    >>> dissection_plot(d).mode
    'RGB'
    """
    frame = dissection.label_counts()
    cats = list(dict.fromkeys(frame["category"]))
    layers = list(dict.fromkeys(frame["layer"]))
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(layers) * max(1, len(cats)) / 3, 3.0))
    width = 0.8 / max(1, len(cats))
    colors = ["#c44e52", "#4c72b0", "#55a868", "#8172b2", "#ccb974"]
    for j, cat in enumerate(cats):
        sub = frame[frame.category == cat].set_index("layer")
        xs = np.arange(len(layers)) + (j - (len(cats) - 1) / 2) * width
        hs = [int(sub.loc[l, "units"]) for l in layers]
        bars = ax.bar(xs, hs, width, label=cat, color=colors[j % len(colors)])
        for b, l in zip(bars, layers):
            ax.text(b.get_x() + b.get_width() / 2, b.get_height(), str(int(sub.loc[l, "unique"])), ha="center",
                    va="bottom", fontsize=7)
    ax.set_xticks(np.arange(len(layers)), layers, fontsize=8)
    ax.set_ylabel("labelled units", fontsize=8)
    ax.legend(fontsize=7, frameon=False)
    ax.set_title(title or f"units with a concept at IoU ≥ {dissection.iou_threshold:g} (numbers: unique concepts)", fontsize=8)
    fig.tight_layout()
    return figure_to_image(fig)


def activation_atlas_image(images: torch.Tensor, cells: torch.Tensor, grid: int, *, cell: int = 64,
                           counts: torch.Tensor | None = None) -> Image.Image:
    """Carter et al.'s atlas: ``images (M, C, h, w)`` placed at grid ``cells (M, 2)`` = (row, col)
    of a ``grid``×``grid`` canvas (row 0 at the top), each resized to ``cell`` px; empty cells stay white.
    ``counts``: write each cell's number of samples in its corner.

    >>> activation_atlas_image(torch.rand(2, 3, 8, 8), torch.tensor([[0, 0], [1, 1]]), 2, cell=16).size
    (32, 32)
    """
    canvas = Image.new("RGB", (grid * cell, grid * cell), "white")
    from ..zoo import to_image

    for k, (img, (r, c)) in enumerate(zip(images, cells.tolist())):
        tile = to_image(img.detach().float().clamp(0, 1)).convert("RGB").resize((cell, cell), Image.Resampling.BILINEAR)
        canvas.paste(tile, (c * cell, r * cell))
    if counts is not None:
        from PIL import ImageDraw

        draw = ImageDraw.Draw(canvas)
        for n, (r, c) in zip(counts.tolist(), cells.tolist()):
            draw.text((c * cell + 2, r * cell + 1), str(int(n)), fill=(255, 255, 255))
    return canvas
