"""A stored data-set scan (``seethrough report --scan scan/``): read back, never recomputed.

Everything here comes from the folder ``see.scan(..., out=)`` / ``seethrough scan -o`` wrote: the
layer statistics and dead units (``moments``, ``dead``, ``hist``), each unit's top-k examples
(``topk``; the pictures are re-read from the data source by id when it is still there), the
reservoir sample embedded in 2-D (``reservoir``), and where the unit atlas pages are. The model
is never run over the data: when the manifest names a zoo model whose weights hash like the
scanned one, it is loaded only to trace receptive fields (one forward of a blank input per layer).
"""
from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import torch

from ..registry import Context, Text, section

ROWS = {True: 8, False: 16}  # units drawn per layer (quick, full)
TABLE_ROWS = 64  # units listed per layer in the top-k table
DEAD_LISTED = 24


def scan_identity(res: Any) -> dict[str, Any]:
    """What a stored scan section must match to be reused: the same folder at the same save.

    >>> scan_identity(None)["model"] is None
    True
    """
    if res is None or getattr(res, "folder", None) is None:  # an in-memory result: never reuse a stored section
        return {"model": None, "folder": None, "run": uuid.uuid4().hex}
    from ...scan.store import read_manifest

    m = read_manifest(res.folder) or {}
    return {"model": res.model_hash, "data": res.identity, "folder": str(res.folder.resolve()),
            "generation": m.get("generation"), "n_seen": res.n_seen}


@section("scan", "Data set scan", order=95)
def build(ctx: Context) -> list:
    """The section's blocks from ``ctx.scan`` (a complete stored scan), in the order the page shows them.

    >>> import seethrough as see, tempfile
    >>> from seethrough.scan.views import as_result
    >>> d = tempfile.mkdtemp()
    >>> _ = see.scan("lenet-digits", see.scan.digits_source(), ["relu3"], ["topk", "dead"], batch_size=64, out=d,
    ...              progress=False)
    >>> [b.title for b in build(Context(quick=True, scan=as_result(d))) if hasattr(b, "title")][:2]
    ['Layer statistics over the scan', 'relu3: top-9 example ids per unit (the first 64 of 120 units)']
    """
    res = ctx.scan
    if res is None:
        raise ValueError("the scan section reads a stored scan: seethrough report --scan FOLDER")
    name, model, note = _model(ctx, res)
    accs = sorted({a for _, a in res.accumulators})
    blocks: list = [Text(
        f"A stored scan of {res.n_seen:,} of {res.n:,} examples ({len(res.skipped)} unreadable, skipped) of the data "
        f"{res.identity!r}, by the model {name} (weights SHA-256 {res.model_hash[:12]}…), over the layers "
        f"{', '.join(res.layers)}, with the accumulators {', '.join(accs)}; read from {res.folder}. Nothing in this "
        f"section runs the model over the data: it reads the merged accumulator states. {note}")]
    blocks += _stats(ctx, res)
    for layer in res.layers:
        if (layer, "topk") in res.accumulators:
            blocks += _topk(ctx, res, layer, model)
    blocks += _embedding(ctx, res)
    blocks.append(_atlas(res, name))
    return blocks


def _model(ctx: Context, res: Any) -> tuple[str, Any, str]:
    """``(display name, the scanned model or None, a sentence on what it is used for)``."""
    from ... import zoo
    from ...scan.store import read_manifest
    from ...zoo.cache import state_sha256

    name = ((read_manifest(res.folder) or {}).get("model") or {}).get("name", "?") if res.folder else "?"
    if name not in zoo.models():
        return name, None, "The model is not a zoo model: top-k examples are shown whole, not cut to receptive fields."
    model, _ = ctx.model(name)
    if state_sha256(model.state_dict()) != res.model_hash:
        return name, None, (f"The zoo's {name} hashes differently from the scanned weights: top-k examples are shown "
                            "whole, not cut to receptive fields.")
    return name, model, (f"The zoo's {name} (same weights) is loaded only to trace receptive fields for the crops.")


