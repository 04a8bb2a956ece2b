"""ROAD: RemOve And Debias (Rong et al., 2022).

Replacing removed pixels by black or noise leaks the mask's *shape* to the model (a classifier
can recognise the outline of what was deleted). ROAD fills them by *noisy linear imputation*:
each removed pixel equals the weighted mean of its eight neighbours (weight 1/6 for the four
direct ones, 1/12 for the diagonals, renormalised at the border), a sparse linear system over
the removed pixels solved once per image and mask, plus a little Gaussian noise.
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..attribution.common import resolve_target
from ..batching import bytes_per_item, run_batched
from ..hooks import hooks
from ..deprecation import renamed
from ..inputs import check_images
from ..runner import fast
from .curves import SCORES, CurveResult, check_map, class_score, sample_ranks

_NEIGHBOURS = [(-1, 0, 1 / 6), (1, 0, 1 / 6), (0, -1, 1 / 6), (0, 1, 1 / 6),
               (-1, -1, 1 / 12), (-1, 1, 1 / 12), (1, -1, 1 / 12), (1, 1, 1 / 12)]


@functools.lru_cache(maxsize=8)
def _dissection_rank(h: int, w: int, leaf: int = 64) -> np.ndarray:
    """Each pixel's position in a nested-dissection order of the ``h``×``w`` grid.

    Why: the imputation matrix couples a pixel to its eight neighbours, so a one-pixel line splits the
    grid into two halves that do not touch; ordering both halves first and the line last, recursively,
    keeps the sparse factor's fill near ``n log n`` (SuperLU's default COLAMD ordering of a 224² image
    fills 2-3× more, measured). The removed pixels of any mask, taken in this order, inherit the
    separators (a subset of a separator still separates), so one order per image size serves every mask.
    """
    out: list[np.ndarray] = []
    stack = [(0, h, 0, w, False)]
    while stack:  # iterative: a deep recursion on big images
        r0, r1, c0, c1, sep = stack.pop()
        if sep or (r1 - r0) * (c1 - c0) <= leaf:
            rr, cc = np.mgrid[r0:r1, c0:c1]
            out.append((rr * w + cc).ravel())
        elif r1 - r0 >= c1 - c0:
            m = (r0 + r1) // 2  # popped last-in first-out: first half, second half, then the separator row
            stack += [(m, m + 1, c0, c1, True), (m + 1, r1, c0, c1, False), (r0, m, c0, c1, False)]
        else:
            m = (c0 + c1) // 2
            stack += [(r0, r1, m, m + 1, True), (r0, r1, m + 1, c1, False), (r0, r1, c0, m, False)]
    rank = np.empty(h * w, dtype=np.int64)
    rank[np.concatenate(out)] = np.arange(h * w)
    return rank


def _solve(img: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The removed pixels' flat indices and their imputed values ``(len(removed), C)`` (float64).

    The system ``v_i · Σ_j w_ij − Σ_{j removed} w_ij v_j = Σ_{j kept} w_ij x_j`` is symmetric
    (``w_ij = w_ji``) and diagonally dominant with at least one kept neighbour per connected hole, so
    positive definite: factorised without pivoting in the nested-dissection order, all channels at once.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import splu

    c = img.shape[0]
    h, w = m.shape
    removed = np.flatnonzero(m.ravel())
    # unknowns numbered in nested-dissection order: the matrix is built already permuted
    perm = np.argsort(_dissection_rank(h, w)[removed], kind="stable")
    removed_nd = removed[perm]
    ids = np.full(h * w, -1)
    ids[removed_nd] = np.arange(len(removed))
    r, q = np.divmod(removed_nd, w)
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
        rhs[k[~unknown]] += wt * img[:, nb[~unknown]].T  # k has no repeats within one offset
    rows.append(np.arange(len(removed))); cols.append(np.arange(len(removed))); vals.append(diag)
    a = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                   shape=(len(removed), len(removed))).tocsc()
    lu = splu(a, permc_spec="NATURAL", diag_pivot_thresh=0.0, options={"SymmetricMode": True})
    sol = np.empty((len(removed), c))
    sol[perm] = lu.solve(rhs)  # back to the removed pixels' raster order (the noise is drawn in that order)
    return removed, sol


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
    return impute_many([x], [mask], noise_std, [seed])[0]


def impute_many(xs: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], noise_std: float = 0.0,
                seeds: Sequence[int] = (), workers: int | None = None) -> list[torch.Tensor]:
    """:func:`impute` of each ``(xs[k], masks[k])`` with noise seed ``seeds[k]``, the independent sparse
    solves spread over ``workers`` threads (default: torch's thread count; SuperLU releases the GIL).

    >>> x = torch.rand(2, 1, 6, 6, dtype=torch.float64)
    >>> m = torch.zeros(6, 6, dtype=torch.bool); m[2:4, 1:5] = True
    >>> a, b = impute_many([x[0], x[1]], [m, m], 0.0, [0, 0])
    >>> torch.equal(a, impute(x[0], m)), torch.equal(b[:, ~m], x[1][:, ~m])
    (True, True)
    """
    if len(masks) != len(xs) or len(seeds) not in (0, len(xs)):
        raise ValueError(f"impute_many needs one mask (and one seed) per image: {len(xs)} images, "
                         f"{len(masks)} masks, {len(seeds)} seeds")
    seeds = list(seeds) or [0] * len(xs)

    def one(k: int) -> torch.Tensor:
        x = xs[k]
        c, h, w = x.shape
        m = masks[k].cpu().numpy().astype(bool)
        if m.all():
            raise ValueError("cannot impute an image with every pixel removed; keep at least one pixel")
        img = x.detach().cpu().double().numpy().reshape(c, h * w)
        out = img.copy()
        if m.any():
            removed, sol = _solve(img, m)
            if noise_std > 0:
                sol = sol + np.random.default_rng(seeds[k]).normal(0.0, noise_std, sol.shape)
            out[:, removed] = sol.T
        return torch.from_numpy(out.reshape(c, h, w)).to(dtype=x.dtype, device=x.device)

    workers = torch.get_num_threads() if workers is None else workers
    if workers <= 1 or len(xs) <= 1:
        return [one(k) for k in range(len(xs))]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(workers, len(xs))) as pool:
        return list(pool.map(one, range(len(xs))))


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
        jobs, masks, seeds = [], [], []
        ranks = ranks.cpu()
        for f_i, f in enumerate(fr):
            k = int(round(f * h * w))
            for i in range(n):
                mask = torch.zeros(h * w, dtype=torch.bool)
                mask[ranks[i, :k]] = True
                jobs.append(x[i]); masks.append(mask.view(h, w))
                # the noise's seed names the step, not the sample: every image gets its own stream, as it would alone
                seeds.append(seed + 7919 * f_i)
        # the sparse solves dominate ROAD's cost (not the forwards): all of them at once, over torch's threads
        batch = torch.stack([x[i].detach() for i in range(n)] + impute_many(jobs, masks, noise_std, seeds))

        def fn(s: int, e: int) -> torch.Tensor:
            items = torch.arange(s, e, device=x.device)
            sel = tgt if callable(tgt) and not isinstance(tgt, torch.Tensor) else tgt[items % n]
            return class_score(run.model(run.input(batch[s:e])), sel, score)

        with hooks(model), torch.no_grad(), fast(model, x, "forward") as run:  # channels-last in place, restored
            out = run_batched(run.guard(fn), len(batch), batch_size=batch_size, item_bytes=bytes_per_item(x),
                              device=x.device, key=run.key, progress=progress, desc=desc)
        return out.view(1 + len(fr), n).t().detach()

    ranks = torch.sort(a, dim=1, descending=order == "morf", stable=True).indices
    curve = curve_for(ranks, "road")
    fraction = torch.tensor([0.0, *fr], dtype=curve.dtype, device=curve.device)

    def area(c: torch.Tensor) -> torch.Tensor:  # fractions need not be evenly spaced
        return torch.trapezoid(c, fraction, dim=1) / (fraction[-1] - fraction[0])

    if n_random:
        rand = torch.stack([curve_for(sample_ranks(n, h * w, seed + r, x.device), "road (random)") for r in range(n_random)])
        rand_curve, rand_score = rand.mean(0), torch.stack([area(c) for c in rand]).mean(0)
    else:
        rand_curve, rand_score = torch.full_like(curve, float("nan")), torch.full((n,), float("nan"), dtype=curve.dtype,
                                                                                     device=curve.device)
    return CurveResult("road", order, curve, rand_curve, fraction, area(curve), rand_score,
                       {"fractions": fr, "noise_std": noise_std, "score": score, "n_random": n_random, "seed": seed}, seed=seed)
