"""Image grids: conv filters, channel maps of a layer, top-k crops beside their projections."""
from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image


def _norm_each(a: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Scale each slice to [0, 1] on its own, symmetric around 0 so that 0 stays mid-grey."""
    m = np.abs(a).max(axis=axes, keepdims=True)
    return 0.5 + 0.5 * a / np.where(m > 0, m, 1.0)


def tile(cells: np.ndarray, ncol: int, *, pad: int = 1, scale: int = 1, background: float = 1.0) -> Image.Image:
    """``(N, h, w)`` or ``(N, h, w, 3)`` in [0, 1] → one PIL image, ``ncol`` cells per row.

    >>> tile(np.zeros((5, 4, 4)), 3, scale=2).size
    (32, 22)
    """
    n, h, w = cells.shape[:3]
    rgb = cells.ndim == 4
    nrow = math.ceil(n / ncol)
    canvas = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad) + ((3,) if rgb else ()), background, dtype=np.float64)
    for i in range(n):
        r, c = divmod(i, ncol)
        canvas[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = cells[i]
    img = Image.fromarray((np.clip(canvas, 0, 1) * 255).round().astype(np.uint8), "RGB" if rgb else "L")
    return img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST) if scale > 1 else img


def filter_grid(w: torch.Tensor, *, rgb: bool | None = None, scale: int = 8) -> Image.Image:
    """Conv filters ``(M, K, kh, kw)`` (from ``see.filters``) as a picture, each normalised on its own.

    With 3 input channels (``rgb=None`` or ``True``) each filter is one colour image, one
    row of up to 16; with one channel (a grey first layer, a Linear layer's rows as images)
    each filter is one grey image, also 16 a row; otherwise row ``m`` shows filter ``m`` and
    column ``k`` its input channel ``k`` in grey (mid-grey is 0, white positive, black negative).

    >>> filter_grid(torch.randn(4, 3, 3, 3)).mode, filter_grid(torch.randn(4, 2, 3, 3), scale=1).size
    ('RGB', (9, 17))
    >>> filter_grid(torch.randn(20, 1, 28, 28), scale=1).size   # 16 a row, 2 rows
    (465, 59)
    """
    if not isinstance(w, torch.Tensor) or w.dim() != 4:
        raise ValueError(f"filter_grid expects conv filters (M, K, kh, kw), got {getattr(w, 'shape', type(w).__name__)}")
    a = w.detach().cpu().double().numpy()
    if rgb is None:
        rgb = a.shape[1] == 3
    if rgb:
        if a.shape[1] != 3:
            raise ValueError(f"rgb=True needs 3 input channels, the filters have {a.shape[1]}")
        return tile(_norm_each(a, (1, 2, 3)).transpose(0, 2, 3, 1), min(16, a.shape[0]), scale=scale)
    m, k = a.shape[:2]
    return tile(_norm_each(a, (2, 3)).reshape(m * k, *a.shape[2:]), min(16, m) if k == 1 else k, scale=scale)


def channel_grid(act: torch.Tensor, channels: torch.Tensor | None = None, *, ncol: int | None = None,
                 normalize: str = "layer", scale: int | None = None) -> Image.Image:
    """The maps ``act[channels]`` of one sample ``(C, H, W)`` as a grey grid.

    ``normalize="layer"``: one scale for all maps (a dead channel stays black);
    ``"channel"``: each map stretched on its own (shows structure in weak channels).

    >>> channel_grid(torch.rand(6, 4, 4), ncol=3, scale=1).size
    (16, 11)
    """
    a = _scaled_maps(act, channels, normalize, "channel_grid")
    ncol = ncol or math.ceil(math.sqrt(a.shape[0]))
    scale = scale or max(1, 96 // a.shape[-1])
    return tile(a, ncol, scale=scale)


def channel_tiles(act: torch.Tensor, channels: torch.Tensor | None = None, *, normalize: str = "layer",
                  scale: int | None = None) -> list[Image.Image]:
    """The maps of :func:`channel_grid` as one image per channel (for clickable grids), on the
    same scale: ``normalize="layer"`` keeps a dead channel black next to a strong one.

    >>> [t.size for t in channel_tiles(torch.rand(3, 4, 4), scale=2)]
    [(8, 8), (8, 8), (8, 8)]
    """
    a = _scaled_maps(act, channels, normalize, "channel_tiles")
    scale = scale or max(1, 48 // a.shape[-1])
    return [tile(m[None], 1, pad=0, scale=scale) for m in a]


def _scaled_maps(act: torch.Tensor, channels: torch.Tensor | None, normalize: str, caller: str) -> np.ndarray:
    if not isinstance(act, torch.Tensor) or act.dim() != 3:
        raise ValueError(f"{caller} expects one sample's maps (C, H, W), got {getattr(act, 'shape', type(act).__name__)}")
    a = (act if channels is None else act[channels]).detach().cpu().double().numpy()
    if normalize not in ("layer", "channel"):
        raise ValueError(f"normalize must be 'layer' or 'channel', got {normalize!r}")
    axes = (0, 1, 2) if normalize == "layer" else (1, 2)
    lo, hi = a.min(axis=axes, keepdims=True), a.max(axis=axes, keepdims=True)
    return (a - lo) / np.where(hi > lo, hi - lo, 1.0)


def _cells(x: torch.Tensor) -> np.ndarray:
    a = x.detach().cpu().double().clamp(0, 1).numpy()
    return a[:, 0] if a.shape[1] == 1 else a.transpose(0, 2, 3, 1)


def _signed_cells(x: torch.Tensor) -> np.ndarray:
    a = x.detach().cpu().double().numpy()
    a = _norm_each(a, (1, 2, 3))
    return a[:, 0] if a.shape[1] == 1 else a.transpose(0, 2, 3, 1)


def topk_grid(crops: torch.Tensor, projections: torch.Tensor | None = None, *, scale: int | None = None,
              gap: int = 6) -> Image.Image:
    """Zeiler & Fergus's top-9 panels: per unit (one row) a square block of its top-k crops and,
    beside it, the same block of their projections.

    ``crops``/``projections``: ``(U, k, C, h, w)``; crops in [0, 1], projections signed
    (mid-grey = 0, each normalised on its own).

    >>> topk_grid(torch.rand(2, 4, 1, 5, 5), torch.randn(2, 4, 1, 5, 5), scale=1).size
    (32, 32)
    """
    if crops.dim() != 5:
        raise ValueError(f"topk_grid expects crops (units, k, C, h, w), got {tuple(crops.shape)}")
    u, k, c, h, w = crops.shape
    side = math.ceil(math.sqrt(k))
    scale = scale or max(1, 48 // max(h, w))
    blocks = []
    for i in range(u):
        row = [tile(_cells(crops[i]), side, scale=scale)]
        if projections is not None:
            row.append(tile(_signed_cells(projections[i]), side, scale=scale))
        blocks.append(row)
    bw, bh = blocks[0][0].size
    ncols = len(blocks[0])
    canvas = Image.new("RGB", (ncols * bw + (ncols - 1) * gap, u * bh + (u - 1) * gap), "white")
    for i, row in enumerate(blocks):
        for j, b in enumerate(row):
            canvas.paste(b.convert("RGB"), (j * (bw + gap), i * (bh + gap)))
    return canvas


# Readable versions for the CLI: the same cells with a title, unit numbers, a stated scale and dead units named.

def filter_figure(w: torch.Tensor, *, title: str = "", percentile: float = 100.0) -> Image.Image:
    """Conv filters ``(M, K, kh, kw)`` with their numbers: 3 input channels → one colour image per
    filter (each scaled to its own max |w|, grey = 0); otherwise one cell per filter and input channel
    on ONE diverging scale (±the ``percentile`` of |w|, with a colour bar). An all-zero filter is marked dead.

    >>> img = filter_figure(torch.cat([torch.randn(2, 2, 3, 3), torch.zeros(1, 2, 3, 3)]), title="conv2")
    >>> img.info["texts"][:3], img.info["texts"][-2:]
    (['conv2', 'f0 · in 0', 'f0 · in 1'], ['f2 · in 1 · dead', 'weight (diverging, ±max |w|)'])
    """
    from .readable import SIGNED_CMAP, labelled_grid, robust_scale, unit_label

    if not isinstance(w, torch.Tensor) or w.dim() != 4:
        raise ValueError(f"filter_figure expects conv filters (M, K, kh, kw), got {getattr(w, 'shape', type(w).__name__)}")
    a = w.detach().cpu().double().numpy()
    m, k = a.shape[:2]
    if k == 3:
        labels = [unit_label(f"f{i}", w[i]) for i in range(m)]
        return labelled_grid(_norm_each(a, (1, 2, 3)).transpose(0, 2, 3, 1), labels, title=title,
                             note="each filter scaled to its own max |w|; grey = 0")
    s = robust_scale(a, percentile)
    labels = [unit_label(f"f{i}", w[i]) if k == 1 else unit_label(f"f{i} · in {j}", w[i, j]) for i in range(m) for j in range(k)]
    which = "max |w|" if percentile >= 100 else f"{percentile:g}th pct of |w|"
    return labelled_grid(a.reshape(m * k, *a.shape[2:]), labels, title=title, ncol=None if k == 1 else k,
                         cmap=SIGNED_CMAP, vmin=-s, vmax=s, cbar_label=f"weight (diverging, ±{which})")


def activation_figure(act: torch.Tensor, channels: torch.Tensor | None = None, *, title: str = "") -> Image.Image:
    """One sample's channel maps ``(C, H, W)`` (or those in ``channels``) with their channel numbers
    on one scale with a colour bar (diverging ±max |a| if any value is negative); a channel that is
    0 everywhere is labelled dead. The note says how many of all C channels are dead on this input.

    >>> act = torch.rand(4, 5, 5); act[2] = 0
    >>> img = activation_figure(act, title="relu1")
    >>> img.info["texts"][1:5], img.info["texts"][-2]
    (['ch 0', 'ch 1', 'ch 2 · dead', 'ch 3'], '1 of 4 channels dead (0 everywhere) on this input; 4 shown')
    """
    from .readable import SIGNED_CMAP, is_signed, labelled_grid, unit_label

    if not isinstance(act, torch.Tensor) or act.dim() != 3:
        raise ValueError(f"activation_figure expects one sample's maps (C, H, W), got {getattr(act, 'shape', type(act).__name__)}")
    idx = torch.arange(act.shape[0]) if channels is None else torch.as_tensor(channels).flatten()
    a = act.detach().cpu().double()
    dead = int((a.flatten(1) == 0).all(1).sum())
    cells = a[idx].numpy()
    labels = [unit_label(f"ch {int(i)}", a[int(i)]) for i in idx]
    note = f"{dead} of {a.shape[0]} channels dead (0 everywhere) on this input; {len(idx)} shown"
    if is_signed(cells):
        s = float(np.abs(cells).max()) or 1.0
        return labelled_grid(cells, labels, title=title, cmap=SIGNED_CMAP, vmin=-s, vmax=s,
                             cbar_label="activation (diverging, ±max |a|)", note=note)
    return labelled_grid(cells, labels, title=title, cmap="magma", vmin=0.0, vmax=float(cells.max()) or 1.0,
                         cbar_label="activation (one scale for all channels)", note=note)


def topk_caption(unit: int, values: torch.Tensor, n_inputs: int | None = None) -> str:
    """What a unit's top-k row shows: its strongest activation, or that it never fires / has tied values.

    >>> topk_caption(3, torch.tensor([2.5, 1.0])), topk_caption(4, torch.zeros(9), 1797)
    ('unit 3 · top 2 · max 2.5', 'unit 4 · dead: never fires (max activation 0 over 1797 inputs)')
    """
    v = values.detach().double().flatten()
    over = f" over {n_inputs} inputs" if n_inputs else ""
    if bool((v == v[0]).all()):
        if float(v[0]) <= 0:  # a ReLU unit at 0 (or below) on every input: any "top k" would be arbitrary indices
            return f"unit {unit} · dead: never fires (max activation {float(v[0]):.3g}{over})"
        return f"unit {unit} · top {len(v)} tied at {float(v[0]):.3g} (order arbitrary)"
    return f"unit {unit} · top {len(v)} · max {float(v[0]):.3g}"


def topk_figure(crops: torch.Tensor, projections: torch.Tensor | None, result, *, title: str = "",
                n_inputs: int | None = None, scale: int | None = None) -> Image.Image:
    """:func:`topk_grid` with a caption per unit (its number and strongest activation); a unit that
    never fires gets the words instead of a "top k" of arbitrary inputs. ``result`` is the
    :class:`~seethrough.inspect.topk.TopK` the crops came from.

    >>> from seethrough.inspect.topk import TopK
    >>> r = TopK("conv1", torch.tensor([0, 1]), torch.tensor([[5, 2], [0, 1]]), torch.tensor([[3.0, 1.0], [0.0, 0.0]]))
    >>> img = topk_figure(torch.rand(2, 2, 1, 5, 5), None, r, title="conv1")
    >>> img.info["texts"]
    ['conv1', 'unit 0 · top 2 · max 3', 'unit 1 · dead: never fires (max activation 0)']
    """
    import matplotlib.pyplot as plt

    from .optimize import figure_to_image
    from .readable import wrap

    u = crops.shape[0]
    captions = [topk_caption(int(result.units[i]), result.values[i], n_inputs) for i in range(u)]
    blocks = [topk_grid(crops[i:i + 1], None if projections is None else projections[i:i + 1], scale=scale) for i in range(u)]
    bw, bh = blocks[0].size
    fig, axes = plt.subplots(u, 1, figsize=(max(4.0, bw / 100 + 0.4), u * (bh / 100 + 0.35) + 0.5), squeeze=False)
    for ax, img, cap in zip(axes[:, 0], blocks, captions):
        ax.axis("off")
        if "never fires" in cap:
            ax.text(0.5, 0.5, f"no top {result.values.shape[1]}: no input activates it (max ≤ 0)",
                    ha="center", va="center", color="crimson", fontsize=9, transform=ax.transAxes)
        else:
            ax.imshow(np.asarray(img), interpolation="nearest")
        ax.set_title(cap, fontsize=8, color="crimson" if "never fires" in cap else "black")
    texts = [title] if title else []
    if title:
        fig.suptitle(wrap(title, fig.get_figwidth()) + ("" if projections is None else "\n" + wrap(
            "left: receptive-field crops · right: their projections (grey = 0)", fig.get_figwidth())), fontsize=9)
    fig.tight_layout()
    out = figure_to_image(fig)
    out.info["texts"] = texts + captions
    return out