def _stats(ctx: Context, res: Any) -> list:
    sw = ctx.stopwatch()
    rows = []
    for layer in res.layers:
        dead = res.accumulators.get((layer, "dead"))
        mom = res.accumulators.get((layer, "moments"))
        top = res.accumulators.get((layer, "topk"))
        units = next((len(a) for a in (getattr(mom, "count", None), getattr(dead, "active", None),
                                        getattr(top, "ids", None)) if a is not None), 0)
        shape = "×".join(str(int(v)) for v in top.shape) if top is not None and len(top.shape) else "-"
        if dead is not None:
            ids = np.flatnonzero(dead.dead).tolist()
            listed = ", ".join(map(str, ids[:DEAD_LISTED])) + (f", … ({len(ids) - DEAD_LISTED} more)" if len(ids) > DEAD_LISTED else "")
            dead_cells = [f"{len(ids)} ({dead.dead_fraction:.1%})", f"{dead.sparsity:.1%}", listed or "none"]
        else:
            dead_cells = ["-", "-", "-"]
        mom_cells = ([f"{mom.mean.mean():.4g}", f"{mom.std.mean():.4g}", f"{mom.min.min():.4g}", f"{mom.max.max():.4g}"]
                     if mom is not None else ["-"] * 4)
        rows.append([layer, units, shape, *dead_cells, *mom_cells])
    table = sw.table(
        "Layer statistics over the scan", ["layer", "units", "positions", "dead units", "sparsity", "dead unit ids",
                                           "mean", "mean std", "min", "max"], rows,
        "A unit is dead when no example drives it above the scan's threshold anywhere (the 'dead' accumulator); "
        "sparsity is the share of all values at or below it; mean and std are per unit over every example and "
        "position (Chan's merge of the 'moments' states), averaged over the layer's units; min and max over the layer.",
        scan=str(res.folder), examples=res.n_seen)
    blocks = [table]
    hists = [layer for layer in res.layers if (layer, "hist") in res.accumulators]
    if hists:
        blocks.append(sw.figure("Activation histograms over the scan", _histograms(res, hists),
                                "Every activation value of the layer over the whole data set, counted on the scan's "
                                "log-spaced bins (non-empty bins only; the axis is close to a symmetric log).",
                                scan=str(res.folder), layers=", ".join(hists)))
    return blocks


def _histograms(res: Any, layers: list[str]):
    from ...render.scan import histogram_image

    from PIL import Image, ImageDraw

    pics = []
    for layer in layers:
        h = res[layer, "hist"]
        total = h.total
        nz = np.flatnonzero(total)
        lo, hi = (int(nz.min()), int(nz.max()) + 1) if len(nz) else (0, 0)
        img = histogram_image(h.edges[lo:hi + 1].tolist(), total[lo:hi].tolist(), size=(360, 130))
        canvas = Image.new("RGB", (img.width, img.height + 16), "white")
        canvas.paste(img, (0, 16))
        ImageDraw.Draw(canvas).text((2, 2), layer, fill=(0, 0, 0))
        pics.append(canvas)
    out = Image.new("RGB", (sum(p.width for p in pics) + 8 * (len(pics) - 1), max(p.height for p in pics)), "white")
    x = 0
    for p in pics:
        out.paste(p, (x, 0))
        x += p.width + 8
    return out


