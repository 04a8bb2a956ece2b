"""Weight health: norms, high-frequency energy, all-zero and near-duplicate filters.

Noisy (high-frequency) conv filters hint at under-training or weak regularisation;
all-zero filters are wasted capacity; near-duplicates are redundant units.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import torch
from torch import nn

from ..results import ResultProtocol, records
from ..layers import resolve_layers


@dataclass(frozen=True)
class WeightHealth(ResultProtocol):
    """Health of one layer's weight; one row per filter / output unit is one "filter"."""

    name: str
    kind: str
    shape: tuple[int, ...]
    norm: float  # Frobenius norm of the whole weight
    rms: float
    filter_norms: torch.Tensor  # (out,)
    high_freq: float | None  # mean fraction of spectral energy above 1/4 cycle/pixel; None for 1×1 kernels / dense layers
    zero_filters: int
    duplicate_pairs: int  # pairs of filters with cosine similarity above the threshold
    options: dict = field(default_factory=dict)
    seed: int | None = None


def high_frequency_energy(w: torch.Tensor, cutoff: float = 0.25, size: int = 16) -> torch.Tensor:
    """Per 2-D kernel of ``w (..., kh, kw)``: the fraction of its spectral energy at spatial
    frequencies of radius ≥ ``cutoff`` cycles/pixel (zero-padded to ``size``×``size``).

    White noise scores about 0.8 (the high band's share of the frequency square), a smooth
    blob close to 0. All-zero kernels score 0.

    >>> k = torch.ones(3, 3)
    >>> high_frequency_energy(k).item() < 0.3 < high_frequency_energy(torch.tensor([[1., -1, 1], [-1, 1, -1], [1, -1, 1]])).item()
    True
    """
    kh, kw = w.shape[-2:]
    size = max(size, kh, kw)
    spec = torch.fft.fft2(w.detach().to(torch.float64), s=(size, size)).abs().pow(2)
    f = torch.fft.fftfreq(size, dtype=torch.float64)
    radius = (f[:, None] ** 2 + f[None, :] ** 2).sqrt()
    high = (spec * (radius >= cutoff)).sum((-2, -1))
    total = spec.sum((-2, -1))
    return torch.where(total > 0, high / total.clamp_min(1e-300), torch.zeros_like(total))


def _health(name: str, module: nn.Module, w: torch.Tensor, dup: float, eps: float) -> WeightHealth:
    w = w.detach().to(torch.float64)
    rows = w.reshape(w.shape[0], -1)
    norms = rows.norm(dim=1)
    zero = norms <= eps
    unit = rows[~zero] / norms[~zero, None]
    cos = unit @ unit.T
    dups = int(torch.triu(cos > dup, diagonal=1).sum())
    spatial = w.dim() >= 4 and min(w.shape[-2:]) >= 2
    return WeightHealth(
        name=name, kind=type(module).__name__, shape=tuple(w.shape), norm=w.norm().item(),
        rms=w.pow(2).mean().sqrt().item(), filter_norms=norms.to(torch.float32),
        high_freq=high_frequency_energy(w[~zero]).mean().item() if spatial and (~zero).any() else None,
        zero_filters=int(zero.sum()), duplicate_pairs=dups,
    )


@records("model")
def weight_health(
    model: nn.Module, layers: str | Iterable[str] | None = None, *, duplicate: float = 0.99, eps: float = 0.0
) -> list[WeightHealth]:
    """Weight health of every layer with a weight matrix/kernel (conv, linear), or of ``layers``.

    A filter is all-zero when its norm is ≤ ``eps``; two filters are near-duplicates when
    their cosine similarity exceeds ``duplicate``.

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> [(h.name, h.zero_filters) for h in see.weight_health(model)][:2]
    [('conv1', 0), ('conv2', 0)]
    """
    if not -1.0 <= duplicate <= 1.0:
        raise ValueError(f"duplicate is a cosine-similarity threshold in [-1, 1], got {duplicate}")
    if layers is None:
        chosen = {n: m for n, m in model.named_modules() if n and isinstance(getattr(m, "weight", None), torch.Tensor)
                  and m.weight.dim() >= 2}
    else:
        chosen = resolve_layers(model, layers)
    out = []
    for n, m in chosen.items():
        w = getattr(m, "weight", None)
        if not isinstance(w, torch.Tensor) or w.dim() < 2:
            raise ValueError(f"layer {n!r} ({type(m).__name__}) has no weight matrix or kernel; choose a conv or linear layer")
        out.append(_health(n, m, w, duplicate, eps))
    return out
