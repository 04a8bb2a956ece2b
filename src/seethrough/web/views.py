"""What each explorer view shows, as JSON: every number comes from a public library call.

These functions only pick inputs, call ``seethrough``'s functions and encode their results
(PNG data URLs, lists); the web layer caches them and the page draws them.
"""
from __future__ import annotations

import base64
import io
import json
import math
from typing import Any

import torch

from .. import render
from ..adversarial import ATTACKS, attack
from ..attribution import METHODS, attribute
from ..embed import METHODS as PROJECTIONS
from ..embed import embed, max_perplexity, nearest
from ..inspect import activations, crops, filters, pick_channels, topk
from ..optimize import visualize
from ..predict import predict
from ..zoo import to_image
from .session import Session

MAX_TILES = 256  # wider layers show a stated subset unless the user asks for all channels
EPS_GRID = (0, 0.25, 0.5, 1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)  # ε in 0-255 pixel units
ATTACK_STEPS = 10
TOPK = 9


def png(image) -> bytes:
    """A PIL image as PNG bytes."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def data_url(image) -> str:
    """A PIL image as a ``data:image/png`` URL, so a view's pictures arrive in one JSON reply."""
    return "data:image/png;base64," + base64.b64encode(png(image)).decode()


def _name(s: Session, c: int) -> str:
    return s.labels[c] if s.labels is not None and c < len(s.labels) else str(c)