def _topk(ctx: Context, res: Any, layer: str, model: Any) -> list:
    from ...render import tile
    from ...scan.atlas import unit_records

    sw = ctx.stopwatch()
    top = res[layer, "topk"]
    n_units = top.ids.shape[0]
    blocks: list = []
    rows = []
    dead = res.accumulators.get((layer, "dead"))
    for u in range(min(n_units, TABLE_ROWS)):
        keep = top.ids[u] >= 0
        state = "-" if dead is None else ("dead" if dead.dead[u] else "alive")
        rows.append([u, state, " ".join(map(str, top.ids[u][keep].tolist())),
                     " ".join(f"{v:.3g}" for v in top.values[u][keep].tolist())])
    more = f" (the first {TABLE_ROWS} of {n_units} units)" if n_units > TABLE_ROWS else ""
    blocks.append(sw.table(
        f"{layer}: top-{top.k} example ids per unit{more}", ["unit", "state", "example ids, strongest first", "activation"],
        rows, "Per unit the examples with the largest activation (max over positions), ties broken by the smaller id, "
        "as the 'topk' accumulator merged them over the whole data set; ids are indices into the data source.",
        scan=str(res.folder), layer=layer))
    if res.source is None:
        blocks.append(Text(f"The data of this scan is not available any more ({res.identity!r}): the top-k examples of "
                           f"{layer} are listed by id above, not drawn."))
        return blocks
    shown = list(range(min(n_units, ROWS[ctx.quick])))
    records = unit_records(res, layer, shown, model, visualize=False)
    cells = []
    for r in records:
        pics = r.images.float().clamp(0, 1)
        pad = torch.ones(top.k - len(pics), *pics.shape[1:]) if len(pics) < top.k else pics[:0]
        cells.append(torch.cat([pics, pad]))
    stack = torch.cat(cells)
    arr = stack[:, 0].numpy() if stack.shape[1] == 1 else stack[:, :3].permute(0, 2, 3, 1).numpy()
    scale = max(1, 48 // max(arr.shape[1:3]))
    what = "receptive-field crops" if records[0].cropped else "whole inputs"
    blocks.append(sw.figure(
        f"{layer}: top-{top.k} examples of units {shown[0]}–{shown[-1]}", tile(arr, top.k, pad=2, scale=scale),
        f"One row per unit (units {shown[0]} to {shown[-1]} of {n_units}), its top-{top.k} examples over the "
        f"{res.n_seen:,} scanned ones, strongest on the left, as {what}; re-read from the data source by the stored "
        "ids. A dead unit's row shows the examples that reached its largest (non-positive) values.",
        scan=str(res.folder), layer=layer, crops=records[0].cropped))
    return blocks


def _embedding(ctx: Context, res: Any) -> list:
    from ...embed import embed
    from ...render import embedding

    layers = [layer for layer in res.layers if (layer, "reservoir") in res.accumulators]
    if not layers:
        return [Text("The scan kept no reservoir sample (accumulator 'reservoir'), so there is no embedding to draw.")]
    sw = ctx.stopwatch()
    method = "pca" if ctx.quick else "tsne"
    e = embed(None, None, layers, method, scan=res, seed=ctx.seed, progress=False)
    m = len(res[layers[0], "reservoir"].ids)
    name = {"pca": "PCA", "tsne": "t-SNE"}[method]
    blocks: list = [sw.figure(
        f"The reservoir sample in 2-D ({name}, {m:,} examples)", embedding(e, ncols=min(3, len(layers))),
        f"A uniform sample of {m:,} of the {res.n_seen:,} scanned examples (the 'reservoir' accumulator: the examples "
        "with the smallest seeded hash of their id), their stored activations embedded layer by layer; no forward pass.",
        scan=str(res.folder), method=method, seed=ctx.seed)]
    if e.separation:
        rows = [[layer, f"{e.dims[layer]:,}", f"{s.knn:.1%}", f"{s.knn_2d:.1%}", f"{s.purity:.1%}", f"{s.purity_2d:.1%}"]
                for layer, s in e.separation.items()]
        o = e.options
        blocks.append(sw.table(
            "Class separation of the sample", ["layer", "dims", f"{o['k']}-NN accuracy", "in 2-D",
                                               f"{o['purity_k']}-NN purity", "in 2-D"], rows,
            "Leave-one-out k-NN accuracy and neighbour purity of the sampled examples' labels, in the layer's own space "
            "and in the 2-D map.", scan=str(res.folder), method=method))
    return blocks


def _atlas(res: Any, name: str) -> Text:
    index = res.folder / "atlas" / "index.html" if res.folder is not None else None
    if index is not None and index.is_file():
        return Text(f"The unit atlas of this scan (a page per unit: top-k crops, histogram, dead/alive state, feature "
                    f"visualisation) is stored at {index}; open it in a browser.")
    return Text(f"Unit atlas pages (a page per unit: top-k crops, histogram, dead/alive state, feature visualisation) "
                f"are written from this scan by: seethrough atlas {res.folder or 'SCAN'}"
                f"{'' if name == '?' else ' -m ' + name}. Network dissection and activation atlases run scans of their "
                "own (a probe data set, sampled positions); see docs/scan.md.")
