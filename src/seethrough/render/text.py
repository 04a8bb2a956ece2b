"""Pictures of text explanations: attention head and model views, coloured tokens, probe curves, bias bars.

PNG pictures are matplotlib figures or PIL images; the HTML pages are self-contained (inline CSS,
inline JavaScript and the data as JSON in the page: no CDN, no network, unlike bertviz, which is
blank offline). Colours follow the tabular pictures: red raises the score, blue lowers it.
"""
from __future__ import annotations

import html
import json
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

_UP, _DOWN = (255, 0, 81), (0, 139, 251)


def _maps(att: torch.Tensor, tokens: Sequence[str]) -> np.ndarray:
    a = att.detach().double().cpu().numpy() if isinstance(att, torch.Tensor) else np.asarray(att, dtype=np.float64)
    if a.ndim == 5 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 4 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"attention must be (layers, heads, L, L) for one sentence, got shape {a.shape}")
    if len(tokens) != a.shape[-1]:
        raise ValueError(f"got {len(tokens)} tokens for attention over {a.shape[-1]} positions")
    return a


def head_view(att: torch.Tensor, tokens: Sequence[str], layer: int = 0, head: int | None = None, *, title: str = "") -> "Figure":
    """bertviz's head view as a figure: queries on the left, keys on the right, a line per pair as dark as its weight.

    ``head=None`` averages the layer's heads.

    >>> fig = head_view(torch.full((1, 2, 3, 3), 1 / 3), ["[CLS]", "hi", "[SEP]"])
    >>> len(fig.axes)
    1
    """
    a = _maps(att, tokens)
    if not 0 <= layer < a.shape[0] or (head is not None and not 0 <= head < a.shape[1]):
        raise ValueError(f"layer must be in 0..{a.shape[0] - 1} and head in 0..{a.shape[1] - 1} (or None)")
    w = a[layer].mean(0) if head is None else a[layer, head]
    n = len(tokens)
    fig, ax = plt.subplots(figsize=(4.0, 0.32 * n + 0.9))
    for i in range(n):
        for j in range(n):
            if w[i, j] > 0.01:
                ax.plot([0, 1], [n - 1 - i, n - 1 - j], color="#ff7f0e", alpha=float(min(1.0, w[i, j])), lw=2.5 * float(w[i, j]) + 0.3)
    for i, t in enumerate(tokens):
        ax.text(-0.03, n - 1 - i, t, ha="right", va="center", fontsize=9)
        ax.text(1.03, n - 1 - i, t, ha="left", va="center", fontsize=9)
    ax.set_xlim(-0.8, 1.8)
    ax.set_ylim(-0.8, n - 0.2)
    ax.axis("off")
    ax.set_title(title or f"layer {layer}, {'mean of heads' if head is None else f'head {head}'}", fontsize=10)
    fig.tight_layout()
    return fig


