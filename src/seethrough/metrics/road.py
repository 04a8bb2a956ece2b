"""ROAD: RemOve And Debias (Rong et al., 2022).

Replacing removed pixels by black or noise leaks the mask's *shape* to the model (a classifier
can recognise the outline of what was deleted). ROAD fills them by *noisy linear imputation*:
each removed pixel equals the weighted mean of its eight neighbours (weight 1/6 for the four
direct ones, 1/12 for the diagonals, renormalised at the border), a sparse linear system over
the removed pixels solved once per image and mask, plus a little Gaussian noise.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..attribution.common import resolve_target
from ..batching import bytes_per_item, model_key, run_batched
from ..hooks import hooks
from ..deprecation import renamed
from ..inputs import check_images
from .curves import SCORES, CurveResult, check_map, class_score, sample_ranks

_NEIGHBOURS = [(-1, 0, 1 / 6), (1, 0, 1 / 6), (0, -1, 1 / 6), (0, 1, 1 / 6),
               (-1, -1, 1 / 12), (-1, 1, 1 / 12), (1, -1, 1 / 12), (1, 1, 1 / 12)]


@renamed(noise="noise_std")
def impute(x: torch.Tensor, mask: torch.Tensor, noise_std: float = 0.0, seed: int = 0) -> torch.Tensor:
    """Linear imputation of the pixels where ``mask`` is True, for one image ``(C, H, W)``.

    Solves ``v_i · Σ_j w_ij = Σ_j w_ij v_j`` for every masked pixel ``i`` (neighbours ``j`` within
    the image); unmasked pixels are kept. ``noise_std`` adds N(0, noise_std²) to the imputed values (absolute, pixel units).

    >>> x = torch.full((1, 4, 4), 0.3)
    >>> mask = torch.zeros(4, 4, dtype=torch.bool); mask[1:3, 1:3] = True
    >>> torch.allclose(impute(x, mask), x)
    True
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import spsolve

    c, h, w = x.shape
    m = mask.cpu().numpy().astype(bool)
    if m.all():
        raise ValueError("cannot impute an image with every pixel removed; keep at least one pixel")
    img = x.detach().cpu().double().numpy().reshape(c, h * w)
    ids = np.full(h * w, -1)
    removed = np.flatnonzero(m.ravel())
    ids[removed] = np.arange(len(removed))
    r, q = np.divmod(removed, w)
    rows, cols, vals = [], [], []
    diag = np.zeros(len(removed))
    rhs = np.zeros((len(removed), c))
    for dy, dx, wt in _NEIGHBOURS:
        rr, qq = r + dy, q + dx
        ok = (rr >= 0) & (rr < h) & (qq >= 0) & (qq < w)
        k = np.flatnonzero(ok)
        nb = rr[k] * w + qq[k]
        diag[k] += wt
        unknown = ids[nb] >= 0
        rows.append(k[unknown]); cols.append(ids[nb[unknown]]); vals.append(np.full(unknown.sum(), -wt))
        rhs[k[~unknown]] += wt * img[:, nb[~unknown]].T
    rows.append(np.arange(len(removed))); cols.append(np.arange(len(removed))); vals.append(diag)
    a = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                   shape=(len(removed), len(removed))).tocsc()
    sol = spsolve(a, rhs).reshape(len(removed), c)
    if noise_std > 0:
        sol = sol + np.random.default_rng(seed).normal(0.0, noise_std, sol.shape)
    out = img.copy()
    out[:, removed] = sol.T
    return torch.from_numpy(out.reshape(c, h, w)).to(dtype=x.dtype, device=x.device)


