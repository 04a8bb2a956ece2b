"""K-FAC and EK-FAC curvature for Linear and Conv2d layers (Martens & Grosse 2015; George et al. 2018;
Grosse et al. 2023, "Studying large language model generalization with influence functions").

The curvature is the Gauss–Newton matrix of the mean loss, ``E_i[J_iᵀ H_out,i J_i]``. Writing the
output Hessian as ``B_i B_iᵀ`` turns it into a sum of outer products of *pseudo-gradients*
(one backward pass per column of ``B_i``: exact, no label sampling). Per layer, with inputs
``a`` (a trailing 1 for the bias) and output gradients ``g``, K-FAC approximates the block by
``A ⊗ S`` (``A = E[a aᵀ]``, ``S = E[g gᵀ]``); EK-FAC keeps the eigenvectors of ``A`` and ``S`` but
refits the eigenvalues to the per-example gradients projected on them, which is exact for the
diagonal in that basis. Layers are treated as independent blocks.

Layer inputs and output gradients are read through a backward *rule* of :func:`seethrough.hooks`,
so no hook is ever left on the model.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import hessian, vmap

from ..hooks import hooks
from .grads import Flat, batches


@dataclass
class _Block:
    name: str
    module: nn.Module
    bias: bool
    qa: torch.Tensor | None = None
    qs: torch.Tensor | None = None
    ea: torch.Tensor | None = None
    es: torch.Tensor | None = None
    lam: torch.Tensor | None = None    # EK-FAC eigenvalues (out, in)
    diag: torch.Tensor | None = None   # Gauss–Newton diagonal (out, in)


def layer_params(model: nn.Module, params) -> list[str]:
    """Names of the Linear/Conv2d layers whose parameters are chosen (``params``: None = all of them)."""
    names = []
    for name, m in model.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            if params is not None and not any(name == p or name.startswith(p + ".") or p.startswith(name + ".")
                                              for p in ([params] if isinstance(params, str) else params)):
                continue
            if isinstance(m, nn.Conv2d) and (m.groups != 1 or m.padding_mode != "zeros" or isinstance(m.padding, str)):
                raise ValueError(f"ekfac supports Conv2d with groups=1, zero numeric padding; layer {name!r} has "
                                 f"groups={m.groups}, padding={m.padding!r}")
            names.append(name)
    if not names:
        raise ValueError("ekfac needs at least one Linear or Conv2d layer among the chosen parameters")
    return names


def flat_names(model: nn.Module, layers: list[str]) -> list[str]:
    mods = dict(model.named_modules())
    return [f"{n}.{p}" for n in layers for p in ("weight", "bias") if getattr(mods[n], p, None) is not None]


def _inputs(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Layer inputs as ``(B, in, positions)`` with a row of ones for the bias."""
    if isinstance(module, nn.Conv2d):
        a = F.unfold(x, module.kernel_size, module.dilation, module.padding, module.stride)
    else:
        a = x.reshape(x.shape[0], -1, 1) if x.dim() == 2 else x.transpose(1, -1).reshape(x.shape[0], x.shape[-1], -1)
    if module.bias is not None:
        a = torch.cat([a, torch.ones_like(a[:, :1])], dim=1)
    return a


def _outgrads(module: nn.Module, g: torch.Tensor) -> torch.Tensor:
    return g.reshape(g.shape[0], g.shape[1], -1) if isinstance(module, nn.Conv2d) else \
        (g.reshape(g.shape[0], -1, 1) if g.dim() == 2 else g.transpose(1, -1).reshape(g.shape[0], g.shape[-1], -1))


def _record(store: dict):
    def rule(module, x, y, grad_y):
        store.setdefault(module, []).append((x.detach(), grad_y.detach()))
        if isinstance(module, nn.Conv2d):
            return torch.nn.grad.conv2d_input(x.shape, module.weight.to(grad_y.dtype), grad_y, module.stride,
                                              module.padding, module.dilation, module.groups)
        return grad_y @ module.weight.to(grad_y.dtype)

    return rule