def model_view(att: torch.Tensor, tokens: Sequence[str], *, title: str = "") -> "Figure":
    """bertviz's model view as a figure: one small attention heatmap per layer (rows) and head (columns).

    >>> model_view(torch.full((2, 3, 4, 4), 0.25), list("abcd")).axes[0].get_images()[0].get_array().shape
    (4, 4)
    """
    a = _maps(att, tokens)
    layers, heads = a.shape[:2]
    fig, axes = plt.subplots(layers, heads, figsize=(0.9 * heads + 0.6, 0.9 * layers + 0.6), squeeze=False)
    for lay in range(layers):
        for h in range(heads):
            ax = axes[lay, h]
            ax.imshow(a[lay, h], cmap="Oranges", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if lay == 0:
                ax.set_title(f"h{h}", fontsize=7)
            if h == 0:
                ax.set_ylabel(f"L{lay}", fontsize=7)
    fig.suptitle(title or "attention by layer (rows) and head (columns); rows of a map are queries", fontsize=9)
    fig.tight_layout()
    return fig


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title><style>
body{{font:14px system-ui,sans-serif;margin:1.5em;color:#222}} .tok{{font:13px monospace}}
svg text{{font:12px monospace}} .grid{{display:grid;grid-template-columns:repeat({heads},auto);gap:4px;width:max-content}}
.grid svg{{border:1px solid #ddd;cursor:pointer}} .grid svg.on{{border-color:#e60}} label{{margin-right:1em}}
</style></head><body><h2>{title}</h2>
<p><label>layer <select id="layer"></select></label><label>head <select id="head"></select></label>
hover a token to see only its lines.</p><svg id="hv" width="420" height="{height}"></svg>
<h3>Model view: every layer (rows) and head (columns); click a map to show it above</h3><div class="grid" id="grid"></div>
<noscript>This page draws with its own inline JavaScript (no network needed); enable JavaScript.</noscript>
<script>
const D = {data};
const NS = "http://www.w3.org/2000/svg", L = D.att.length, H = D.att[0].length, T = D.tokens.length;
const el = (n, a) => {{ const e = document.createElementNS(NS, n); for (const k in a) e.setAttribute(k, a[k]); return e; }};
const ls = document.getElementById("layer"), hs = document.getElementById("head");
for (let i = 0; i < L; i++) ls.add(new Option(i, i));
hs.add(new Option("mean", -1)); for (let h = 0; h < H; h++) hs.add(new Option(h, h));
function weights(l, h) {{
  if (h >= 0) return D.att[l][h];
  return D.att[l][0].map((r, i) => r.map((_, j) => D.att[l].reduce((s, m) => s + m[i][j], 0) / H));
}}
function draw(focus) {{
  const svg = document.getElementById("hv"); svg.innerHTML = "";
  const w = weights(+ls.value, +hs.value);
  for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) {{
    if (w[i][j] < 0.01 || (focus !== undefined && focus !== i)) continue;
    svg.appendChild(el("line", {{x1: 150, y1: 20 + 20 * i, x2: 270, y2: 20 + 20 * j, stroke: "#f60",
      "stroke-opacity": Math.min(1, w[i][j]), "stroke-width": 0.5 + 3 * w[i][j]}}));
  }}
  D.tokens.forEach((t, i) => {{
    for (const [x, anchor] of [[144, "end"], [276, "start"]]) {{
      const e = el("text", {{x: x, y: 24 + 20 * i, "text-anchor": anchor}}); e.textContent = t;
      if (anchor === "end") {{ e.onmouseenter = () => draw(i); e.onmouseleave = () => draw(); }}
      svg.appendChild(e);
    }}
  }});
  document.querySelectorAll(".grid svg").forEach(s => s.classList.toggle("on", +s.dataset.l === +ls.value && +s.dataset.h === +hs.value));
}}
const grid = document.getElementById("grid"), c = 60 / T;
for (let l = 0; l < L; l++) for (let h = 0; h < H; h++) {{
  const s = el("svg", {{width: 60, height: 60}}); s.dataset.l = l; s.dataset.h = h;
  D.att[l][h].forEach((r, i) => r.forEach((v, j) => s.appendChild(el("rect", {{x: j * c, y: i * c, width: c, height: c,
    fill: "rgb(230,85,13)", "fill-opacity": v}}))));
  s.onclick = () => {{ ls.value = l; hs.value = h; draw(); }};
  s.appendChild(el("title", {{}})).textContent = "layer " + l + ", head " + h;
  grid.appendChild(s);
}}
ls.onchange = hs.onchange = () => draw(); draw();
</script></body></html>
"""


def attention_html(att: torch.Tensor, tokens: Sequence[str], *, title: str = "Attention", digits: int = 3) -> str:
    """A self-contained HTML page with the head view (pick a layer and head) and the model view (a grid of maps).

    >>> page = attention_html(torch.full((1, 1, 2, 2), 0.5), ["a", "b"])
    >>> "<script src" in page, "http" in page.replace("http://www.w3.org/2000/svg", "")
    (False, False)
    """
    a = _maps(att, tokens)
    data = json.dumps({"tokens": [str(t) for t in tokens], "att": np.round(a, digits).tolist()})
    return _PAGE.format(title=html.escape(title), heads=a.shape[1], height=20 * len(tokens) + 20,
                        data=data.replace("</", "<\\/"))


def _rgba(v: float, scale: float) -> tuple[int, int, int, float]:
    c = _UP if v >= 0 else _DOWN
    return (*c, min(1.0, abs(v) / scale) if scale > 0 else 0.0)


def _scale(scores: Sequence[float]) -> float:
    return float(max((abs(s) for s in scores), default=0.0))


def tokens_html(tokens: Sequence[str], scores: torch.Tensor | Sequence[float], *, title: str = "") -> str:
    """An HTML fragment: each token on a background as red (positive) or blue (negative) as its score; the value on hover.

    >>> tokens_html(["good", "bad"], [1.0, -0.5])
    '<div class="tokens"><span title="1" style="background:rgba(255,0,81,1.00);padding:1px 3px;border-radius:3px">good</span> <span title="-0.5" style="background:rgba(0,139,251,0.50);padding:1px 3px;border-radius:3px">bad</span></div>'
    """
    vals = [float(s) for s in (scores.tolist() if isinstance(scores, torch.Tensor) else scores)]
    if len(vals) != len(tokens):
        raise ValueError(f"got {len(vals)} scores for {len(tokens)} tokens")
    m = _scale(vals)
    spans = []
    for t, v in zip(tokens, vals):
        r, g, b, alpha = _rgba(v, m)
        spans.append(f'<span title="{v:.4g}" style="background:rgba({r},{g},{b},{alpha:.2f});padding:1px 3px;'
                     f'border-radius:3px">{html.escape(str(t))}</span>')
    head = f"<p>{html.escape(title)}</p>" if title else ""
    return f'{head}<div class="tokens">{" ".join(spans)}</div>'


def tokens_image(tokens: Sequence[str], scores: torch.Tensor | Sequence[float], *, title: str = "",
                 width: int = 720, size: int = 18) -> Image.Image:
    """The coloured tokens as a PNG-ready PIL image (wrapped to ``width`` pixels).

    >>> tokens_image(["good", "bad"], [1.0, -0.5]).mode
    'RGB'
    """
    vals = [float(s) for s in (scores.tolist() if isinstance(scores, torch.Tensor) else scores)]
    if len(vals) != len(tokens):
        raise ValueError(f"got {len(vals)} scores for {len(tokens)} tokens")
    font = ImageFont.load_default(size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_h, pad, x, y, boxes = size + 10, 6, 10, 10 + (size + 8 if title else 0), []
    for t in tokens:
        w = int(probe.textlength(str(t), font=font)) + 2 * pad
        if x + w > width - 10 and x > 10:
            x, y = 10, y + line_h
        boxes.append((x, y, w))
        x += w + 4
    img = Image.new("RGB", (width, y + line_h + 10), "white")
    draw, m = ImageDraw.Draw(img), _scale(vals)
    if title:
        draw.text((10, 8), title, fill=(40, 40, 40), font=font)
    for (x, y, w), t, v in zip(boxes, tokens, vals):
        r, g, b, alpha = _rgba(v, m)
        fill = tuple(int(255 + alpha * (c - 255)) for c in (r, g, b))
        draw.rounded_rectangle((x, y, x + w, y + size + 6), radius=4, fill=fill)
        draw.text((x + pad, y + 2), str(t), fill=(0, 0, 0), font=font)
    return img


def probe_plot(accuracy: Mapping[str, torch.Tensor], control: Mapping[str, torch.Tensor] | None = None, *,
               majority: Mapping[str, float] | None = None, title: str = "Probing accuracy by layer") -> "Figure":
    """Accuracy by layer (0 = embeddings) per task, solid; its control task dashed in the same colour.

    >>> probe_plot({"tense": torch.tensor([0.5, 0.9])}).axes[0].get_xlabel()
    'layer (0 = embeddings)'
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for k, (task, acc) in enumerate(accuracy.items()):
        color = f"C{k}"
        xs = np.arange(len(acc))
        ax.plot(xs, np.asarray(acc, dtype=float), "-o", color=color, label=task, ms=4)
        if control is not None and task in control:
            ax.plot(xs, np.asarray(control[task], dtype=float), "--", color=color, alpha=0.6, lw=1)
        if majority is not None and task in majority:
            ax.axhline(majority[task], color=color, lw=0.6, alpha=0.3)
    ax.set_xlabel("layer (0 = embeddings)")
    ax.set_ylabel("held-out accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title(title + (" (dashed: control task)" if control else ""), fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def projection_bars(words: Sequence[str], before: torch.Tensor, after: torch.Tensor | None = None, *,
                    title: str = "Projection on the gender direction") -> "Figure":
    """Horizontal bars of each word's cosine with the direction (positive: the male side), and after neutralising.

    >>> len(projection_bars(["nurse", "pilot"], torch.tensor([-0.2, 0.1])).axes)
    1
    """
    b = np.asarray(before.detach().double().cpu() if isinstance(before, torch.Tensor) else before, dtype=float)
    order = np.argsort(b)
    fig, ax = plt.subplots(figsize=(5.5, 0.22 * len(words) + 1.2))
    ys = np.arange(len(words))
    ax.barh(ys, b[order], color=["#ff0051" if v > 0 else "#008bfb" for v in b[order]], height=0.7, label="embedding")
    if after is not None:
        a = np.asarray(after.detach().double().cpu() if isinstance(after, torch.Tensor) else after, dtype=float)
        ax.plot(a[order], ys, "k|", ms=9, label="after neutralise")
    ax.set_yticks(ys, [words[i] for i in order], fontsize=8)
    ax.axvline(0, color="k", lw=0.6)
    ax.set_xlabel("cosine with the direction (+: he side, −: she side)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig
