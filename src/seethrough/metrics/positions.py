"""Deletion and insertion over the features of tabular rows and the tokens of token ids.

The image curves (:mod:`.curves`) move pixels; here a unit is one feature of a row or one token of
a sequence, ranked by an ``(N, F)`` / ``(N, L)`` attribution. What "removed" means comes from the
boundary (docs/boundary.md): a feature takes the **background mean** (or ``baseline=`` a number or a
row), a token the ``mask_id`` (else ``pad_id``, or ``baseline=<id>``); padding is never changed.
Every ``(sample, step)`` copy is built lazily inside :func:`run_batched` and scored through the
boundary (each copy gets its sample's extra arguments, e.g. the attention mask).
"""
from __future__ import annotations

import math
from numbers import Real
from typing import Any

import torch
from torch import nn

from ..batching import bytes_per_item, model_key, run_batched
from ..boundary import Boundary, as_boundary, token_mask
from ..hooks import hooks
from .curves import SCORES, CurveResult, auc, sample_ranks


def on_positions(model: nn.Module | Boundary, x: Any) -> bool:
    """True when ``model``/``x`` are tabular rows or token ids (the curves of this module), False for images.

    >>> on_positions(torch.nn.Linear(3, 2), torch.zeros(4, 3)), on_positions(torch.nn.Conv2d(1, 1, 3), torch.zeros(1, 1, 8, 8))
    (True, False)
    """
    if not isinstance(model, (nn.Module, Boundary)) or not isinstance(x, torch.Tensor):
        return False
    return as_boundary(model, x).kind in ("tabular", "tokens")


def removed(b: Boundary, x: torch.Tensor, baseline: Any) -> torch.Tensor:
    """What a removed feature or token becomes, shaped like ``x``: the background mean (rows) or the mask/pad id.

    >>> b = as_boundary(torch.nn.Linear(2, 1), torch.zeros(1, 2), background=torch.tensor([[0., 2.], [2., 4.]]))
    >>> removed(b, torch.zeros(3, 2), None)[0].tolist()
    [1.0, 3.0]
    """
    if b.kind == "tabular":
        if baseline is None:
            if b.background is None:
                raise ValueError("deletion/insertion on tabular rows replace a feature by the background mean: give "
                                 "background=(M, features) rows (a boundary field), or baseline= a number or one row")
            row = b.background.mean(0)
        elif isinstance(baseline, Real) and not isinstance(baseline, bool):
            row = torch.full((x.shape[1],), float(baseline))
        elif isinstance(baseline, torch.Tensor) and baseline.shape in ((x.shape[1],), (1, x.shape[1])):
            row = baseline.reshape(-1)
        else:
            raise ValueError(f"baseline on tabular rows must be None (the background mean), a number or a "
                             f"({x.shape[1]},) row, got {baseline!r}")
        return row.to(device=x.device, dtype=x.dtype).expand_as(x)
    ident = (b.mask_id if b.mask_id is not None else b.pad_id) if baseline is None else baseline
    if ident is None:
        raise ValueError("deletion/insertion on token ids replace a token by an id: give mask_id= or pad_id= "
                         "(boundary fields), or baseline=<id>")
    if isinstance(ident, bool) or not isinstance(ident, int):
        raise ValueError(f"baseline on token ids must be one token id (an int), got {ident!r}")
    return torch.full_like(x, ident)


def position_curve(name: str, model: nn.Module | Boundary, x: torch.Tensor, attribution: torch.Tensor, target: Any,
                   *, insert: bool, baseline: Any = None, steps: int | None = None, score: str = "probability",
                   n_random: int = 1, seed: int = 0, batch_size: int | str = "auto",
                   progress: bool = True) -> CurveResult:
    """Deletion (``insert=False``: from ``x`` towards the removed values) or insertion (from the removed values
    towards ``x``), most relevant unit first, with ``steps`` steps (default: one unit per step).

    >>> net = torch.nn.Linear(3, 2)
    >>> with torch.no_grad():
    ...     _ = net.weight.copy_(torch.tensor([[0., 0, 0], [3., 1, 0]])); _ = net.bias.zero_()
    >>> b = as_boundary(net, torch.zeros(1, 3), background=torch.zeros(5, 3))
    >>> r = position_curve("deletion", b, torch.ones(1, 3), torch.tensor([[3., 1, 0]]), 1, insert=False,
    ...                    score="logit", progress=False)
    >>> r.curve.tolist()
    [[4.0, 1.0, 0.0, 0.0]]
    """
    from ..attribution.masking import clean_forward, read_scores

    b = as_boundary(model, x)
    b.check(x)
    n, size = x.shape
    if not isinstance(attribution, torch.Tensor) or tuple(attribution.shape) != (n, size):
        got = tuple(attribution.shape) if isinstance(attribution, torch.Tensor) else type(attribution).__name__
        raise ValueError(f"attribution must be one value per {'feature' if b.kind == 'tabular' else 'token'}, "
                         f"shape {(n, size)}, got {got}")
    if not torch.isfinite(attribution).all():
        raise ValueError("attribution contains NaN or infinite values")
    if score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(map(repr, SCORES))}, got {score!r}")
    if isinstance(n_random, bool) or not isinstance(n_random, int) or n_random < 0:
        raise ValueError(f"n_random must be an int >= 0, got {n_random!r}")
    steps = size if steps is None else steps
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= size:
        raise ValueError(f"steps must be an int from 1 to {size} (the units), got {steps!r}")
    gone = removed(b, x, baseline)
    real = token_mask(b, x) if b.kind == "tokens" else torch.ones_like(x, dtype=torch.bool)
    start, end = (gone, x) if insert else (x, gone)
    idx, _ = clean_forward(b, x, target)
    per_step = torch.tensor([math.ceil(k * size / steps) for k in range(steps + 1)], device=x.device)
    pick = "probability" if score == "probability" else "logit"

    def curve(ranks: torch.Tensor, desc: str) -> torch.Tensor:
        ranks = ranks.to(x.device)  # once: every batch's masks are then made on x's device, no host copy per batch

        def fn(a: int, c: int) -> torch.Tensor:
            items = torch.arange(a, c, device=x.device)
            i, k = items // (steps + 1), items % (steps + 1)
            i_d = i
            chosen = torch.arange(size, device=x.device)[None] < per_step[k][:, None]
            m = torch.zeros(len(items), size, dtype=torch.bool, device=x.device).scatter_(1, ranks[i], chosen)
            batch = torch.where(m & real[i_d], end[i_d], start[i_d])
            out = b.call(batch, i_d)
            return read_scores(b, out, target, None if idx is None else idx[i_d], None if idx is None else pick)

        with hooks(b.model), torch.no_grad():
            out = run_batched(fn, n * (steps + 1), batch_size=batch_size, item_bytes=bytes_per_item(x), device=x.device,
                              key=model_key(b.model, x, f"forward-{b.kind}"), progress=progress, desc=desc)
        return out.view(n, steps + 1).detach()

    # padding ranks last (and is never changed): the curve walks over the real tokens first
    values = attribution.detach().double().masked_fill(~real, -math.inf)
    ranks = torch.sort(values, dim=1, descending=True, stable=True).indices
    main = curve(ranks, name)
    if n_random:
        rand = torch.stack([curve(sample_ranks(n, size, seed + r, x.device), f"{name} (random)") for r in range(n_random)])
        rand_curve, rand_score = rand.mean(0), torch.stack([auc(c) for c in rand]).mean(0)
    else:
        rand_curve = torch.full_like(main, float("nan"))
        rand_score = torch.full((n,), float("nan"), dtype=main.dtype, device=main.device)
    fraction = torch.tensor([math.ceil(k * size / steps) / size for k in range(steps + 1)], dtype=main.dtype,
                            device=main.device)
    return CurveResult(name, "morf", main, rand_curve, fraction, auc(main), rand_score,
                       {"steps": steps, "score": score, "n_random": n_random, "seed": seed, "kind": b.kind}, seed=seed)