def thumbnail(s: Session, index: int, size: int = 64) -> bytes:
    """One data set sample as a small PNG (the projector's hover picture)."""
    image = to_image(s.data[0][index])
    scale = max(1, size // max(image.size))
    return png(image.resize((image.width * scale, image.height * scale)) if scale > 1 else image)


def predictions(s: Session, input_id: str, k: int = 5) -> dict[str, Any]:
    """Top-``k`` classes of one input, and the input as the model sees it."""
    x = s.input(input_id)
    top = predict(s.model, x, k=k, labels=s.labels)[0]
    return {"input": input_id, "image": data_url(to_image(x)), "shape": list(x.shape[1:]),
            "top": [{"index": p.index, "label": p.label, "probability": p.probability} for p in top]}


def _maps(act: torch.Tensor) -> torch.Tensor:
    """One sample's activation as maps ``(C, H, W)``; a vector's units become 1×1 maps."""
    return act if act.dim() == 3 else act.reshape(act.shape[0], 1, 1) if act.dim() == 1 else act.reshape(act.shape[0], -1, 1)


def activation_grid(s: Session, input_id: str, layer: str, show: str = "auto", seed: int = 0) -> dict[str, Any]:
    """Every channel map of ``layer`` for one input, or a stated subset (``show``: ``auto`` = all
    up to 256 channels, else the 256 with the most energy; ``all``; ``random``)."""
    act = _maps(activations(s.model, s.input(input_id), layer)[layer][0])
    c = act.shape[0]
    n = min(MAX_TILES, c)
    if show == "all" or (show in ("auto", "random") and n == c):
        idx, rule = torch.arange(c), f"all {c} channels"
    elif show in ("auto", "energy"):
        idx, rule = pick_channels(act, n, how="energy"), f"the {n} of {c} channels with the most energy (mean square), strongest first"
    elif show == "random":
        idx, rule = pick_channels(act, n, how="random", seed=seed), f"{n} of {c} channels drawn at random (seed {seed})"
    else:
        raise ValueError(f"show must be 'auto', 'all', 'energy' or 'random', got {show!r}")
    tiles = render.channel_tiles(act, idx)
    return {"layer": layer, "channels": c, "map": list(act.shape[1:]), "rule": rule, "shown": idx.tolist(),
            "tiles": [data_url(t) for t in tiles]}


def unit(s: Session, input_id: str, layer: str, channel: int, k: int = TOPK, steps: int | None = None) -> dict[str, Any]:
    """One channel: its filter, its map on the input, its top-``k`` data set examples (cropped to
    their receptive fields for conv layers) and its activation-maximisation picture."""
    x = s.input(input_id)
    act = _maps(activations(s.model, x, layer)[layer][0])
    if not 0 <= channel < act.shape[0]:
        raise ValueError(f"channel {channel} is out of range: layer {layer!r} has {act.shape[0]} channels (0..{act.shape[0] - 1})")
    out: dict[str, Any] = {"layer": layer, "channel": channel, "filter": None,
                           "map": data_url(render.channel_tiles(act, torch.tensor([channel]), scale=max(1, 160 // act.shape[-1]))[0])}
    try:
        w = filters(s.model, layer)[channel:channel + 1]
        out["filter"] = data_url(render.filter_grid(w, scale=max(4, 96 // max(w.shape[-2:]))))
    except (ValueError, TypeError):
        out["filter_note"] = f"{layer!r} is not a convolution: no filter to show"
    if s.scan is not None and layer in s.scan.layers:  # a data-set scan: its top-k, state and histogram
        from ..scan.atlas import unit_page_data

        page = unit_page_data(s.scan, layer, channel, s.model, visualize=False)
        out["examples"] = [{"index": e["id"], "value": e["value"], "label": e["label"] or e["name"], "image": e["image"]}
                           for e in page["examples"]]
        out["examples_note"] = f"{page['examples_note']}, from the scan of {s.scan.n_seen} examples"
        out["scan"] = {k: page[k] for k in ("state", "active", "sparsity", "mean", "std", "histogram")}
    elif s.data is None:
        out["examples"], out["examples_note"] = [], "no data set: start the explorer with data="
    else:
        data_x, data_y = s.data
        r = topk(s.model, data_x, layer, unit=channel, k=min(k, len(data_x)), progress=False)
        idx = r.indices[0]
        pics = data_x[idx] if r.boxes is None else crops(data_x[idx], r.boxes[0])
        out["examples"] = [{"index": int(i), "value": float(v), "label": _name(s, int(data_y[i])), "image": data_url(to_image(p))}
                           for i, v, p in zip(idx, r.values[0], pics)]
        out["examples_note"] = "receptive-field crops" if r.boxes is not None else "whole inputs"
    steps = steps or (128 if s.shape[0] == 1 else 64)
    v = visualize(s.model, f"channel:{layer}:{channel}", size=s.shape[-1], channels=s.shape[0], steps=steps, seed=0)
    out["maximize"] = data_url(to_image(v.x[0]))
    out["maximize_note"] = f"{steps} steps of Adam on a Fourier image with jitter, seed 0"
    return out


def _scan_layer(s: Session, layer: str):
    if s.scan is None:
        raise KeyError("no stored scan: start the explorer with --scan FOLDER (written by seethrough scan -o)")
    if layer not in s.scan.layers:
        raise ValueError(f"layer {layer!r} was not scanned; scanned layers: {', '.join(s.scan.layers)}")
    return s.scan


def scan_summary(s: Session) -> dict[str, Any] | None:
    """What the stored scan holds, per layer: units, accumulators, dead units, the top-k size and the sample size.

    >>> import seethrough as see, tempfile
    >>> from seethrough.web.session import attach_scan, from_zoo
    >>> d = tempfile.mkdtemp()
    >>> _ = see.scan("lenet-digits", see.scan.digits_source(), ["conv2"], batch_size=64, out=d, progress=False)
    >>> s = attach_scan(from_zoo("lenet-digits"), d)
    >>> info = scan_summary(s)["layers"][0]
    >>> info["name"], info["units"], info["k"], info["sample"]
    ('conv2', 16, 9, 360)
    >>> scan_units(s, "conv2")["units"][1]["ids"] == s.scan["conv2", "topk"].ids[1].tolist()
    True
    """
    res = s.scan
    if res is None:
        return None
    layers = []
    for layer in res.layers:
        accs = sorted(a for (l, a) in res.accumulators if l == layer)
        dead = res.accumulators.get((layer, "dead"))
        top = res.accumulators.get((layer, "topk"))
        sample = res.accumulators.get((layer, "reservoir"))
        units = next((len(a) for a in (getattr(dead, "active", None), getattr(top, "ids", None)) if a is not None), None)
        layers.append({"name": layer, "units": units, "accumulators": accs, "k": None if top is None else top.k,
                       "dead": None if dead is None else [int(u) for u, d in enumerate(dead.dead) if d],
                       "sample": None if sample is None else len(sample.ids)})
    return {"examples": res.n, "seen": res.n_seen, "skipped": len(res.skipped), "data": res.identity,
            "model_hash": res.model_hash, "layers": layers, "images": res.source is not None}


def scan_units(s: Session, layer: str) -> dict[str, Any]:
    """Every unit of a scanned layer as the scan stored it: dead/alive, share of examples active, top-k ids and values."""
    res = _scan_layer(s, layer)
    dead = res.accumulators.get((layer, "dead"))
    top = res.accumulators.get((layer, "topk"))
    n = len(dead.active) if dead is not None else (len(top.ids) if top is not None else 0)
    units = []
    for u in range(n):
        row: dict[str, Any] = {"unit": u}
        if dead is not None:
            row["state"] = "dead" if dead.dead[u] else "alive"
            row["active"] = float(dead.active[u]) / max(int(dead.n), 1)
        if top is not None:
            keep = top.ids[u] >= 0
            row["ids"], row["values"] = top.ids[u][keep].tolist(), top.values[u][keep].tolist()
        units.append(row)
    return {"layer": layer, "units": units, "seen": res.n_seen}


def scan_unit(s: Session, layer: str, channel: int) -> dict[str, Any]:
    """One unit's atlas page from the scan (no input needed): top-k crops, histogram, dead/alive, mean and std."""
    from ..scan.atlas import unit_page_data

    return unit_page_data(_scan_layer(s, layer), layer, channel, s.model, visualize=False)


def scan_thumbnail(s: Session, index: int, size: int = 64) -> bytes:
    """One scanned example, re-read from the scan's data source by id (the projector's hover picture)."""
    image = to_image(s.scan.source[index][0])
    scale = max(1, size // max(image.size))
    return png(image.resize((image.width * scale, image.height * scale)) if scale > 1 else image)


def scan_projection(s: Session, layer: str, method: str = "pca", seed: int = 0) -> dict[str, Any]:
    """The scan's reservoir sample of ``layer`` embedded in 2-D (stored activations: no forward pass)."""
    res = _scan_layer(s, layer)
    if (layer, "reservoir") not in res.accumulators:
        raise ValueError(f"the scan kept no reservoir sample of {layer!r}; scan it with the 'reservoir' accumulator")
    if method not in PROJECTIONS:
        raise ValueError(f"unknown projection {method!r}; choose one of {', '.join(PROJECTIONS)}")
    sample = res[layer, "reservoir"]
    m = len(sample.ids)
    e = embed(None, None, [layer], method, scan=res, seed=seed, perplexity=min(30.0, max_perplexity(m) - 1),
              progress=False)
    xy = e[layer]
    lo, hi = xy.min(0).values, xy.max(0).values
    xy = ((xy - lo) / (hi - lo).clamp_min(1e-12)).tolist()  # to the unit square for drawing
    classes = res.classes
    labels = e.labels.tolist() if e.labels is not None else [None] * m
    sep = e.separation.get(layer)
    return {"layer": layer, "method": method, "n": m, "available": res.n_seen, "seed": seed, "source": "scan",
            "points": [{"x": p[0], "y": p[1], "label": 0 if lab is None else int(lab), "index": int(i),
                        "name": "?" if lab is None else (classes[lab] if classes else str(lab))}
                       for p, i, lab in zip(xy, sample.ids.tolist(), labels)],
            "separation": None if sep is None else sep._asdict()}


def entry_options(family: str, name: str, raw: str | dict) -> dict[str, Any]:
    """The options of a method or attack chosen in the page: a JSON object (``'{"steps": 64}'``)
    checked against the entry's spec (:mod:`seethrough.catalog`); a bad one is a ValueError (a 400).

    >>> entry_options("attribution", "integrated-gradients", '{"steps": "64"}')
    {'steps': 64}
    >>> entry_options("attribution", "saliency", '{"steps": 64}')
    Traceback (most recent call last):
    ValueError: saliency takes no option --steps; it takes --abs, --score, --layer, --unit, --reduce
    """
    from ..catalog import get

    if isinstance(raw, str):
        try:
            raw = json.loads(raw or "{}")
        except json.JSONDecodeError:
            raise ValueError(f"options must be a JSON object such as {{\"steps\": 64}}, got {raw[:40]!r}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"options must be a JSON object such as {{\"steps\": 64}}, got {str(raw)[:40]!r}")
    return get(family, name).check(raw)


def attribution(s: Session, input_id: str, method: str, target: int | None = None, options: str = "{}") -> dict[str, Any]:
    """One method's map over the input with the chosen options, and the trust badge beside it."""
    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; available: {', '.join(METHODS)}")
    opts = entry_options("attribution", method, options)
    x = s.input(input_id)
    if target is None:
        target = predict(s.model, x, k=1)[0][0].index
    a, badge = attribute(s.model, x, method, target, trust=True, **opts)
    return {"method": method, "family": METHODS[method].family, "paper": METHODS[method].paper, "target": target,
            "options": opts,
            "label": _name(s, target), "overlay": data_url(render.overlay(x, render.for_display(method, a))), "summary": badge.summary(0),
            "badge": {"top_layer": badge.top_layer, "randomized_top": _finite(badge.randomized_top[0]),
                      "deletion": _finite(badge.deletion[0]), "deletion_random": _finite(badge.deletion_random[0]),
                      "deletion_lerf": _finite(badge.deletion_lerf[0]) if badge.deletion_lerf is not None else None,
                      "reference": badge.reference[0] if badge.reference else None,
                      "insertion": _finite(badge.insertion[0]), "insertion_random": _finite(badge.insertion_random[0]),
                      "verdict": badge.verdict[0]}}


def _finite(v: Any) -> float | None:
    """A number for JSON: NaN (an undefined ρ: a constant map has no ranking) becomes null, which JSON can carry.

    >>> _finite(0.5), _finite(float("nan"))
    (0.5, None)
    """
    v = float(v)
    return v if math.isfinite(v) else None


def projection(s: Session, input_id: str, layer: str, method: str = "pca", n: int = 200, seed: int = 0,
               k: int = 5) -> dict[str, Any]:
    """``n`` data set samples (a seeded draw) and the current input embedded by ``method``; the
    input's nearest neighbours in the layer's (PCA-reduced) space."""
    if s.data is None:
        raise ValueError("no data set to project: start the explorer with data=(x, labels)")
    if method not in PROJECTIONS:
        raise ValueError(f"unknown projection {method!r}; choose one of {', '.join(PROJECTIONS)}")
    data_x, data_y = s.data
    if n < k + 2:
        raise ValueError(f"the sample size must be at least {k + 2} (the input's {k} nearest neighbours among them), got {n}")
    n = min(n, len(data_x))  # the reply states the n used
    pick = torch.randperm(len(data_x), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    x = s.input(input_id)
    pred = predict(s.model, x, k=1)[0][0].index
    xs, ys = torch.cat([data_x[pick], x]), torch.cat([data_y[pick], torch.tensor([pred])])
    e = embed(s.model, (xs, ys), [layer], method, seed=seed, perplexity=min(30.0, max_perplexity(len(xs)) - 1),
              progress=False)
    xy = e[layer]
    lo, hi = xy.min(0).values, xy.max(0).values
    xy = ((xy - lo) / (hi - lo).clamp_min(1e-12)).tolist()  # to the unit square for drawing
    near = nearest(e.features[layer], len(xs) - 1, k=k)
    sep = e.separation.get(layer)
    return {"layer": layer, "method": method, "n": n, "available": len(data_x), "seed": seed,
            "points": [{"x": p[0], "y": p[1], "label": int(data_y[i]), "name": _name(s, int(data_y[i])), "index": int(i)}
                       for p, i in zip(xy[:-1], pick)],
            "input": {"x": xy[-1][0], "y": xy[-1][1], "predicted": _name(s, pred)},
            "neighbors": [{"index": int(pick[j]), "label": _name(s, int(data_y[pick[j]]))} for j in near],
            "separation": None if sep is None else sep._asdict()}


def attack_options(method: str, eps: float, chosen: str | dict = "{}") -> dict[str, Any]:
    """The attack's options: ``eps`` from the slider, the page's ``chosen`` ones (checked against
    the attack's spec), and ``steps`` at the explorer's default when the page chose none."""
    if method not in ATTACKS or "eps" not in ATTACKS[method].defaults:
        usable = [a for a, spec in ATTACKS.items() if "eps" in spec.defaults]
        raise ValueError(f"attack {method!r} has no ε budget to slide; choose one of {', '.join(usable)}")
    picked = entry_options("attack", method, chosen)
    if "eps" in picked:
        raise ValueError("eps is the slider's: the options may not set it")
    options: dict[str, Any] = {"eps": float(eps)}
    if "steps" in ATTACKS[method].defaults:
        options["steps"] = ATTACK_STEPS
    return {**options, **picked}


def adversarial(s: Session, input_id: str, method: str, eps: float, options: str = "{}") -> dict[str, Any]:
    """The input attacked at budget ``eps`` (pixel units) with the chosen options: label,
    probability, the perturbed image and the perturbation amplified to be visible."""
    x = s.input(input_id)
    options = attack_options(method, eps, options)
    if eps == 0:  # no budget: the clean image, as the model sees it
        top = predict(s.model, x, k=1, labels=s.labels)[0][0]
        return {"method": method, "eps": 0.0, "index": top.index, "label": top.label, "probability": top.probability,
                "flipped": False, "image": data_url(to_image(x)), "perturbation": data_url(render.difference(x, x)), "linf": 0.0}
    r = attack(s.model, x, method, progress=False, **options)
    c = int(r.pred[0])
    return {"method": method, "eps": float(eps), "index": c, "label": _name(s, c), "probability": float(r.prob[0]),
            "flipped": bool(r.success[0]), "image": data_url(to_image(r.x_adv[0])),
            "perturbation": data_url(render.difference(x, r.x_adv)), "linf": float(r.linf[0])}
