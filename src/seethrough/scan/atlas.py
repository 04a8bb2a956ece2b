"""The unit atlas (Microscope-style): every unit of a scanned layer on one page.

Per unit: its top-k data set examples (cropped to their receptive fields on conv layers, with
:func:`seethrough.inspect.receptive.receptive_field` and :func:`seethrough.inspect.topk.crops`),
its activation histogram, its dead/alive state, its feature visualisation
(``see.visualize(model, "channel:LAYER:C")``, few steps, cached in the scan folder) and, when
given a :class:`~.dissect.Dissection`, its concept. Everything is read from a :class:`ScanResult`
(the ``topk``, ``hist``, ``dead`` and ``moments`` accumulators); the model is needed only for
receptive fields and visualisations. :func:`unit_page_data` is the explorer's JSON view of one
unit; :func:`write_atlas` writes the static pages (``atlas/index.html``, one page per layer, one per unit).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

VIS_STEPS = 64


@dataclass
class UnitRecord:
    """What the atlas shows of one unit. ``images``: ``(k, C, h, w)`` the top examples (receptive-field
    crops when ``cropped``), strongest first, with ``ids``/``values``/``names``/``labels``;
    ``hist_edges``/``hist_counts``: the histogram over the non-empty bins; ``visualization``:
    ``(C, H, W)`` or None."""

    layer: str
    unit: int
    units: int
    ids: list[int]
    values: list[float]
    names: list[str]
    labels: list[str | None]
    images: torch.Tensor | None
    cropped: bool
    dead: bool | None = None
    active: float | None = None  # fraction of examples that drove the unit above the dead threshold
    sparsity: float | None = None  # fraction of its values at or below it
    mean: float | None = None
    std: float | None = None
    hist_edges: list[float] = field(default_factory=list)
    hist_counts: list[int] = field(default_factory=list)
    visualization: torch.Tensor | None = None
    vis_note: str = ""
    concept: str | None = None
    iou: float | None = None
    notes: list[str] = field(default_factory=list)


def _has(res, layer: str, name: str) -> bool:
    return (layer, name) in res.accumulators


def _check_unit(res, layer: str, unit: int) -> int:
    n = _n_units(res, layer)
    if isinstance(unit, bool) or not isinstance(unit, (int, np.integer)) or not 0 <= unit < n:
        raise ValueError(f"unit {unit!r} is out of range: layer {layer!r} has {n} units (0..{n - 1})")
    return int(unit)


def _n_units(res, layer: str) -> int:
    if layer not in res.layers:
        raise ValueError(f"layer {layer!r} was not scanned; scanned layers: {', '.join(res.layers)}")
    for name, attr in (("topk", "values"), ("dead", "active"), ("moments", "count"), ("hist", "counts")):
        if _has(res, layer, name) and getattr(res[layer, name], attr) is not None:
            return int(np.asarray(getattr(res[layer, name], attr)).shape[0])
    raise ValueError(f"the scan of layer {layer!r} holds none of topk, dead, moments, hist: nothing to show per unit")


def check_model(res, model: nn.Module) -> None:
    """The model must be the scanned one (same weights), or the crops and pictures would describe another network."""
    from ..zoo.cache import state_sha256

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if state_sha256(model.state_dict()) != res.model_hash:
        raise ValueError("this model is not the one that was scanned (its weights hash differently); "
                         "pass the scanned model, or scan this one")


def _examples(res, layer: str, units: Sequence[int], model: nn.Module | None):
    """Top-k ids/values per unit and their pictures ``(U, k, C, h, w)`` (crops when possible)."""
    top = res[layer, "topk"]
    if res.source is None:
        raise ValueError("the scan's data source is not available (a stored scan of a tensor): "
                         "load it with see.scan.load(folder, data=...) to show its examples")
    ids, values, positions = top.ids[list(units)], top.values[list(units)], top.positions[list(units)]
    valid = ids >= 0
    flat = sorted({int(i) for i in ids[valid]})
    xs = {i: res.source[i][0] for i in flat}
    names = {i: res.source[i][2] for i in flat}
    labels = {i: res.source[i][1] for i in flat}
    sample = xs[flat[0]][None]
    k = ids.shape[1]
    cropped = model is not None and len(top.shape) == 2 and sample.dim() == 4
    if cropped:
        from ..inspect.receptive import receptive_field
        from ..inspect.topk import crops

        w = int(top.shape[-1])
        rc = np.stack([positions // w, positions % w], -1).reshape(-1, 2)
        boxes = receptive_field(model, sample, layer, torch.from_numpy(rc.clip(0)))
        stacked = torch.stack([xs[int(i)] if i >= 0 else torch.zeros_like(sample[0]) for i in ids.reshape(-1)])
        cut = crops(stacked, boxes)
        pics = cut.view(len(units), k, *cut.shape[1:])
    else:
        pics = torch.stack([torch.stack([xs[int(i)] if i >= 0 else torch.zeros_like(sample[0]) for i in row]) for row in ids])
    return ids, values, valid, pics, names, labels, cropped


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def visualizations(res, model: nn.Module, layer: str, units: Sequence[int], *, steps: int = VIS_STEPS,
                   seed: int = 0) -> torch.Tensor:
    """``(U, C, H, W)`` feature visualisations of ``channel:LAYER:u`` (each ``see.visualize(model,
    "channel:LAYER:u", steps=steps, seed=seed)``), cached as ``.pt`` files in the scan folder
    (``atlas/vis/``) when the scan has one."""
    from ..optimize import visualize

    units = [int(u) for u in units]
    shape = tuple(res.input_shape)
    if len(shape) != 3:
        raise ValueError(f"feature visualisation needs image inputs (C, H, W), the scan's inputs are {shape}")
    cache = Path(res.folder) / "atlas" / "vis" / _safe(layer) if res.folder is not None else None
    path = lambda u: cache / f"{u}-{steps}-{seed}-{shape[1]}x{shape[2]}.pt"  # noqa: E731
    found: dict[int, torch.Tensor] = {}
    if cache is not None:
        for u in units:
            if path(u).exists():
                found[u] = torch.load(path(u), weights_only=True)
    for u in units:
        if u in found:
            continue
        # One call per unit: an image's start and jitter depend on its place in a call, so a unit
        # optimised alone gives the same picture whether or not its neighbours were cached.
        v = visualize(model, f"channel:{layer}:{u}", size=shape[1:], channels=shape[0], steps=steps, seed=seed,
                      batch_size=1)
        found[u] = v.x[0].detach().cpu()
        if cache is not None:
            cache.mkdir(parents=True, exist_ok=True)
            torch.save(found[u], path(u))
    return torch.stack([found[u] for u in units])


def unit_records(res, layer: str, units: Sequence[int] | None = None, model: nn.Module | None = None, *,
          visualize: bool = True, steps: int = VIS_STEPS, dissection=None, seed: int = 0) -> list[UnitRecord]:
    """One :class:`UnitRecord` per unit of ``layer`` (all units by default) from the scan ``res``.

    Without ``model``: whole top-k inputs and no visualisation (the model is needed to trace receptive
    fields and to optimise inputs). ``dissection``: a :class:`~.dissect.Dissection` adds each unit's concept.

    >>> import seethrough as see
    >>> from seethrough.scan.atlas import unit_records
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> res = see.scan(model, see.scan.digits_source(), ["conv2"], batch_size=64, progress=False)
    >>> r = unit_records(res, "conv2", [3], model, steps=4)[0]
    >>> r.images.shape, r.cropped, r.visualization.shape, r.dead
    (torch.Size([9, 1, 14, 14]), True, torch.Size([1, 32, 32]), False)
    """
    n = _n_units(res, layer)
    chosen = list(range(n)) if units is None else [_check_unit(res, layer, u) for u in units]
    if model is not None:
        check_model(res, model)
    records = [UnitRecord(layer, u, n, [], [], [], [], None, False) for u in chosen]
    if _has(res, layer, "topk"):
        ids, values, valid, pics, names, labels, cropped = _examples(res, layer, chosen, model)
        classes = res.classes
        for r, i_row, v_row, ok, p in zip(records, ids, values, valid, pics):
            keep = [j for j in range(len(i_row)) if ok[j]]
            r.ids = [int(i_row[j]) for j in keep]
            r.values = [float(v_row[j]) for j in keep]
            r.names = [names[i] for i in r.ids]
            r.labels = [None if labels[i] is None else (classes[labels[i]] if classes else str(labels[i])) for i in r.ids]
            r.images, r.cropped = p[keep], cropped
    else:
        for r in records:
            r.notes.append("no topk accumulator in this scan: no examples")
    if _has(res, layer, "dead"):
        d = res[layer, "dead"]
        for r in records:
            r.dead = bool(d.dead[r.unit])
            r.active = float(d.active[r.unit]) / max(int(d.n), 1)
            r.sparsity = 1.0 - float(d.above[r.unit]) / max(float(d.values[r.unit]), 1.0)
    if _has(res, layer, "moments"):
        m = res[layer, "moments"]
        for r in records:
            r.mean, r.std = float(m.mean[r.unit]), float(m.std[r.unit])
    if _has(res, layer, "hist"):
        h = res[layer, "hist"]
        for r in records:
            counts = h.counts[r.unit]
            nz = np.flatnonzero(counts)
            lo, hi = (int(nz.min()), int(nz.max()) + 1) if len(nz) else (0, 0)
            r.hist_edges, r.hist_counts = h.edges[lo:hi + 1].tolist(), counts[lo:hi].tolist()
    if dissection is not None and layer in dissection.iou:
        index, value = dissection.best(layer)
        for r in records:
            r.concept, r.iou = dissection.label(layer, r.unit), float(value[r.unit])
    if visualize and model is not None:
        pics = visualizations(res, model, layer, chosen, steps=steps, seed=seed)
        for r, p in zip(records, pics):
            r.visualization = p
            r.vis_note = f"channel:{layer}:{r.unit}, {steps} steps of Adam on a Fourier image with jitter, seed {seed}"
    elif visualize:
        for r in records:
            r.vis_note = "no model given: no feature visualisation"
    return records


def unit_page_data(scan_result, layer: str, unit: int, model: nn.Module | None = None, *,
                   steps: int = VIS_STEPS, dissection=None, visualize: bool = True) -> dict[str, Any]:
    """One unit as JSON-able data for the explorer: pictures as ``data:image/png`` URLs.

    Keys: ``layer``, ``unit``, ``units``, ``state`` ("dead"/"alive"/None), ``active``, ``sparsity``,
    ``mean``, ``std``, ``examples`` [{id, name, label, value, image}], ``examples_note``,
    ``histogram`` {edges, counts, image}, ``visualization``, ``visualization_note``, ``concept``, ``iou``.
    ``model``: needed for receptive-field crops and (``visualize``) the feature visualisation.

    >>> import seethrough as see
    >>> from seethrough.scan.atlas import unit_page_data
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> res = see.scan(model, see.scan.digits_source(), ["relu3"], batch_size=64, progress=False)
    >>> d = unit_page_data(res, "relu3", 5)
    >>> d["state"], len(d["examples"]), d["examples"][0]["image"][:22], d["visualization"]
    ('alive', 9, 'data:image/png;base64,', None)
    """
    from ..render.scan import data_url, histogram_image, unit_image

    r = unit_records(scan_result, layer, [unit], model, visualize=visualize and model is not None, steps=steps,
                     dissection=dissection)[0]
    return {
        "layer": r.layer, "unit": r.unit, "units": r.units,
        "state": None if r.dead is None else ("dead" if r.dead else "alive"),
        "active": r.active, "sparsity": r.sparsity, "mean": r.mean, "std": r.std,
        "examples": [{"id": i, "name": n, "label": lab, "value": v, "image": data_url(unit_image(p))}
                     for i, n, lab, v, p in zip(r.ids, r.names, r.labels, r.values,
                                               r.images if r.images is not None else [])],
        "examples_note": "receptive-field crops" if r.cropped else "whole inputs",
        "histogram": {"edges": r.hist_edges, "counts": r.hist_counts,
                      "image": data_url(histogram_image(r.hist_edges, r.hist_counts)) if r.hist_counts else None},
        "visualization": data_url(unit_image(r.visualization)) if r.visualization is not None else None,
        "visualization_note": r.vis_note, "concept": r.concept, "iou": r.iou, "notes": r.notes,
    }


def write_atlas(scan_result, model: nn.Module | None = None, out: str | Path | None = None, *,
                layers: Sequence[str] | None = None, units_per_layer: int | None = None, steps: int = VIS_STEPS,
                dissection=None, visualize: bool = True, seed: int = 0) -> Path:
    """Write the static atlas: ``out/index.html``, ``out/<layer>.html`` (a grid of units) and
    ``out/<layer>/<unit>.html``, with PNGs beside them; self-contained (no network). ``out``
    defaults to ``atlas/`` in the scan folder. ``units_per_layer``: only the first N units of each layer;
    ``visualize=False``: no feature visualisations (the model then only traces receptive fields);
    ``seed``: the visualisations' random start. Returns the index page's path. On the command line: ``seethrough atlas SCAN``.

    >>> import seethrough as see, tempfile
    >>> from seethrough.scan.atlas import write_atlas
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> res = see.scan(model, see.scan.digits_source(), ["conv1"], batch_size=64, progress=False)
    >>> write_atlas(res, model, tempfile.mkdtemp(), steps=2).name
    'index.html'
    """
    from ..render.scan import atlas_pages

    if out is None:
        if scan_result.folder is None:
            raise ValueError("the scan has no folder: pass out= (a folder for the atlas pages)")
        out = Path(scan_result.folder) / "atlas"
    chosen = list(scan_result.layers) if layers is None else list(layers)
    records = {}
    for layer in chosen:
        _check_unit(scan_result, layer, 0)
        n = _n_units(scan_result, layer)
        keep = range(n if units_per_layer is None else min(n, units_per_layer))
        records[layer] = unit_records(scan_result, layer, list(keep), model, visualize=visualize and model is not None, steps=steps,
                               dissection=dissection, seed=seed)
    return atlas_pages(records, Path(out), title=f"{scan_result.n_seen} examples · model {scan_result.model_hash[:12]}")