def _pseudo(flat: Flat, x: torch.Tensor, y: torch.Tensor, blocks: list[_Block]):
    """Yield, for one batch, per layer ``(a (B, in, T), [g_c (B, out, T) for each pseudo-gradient c])``."""
    model = flat.model
    mods = {b.module for b in blocks}
    store: dict = {}
    with hooks(model, rules={(lambda n, m, mods=mods: m in mods): _record(store)}):
        # The rule reads module.weight after functional_call has put the real parameter back: theta is a copy
        # of those same values, so the input gradients it passes on are the functional copy's.
        xx = x.to(flat.dtype).requires_grad_()
        out = flat.output(flat.theta, xx)
        h = vmap(hessian(lambda o, t: flat.loss(o.unsqueeze(0), t.unsqueeze(0)).sum()))(out.detach(), y)
        evals, evecs = torch.linalg.eigh(h)
        roots = evecs * evals.clamp_min(0).sqrt().unsqueeze(1)  # (B, C, C): H_out = R Rᵀ
        per = {b.module: [] for b in blocks}
        for c in range(roots.shape[-1]):
            store.clear()
            torch.autograd.grad(out, xx, roots[:, :, c], retain_graph=c + 1 < roots.shape[-1])
            for b in blocks:
                calls = store.get(b.module, [])
                if len(calls) != 1:
                    raise ValueError(f"ekfac needs each layer called once per forward; {b.name!r} was called {len(calls)} times")
                per[b.module].append(calls[0])
    return {b.module: (_inputs(b.module, per[b.module][0][0]), [_outgrads(b.module, g) for _, g in per[b.module]])
            for b in blocks}


def fit(flat: Flat, layers: list[str], x: torch.Tensor, y: torch.Tensor, batch: int = 256, progress=None) -> list[_Block]:
    """Two passes over the training data: the Kronecker factors, then the EK-FAC eigenvalues and the diagonal."""
    mods = dict(flat.model.named_modules())
    blocks = [_Block(n, mods[n], mods[n].bias is not None) for n in layers]
    n = len(x)
    sums_a: dict = {}
    sums_s: dict = {}
    for a0, a1 in batches(n, batch):
        for b, (a, gs) in _pseudo(flat, x[a0:a1], y[a0:a1], blocks).items():
            sums_a[b] = sums_a.get(b, 0) + torch.einsum("bit,bjt->ij", a, a) / a.shape[-1]
            sums_s[b] = sums_s.get(b, 0) + sum(torch.einsum("bit,bjt->ij", g, g) for g in gs)
    for b in blocks:
        b.ea, b.qa = torch.linalg.eigh(sums_a[b.module] / n)
        b.es, b.qs = torch.linalg.eigh(sums_s[b.module] / n)
        b.lam = torch.zeros(len(b.es), len(b.ea), dtype=flat.dtype, device=b.es.device)
        b.diag = torch.zeros_like(b.lam)
    for a0, a1 in batches(n, batch):
        got = _pseudo(flat, x[a0:a1], y[a0:a1], blocks)
        for b in blocks:
            a, gs = got[b.module]
            for g in gs:
                grad_w = torch.einsum("bot,bit->boi", g, a)  # per-example gradient of [W | b]
                b.lam += (b.qs.T @ grad_w @ b.qa).pow(2).sum(0) / n
                b.diag += grad_w.pow(2).sum(0) / n
    return blocks


def to_blocks(blocks: list[_Block], v: torch.Tensor) -> list[torch.Tensor]:
    """Split flat vectors ``(..., P)`` (weight then bias per layer) into ``(..., out, in[+1])`` matrices."""
    out, start = [], 0
    for b in blocks:
        w = b.module.weight
        o, i = w.shape[0], w[0].numel()
        m = v[..., start:start + o * i].reshape(*v.shape[:-1], o, i)
        start += o * i
        if b.bias:
            m = torch.cat([m, v[..., start:start + o].unsqueeze(-1)], dim=-1)
            start += o
        out.append(m)
    return out


def from_blocks(blocks: list[_Block], ms: list[torch.Tensor]) -> torch.Tensor:
    parts = []
    for b, m in zip(blocks, ms):
        if b.bias:
            parts += [m[..., :-1].flatten(-2), m[..., -1]]
        else:
            parts.append(m.flatten(-2))
    return torch.cat(parts, dim=-1)


def solve(blocks: list[_Block], v: torch.Tensor, damping: float, kind: str = "ekfac") -> torch.Tensor:
    """``(G + damping·I)⁻¹ v`` with ``G`` approximated block-wise by ``kind`` ('ekfac', 'kfac', 'diagonal')."""
    out = []
    for b, m in zip(blocks, to_blocks(blocks, v)):
        if kind == "diagonal":
            out.append(m / (b.diag + damping))
            continue
        lam = b.lam if kind == "ekfac" else b.es[:, None].clamp_min(0) * b.ea[None, :].clamp_min(0)
        out.append(b.qs @ ((b.qs.T @ m @ b.qa) / (lam + damping)) @ b.qa.T)
    return from_blocks(blocks, out)