@renamed(noise="noise_std")
def road(model: nn.Module, x: torch.Tensor, attribution: torch.Tensor, target: Any = None, *,
         order: str = "morf", fractions: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
         noise_std: float = 0.01, score: str = "probability", n_random: int = 1, seed: int = 0,
         batch_size: int | str = "auto", progress: bool = True) -> CurveResult:
    """The class score after imputing the top (``"morf"``) or bottom (``"lerf"``) ``fractions`` of
    pixels, with the random-ranking curve. ``score`` is the curve's AUC over [0, 1] including the
    untouched image (MoRF: lower is better; LeRF: higher is better).

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> x, y = see.zoo.digits("test")
    >>> a = see.attribute(model, x[:1], "grad-x-input", target=y[:1])
    >>> r = see.metrics.road(model, x[:1], a, y[:1], fractions=(0.2, 0.5), progress=False)
    >>> tuple(r.curve.shape)
    (1, 3)
    """
    from ..boundary import image_only

    model = image_only(model, 'ROAD curves (remove and debias, over pixels)')  # rows and tokens: one line, not a traceback
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_images(x, model=model)
    a = check_map(x, attribution).flatten(1)
    if order not in ("morf", "lerf"):
        raise ValueError(f"order must be 'morf' or 'lerf', got {order!r}")
    if score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(map(repr, SCORES))}, got {score!r}")
    fr = [float(f) for f in fractions]
    if not fr or any(not 0 < f < 1 for f in fr):
        raise ValueError(f"fractions must be a non-empty list of numbers strictly between 0 and 1, got {fractions!r}")
    if isinstance(noise_std, bool) or not isinstance(noise_std, (int, float)) or not noise_std >= 0:
        raise ValueError(f"noise_std must be a number >= 0 (std of the imputation noise, in pixel units), got {noise_std!r}")
    n, (h, w) = len(x), x.shape[-2:]
    idx = resolve_target(model, x, target)
    tgt = target if idx is None else idx

    def curve_for(ranks: torch.Tensor, desc: str) -> torch.Tensor:
        imgs = [x[i].detach() for i in range(n)]
        for f_i, f in enumerate(fr):
            k = int(round(f * h * w))
            for i in range(n):
                mask = torch.zeros(h * w, dtype=torch.bool)
                mask[ranks[i, :k].cpu()] = True
                # the noise's seed names the step, not the sample: every image gets its own stream, as it would alone
                imgs.append(impute(x[i], mask.view(h, w), noise_std, seed + 7919 * f_i))
        batch = torch.stack(imgs)  # (1 + F) blocks of N images

        def fn(s: int, e: int) -> torch.Tensor:
            with torch.no_grad():
                items = torch.arange(s, e)
                sel = tgt if callable(tgt) and not isinstance(tgt, torch.Tensor) else tgt[items % n]
                return class_score(model(batch[s:e]), sel, score)

        with hooks(model):
            out = run_batched(fn, len(batch), batch_size=batch_size, item_bytes=bytes_per_item(x),
                              key=model_key(model, x, "forward"), progress=progress, desc=desc)
        return out.view(1 + len(fr), n).t().detach()

    ranks = torch.sort(a, dim=1, descending=order == "morf", stable=True).indices
    curve = curve_for(ranks, "road")
    fraction = torch.tensor([0.0, *fr], dtype=curve.dtype)

    def area(c: torch.Tensor) -> torch.Tensor:  # fractions need not be evenly spaced
        return torch.trapezoid(c, fraction, dim=1) / (fraction[-1] - fraction[0])

    if n_random:
        rand = torch.stack([curve_for(sample_ranks(n, h * w, seed + r, x.device), "road (random)") for r in range(n_random)])
        rand_curve, rand_score = rand.mean(0), torch.stack([area(c) for c in rand]).mean(0)
    else:
        rand_curve, rand_score = torch.full_like(curve, float("nan")), torch.full((n,), float("nan"), dtype=curve.dtype)
    return CurveResult("road", order, curve, rand_curve, fraction, area(curve), rand_score,
                       {"fractions": fr, "noise_std": noise_std, "score": score, "n_random": n_random, "seed": seed}, seed=seed)
