"""Inverse-Hessian-vector products: explicit (exact), conjugate gradients, LiSSA.

All solve ``(H + damping·I) s = v`` for the Hessian ``H`` of the *mean* training loss.
"""
from __future__ import annotations

from typing import Callable

import torch

#: "small" for the exact method: the explicit float64 Hessian of 5,000 parameters is 200 MB.
EXACT_MAX_PARAMS = 5000

Hvp = Callable[[torch.Tensor], torch.Tensor]


def damping_hint(min_eig: float, damping: float = 0.0) -> str:
    """A damping that makes ``H + damping·I`` positive definite when ``min_eig`` bounds ``H``'s smallest
    eigenvalue from above: twice the shortfall, never the value that just failed.

    >>> damping_hint(-0.004, 0.01), damping_hint(0.0, 0.0)
    ('damping=0.02', 'damping=0.001')
    """
    return f"damping={max(1e-3, 2 * abs(min_eig), 2 * damping):.3g}"


def exact_inverse(h: torch.Tensor, damping: float) -> torch.Tensor:
    """``(H + damping·I)⁻¹`` via the eigen-decomposition; refuses an indefinite matrix.

    >>> exact_inverse(torch.eye(2, dtype=torch.float64) * 2, 0.0)
    tensor([[0.5000, 0.0000],
            [0.0000, 0.5000]], dtype=torch.float64)
    """
    evals, evecs = torch.linalg.eigh(h)
    lo = evals.min().item()
    scale = max(evals.abs().max().item(), 1e-30)
    if lo + damping <= 1e-10 * scale:
        raise ValueError(f"the Hessian is not positive definite (smallest eigenvalue {lo:.3g}) and damping={damping:g} "
                         f"does not fix it: influence needs an invertible Hessian; try {damping_hint(lo, damping)}")
    return (evecs / (evals + damping)) @ evecs.T


def cg(hvp: Hvp, v: torch.Tensor, damping: float, *, tol: float = 1e-10, max_iter: int | None = None) -> torch.Tensor:
    """Conjugate gradients for ``(H + damping·I) s = v``, one independent solve per row of ``v`` ``(k, P)``
    (all rows share each Hessian-vector pass); stops when every relative residual is below ``tol``.

    Negative curvature along a search direction means the damped Hessian is indefinite: refused.

    >>> a = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    >>> s = cg(lambda u: u @ a, torch.tensor([[1.0, 0.0]], dtype=torch.float64), 0.0)
    >>> torch.allclose(s @ a, torch.tensor([[1.0, 0.0]], dtype=torch.float64))
    True
    """
    max_iter = max_iter or 10 * v.shape[-1]
    s = torch.zeros_like(v)
    r = v.clone()
    p = r.clone()
    rr = (r * r).sum(1)
    v_norm = v.norm(dim=1).clamp_min(1e-300)
    for _ in range(max_iter):
        live = rr.sqrt() > tol * v_norm
        if not live.any():
            break
        hp = hvp(p) + damping * p
        curv = (p * hp).sum(1)
        if (curv[live] <= 0).any():
            # pᵀ(H + λI)p / pᵀp ≤ 0 bounds H's smallest eigenvalue from above by that quotient − λ: the
            # suggestion must exceed the damping that just failed (it used to be a fixed 0.01).
            rayleigh = (curv / (p * p).sum(1).clamp_min(1e-300))[live].min().item()
            raise ValueError(f"the Hessian has negative curvature (smallest eigenvalue at most {rayleigh - damping:.3g}) "
                             f"and damping={damping:g} does not fix it: influence needs an invertible, positive "
                             f"definite Hessian; try {damping_hint(rayleigh - damping, damping)} or more")
        alpha = torch.where(live, rr / curv.where(live, torch.ones_like(curv)), torch.zeros_like(rr))
        s += alpha[:, None] * p
        r -= alpha[:, None] * hp
        rr_new = (r * r).sum(1)
        p = r + (rr_new / rr.clamp_min(1e-300))[:, None] * p
        rr = rr_new
    return s


def top_eigenvalue(hvp: Hvp, n: int, dtype: torch.dtype, *, iters: int = 30, seed: int = 0,
                   device: torch.device | str = "cpu") -> float:
    """Largest |eigenvalue| by power iteration (LiSSA's scale must exceed it); the start vector is drawn on the
    CPU (the same on every device) and moved to ``device``, where the parameters are.

    >>> round(top_eigenvalue(lambda u: u * torch.tensor([1.0, -3.0, 2.0], dtype=torch.float64), 3, torch.float64), 6)
    3.0
    """
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(n, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
    u /= u.norm()
    lam = torch.zeros((), dtype=dtype, device=device)
    for _ in range(iters):
        w = hvp(u)
        lam = u @ w  # read once after the loop: a .item() per iteration is a host sync per step on a GPU
        u = w / w.norm().clamp_min(1e-300)
    return abs(float(lam))


def lissa(hvp: Hvp, v: torch.Tensor, damping: float, *, scale: float, depth: int) -> torch.Tensor:
    """LiSSA on the rows of ``v`` ``(k, P)`` (Agarwal et al. 2017, as used by Koh & Liang): ``s_j = v + (I − (H+λI)/scale) s_{j−1}``, then ``s/scale``.

    Converges when ``scale`` exceeds the largest eigenvalue of ``H + λI``; the error after
    ``depth`` steps shrinks like ``(1 − λ_min/scale)^depth``.

    >>> a = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    >>> s = lissa(lambda u: u @ a, torch.tensor([[1.0, 0.0]], dtype=torch.float64), 0.0, scale=4.0, depth=200)
    >>> torch.allclose(s @ a, torch.tensor([[1.0, 0.0]], dtype=torch.float64))
    True
    """
    s = v.clone()
    for _ in range(depth):
        s = v + s - (hvp(s) + damping * s) / scale
    # Checked once: a diverging iterate overflows to inf, then nan, and stays non-finite (a check per step would
    # be a host sync per step on a GPU).
    if not torch.isfinite(s).all():
        raise ValueError("LiSSA diverged: the scale is below the largest Hessian eigenvalue or the Hessian is "
                         "indefinite; raise lissa_scale or add damping")
    return s / scale
