"""Reading a scan as the results of the in-memory functions: ``topk``, ``layer_stats`` and ``embed``.

``see.topk(model, None, layer, scan=res)``, ``see.layer_stats(None, None, layers, scan=res)`` and
``see.embed(None, None, layers, scan=res)`` call these instead of passing over the data again;
``res`` is a :class:`~seethrough.scan.engine.ScanResult` or the folder of a stored scan. A partial
scan is refused, never read as a whole one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch


def as_result(scan: Any):
    """A complete :class:`ScanResult` from a result or a stored scan's folder."""
    from .engine import ScanResult, load

    res = load(scan) if isinstance(scan, (str, Path)) else scan
    if not isinstance(res, ScanResult):
        raise TypeError(f"scan= must be a see.scan result or the folder of a stored scan, got {type(scan).__name__}")
    return res.require_complete()


def _need(res, layer: str, name: str, hint: str):
    if (layer, name) not in res.accumulators:
        raise ValueError(f"the scan has no {name!r} for layer {layer!r} ({hint}); scanned layers: {', '.join(res.layers)}")
    return res.accumulators[layer, name]


def topk_from_scan(scan: Any, model: torch.nn.Module | None, layer: str, unit: int | None = None, k: int = 9, *,
                   boxes: bool = True):
    """A :class:`seethrough.inspect.topk.TopK` from a scan's ``topk`` accumulator (``k`` at most its k).
    Receptive-field boxes need ``model``; values are float64 (the activations, exactly).

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> res = see.scan(model, see.zoo.digits("test"), "conv2", ["topk"], batch_size=64, progress=False)
    >>> see.topk(model, None, "conv2", unit=3, k=4, scan=res).indices.shape
    torch.Size([1, 4])
    """
    from ..inspect.topk import TopK
    from ..inspect.receptive import receptive_field

    res = as_result(scan)
    acc = _need(res, layer, "topk", "scan it with the 'topk' accumulator")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1 or k > acc.k:
        raise ValueError(f"k must be an int in 1..{acc.k} (the scan kept the top {acc.k}), got {k!r}")
    if res.n_seen < k:
        raise ValueError(f"k={k} is larger than the dataset ({res.n_seen} samples); ask for k <= {res.n_seen}")
    n_units = acc.ids.shape[0]
    if unit is not None and (isinstance(unit, bool) or not isinstance(unit, int) or not 0 <= unit < n_units):
        raise ValueError(f"unit must be an int in 0..{n_units - 1} (layer {layer!r} has {n_units} units) or None, got {unit!r}")
    rows = np.arange(n_units) if unit is None else np.array([unit])
    ids = torch.from_numpy(acc.ids[rows, :k].copy())
    values = torch.from_numpy(acc.values[rows, :k].copy())
    units = torch.from_numpy(rows.astype(np.int64))
    if len(acc.shape) != 2:
        return TopK(layer, units, ids, values)
    positions = torch.from_numpy(acc.rows_cols()[rows, :k].copy())
    found = None
    if boxes:
        if model is None:
            raise ValueError("receptive-field boxes need the model: pass it, or boxes=False")
        sample = torch.zeros(1, *res.input_shape)
        found = receptive_field(model, sample, layer, positions.reshape(-1, 2)).reshape(*positions.shape[:2], 4)
    return TopK(layer, units, ids, values, positions, found)


def stats_from_scan(scan: Any, layers: str | Sequence[str], *, threshold: float = 0.0) -> dict:
    """``{layer: LayerStats}`` from a scan's ``hist``, ``dead`` and ``moments`` (default edges only).

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> res = see.scan(model, see.zoo.digits("test"), "relu1", ["hist", "dead", "moments"], batch_size=64, progress=False)
    >>> see.layer_stats(None, None, "relu1", scan=res)["relu1"].count
    360
    """
    from ..inspect.stats import LayerStats

    res = as_result(scan)
    out = {}
    for layer in [layers] if isinstance(layers, str) else list(layers):
        hint = "layer_stats needs the 'hist', 'dead' and 'moments' accumulators"
        hist, dead, mom = (_need(res, layer, a, hint) for a in ("hist", "dead", "moments"))
        if hist.options():
            raise ValueError("layer_stats from a scan needs the default histogram edges; scan without hist edges=")
        if dead.threshold != float(threshold):
            raise ValueError(f"the scan counted activity above {dead.threshold}, not {threshold}; pass threshold={dead.threshold}")
        n = mom.count.astype(np.float64)
        out[layer] = LayerStats(
            count=int(dead.n), edges=torch.from_numpy(hist.edges.copy()), hist=torch.from_numpy(hist.total.astype(np.int64)),
            active=torch.from_numpy(dead.active.copy()), above=int(dead.above.sum()), values=int(dead.values.sum()),
            total=float((n * mom.mean).sum()), total_sq=float((mom.m2 + n * mom.mean**2).sum()),
            low=float(mom.min.min()), high=float(mom.max.max()), threshold=dead.threshold)
    return out


def embed_features(scan: Any, layers: str | Sequence[str] | None, labels: Any, classes: Any):
    """``(acts {layer: (m, D)}, ids (m,), labels or None, classes)`` from a scan's reservoir sample."""
    res = as_result(scan)
    names = res.layers if layers is None else ([layers] if isinstance(layers, str) else list(layers))
    if labels is not None:
        raise ValueError("labels come from the scan with scan=; leave labels= out")
    acts, ids, lab = {}, None, None
    for layer in names:
        acc = _need(res, layer, "reservoir", "embed needs the 'reservoir' accumulator")
        if ids is not None and not np.array_equal(ids, acc.ids):
            raise ValueError("the layers' reservoir samples hold different examples (different seeds or sizes)")
        ids, lab = acc.ids, acc.labels
        acts[layer] = torch.from_numpy(acc.acts.copy())
    labels = torch.from_numpy(lab.copy()) if lab is not None and (lab >= 0).all() else None
    return acts, torch.from_numpy(ids.copy()), labels, classes if classes is not None else res.classes
