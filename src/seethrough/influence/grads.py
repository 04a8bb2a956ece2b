"""Flat parameter vectors, per-example gradients, Hessian-vector products and the exact Hessian.

Everything goes through ``torch.func.functional_call`` on *copies* of the chosen parameters,
so the user's model is never written to; the model is only put in eval mode inside
:func:`seethrough.hooks` (which restores it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, jvp, vmap

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy(output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example cross-entropy, the default loss.

    >>> cross_entropy(torch.zeros(2, 4), torch.tensor([0, 3])).tolist() == [torch.log(torch.tensor(4.)).item()] * 2
    True
    """
    return F.cross_entropy(output, y, reduction="none")


@dataclass
class Flat:
    """The chosen parameters of a model as one flat vector, and a loss over that vector."""

    model: nn.Module
    names: list[str]
    shapes: list[torch.Size]
    theta: torch.Tensor
    fixed: dict[str, torch.Tensor]
    loss: Loss
    dtype: torch.dtype

    @property
    def size(self) -> int:
        return self.theta.numel()

    def unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        out, start = {}, 0
        for name, shape in zip(self.names, self.shapes):
            n = shape.numel()
            out[name] = theta[start:start + n].view(shape)
            start += n
        return out

    def output(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.model, {**self.fixed, **self.unflatten(theta)}, (x.to(self.dtype),))

    def losses(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss(self.output(theta, x), y)

    def mean_loss(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.losses(theta, x, y).mean()

    def per_example(self, x: torch.Tensor, y: torch.Tensor, theta: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, P)`` gradients of each example's loss."""
        theta = self.theta if theta is None else theta

        def one(t, xi, yi):
            return self.losses(t, xi.unsqueeze(0), yi.unsqueeze(0)).sum()

        return vmap(grad(one), in_dims=(None, 0, 0))(theta, x, y)


def select(model: nn.Module, params: Sequence[str] | None, loss: Loss, dtype: torch.dtype) -> Flat:
    """Build a :class:`Flat` over ``params`` (parameter names or module-name prefixes; None: every trainable one)."""
    named = dict(model.named_parameters())
    if params is None:
        names = [n for n, p in named.items() if p.requires_grad]
    else:
        if isinstance(params, str):
            params = [params]
        names = []
        for want in params:
            hits = [n for n in named if n == want or n.startswith(want + ".")]
            if not hits:
                raise ValueError(f"params: {want!r} names no parameter or module of the model; parameters include "
                                 f"{', '.join(list(named)[:6])}")
            names += [h for h in hits if h not in names]
    if not names:
        raise ValueError("the model has no trainable parameters to compute influence over; pass params=[...]")
    chosen = [named[n].detach().to(dtype) for n in names]
    fixed = {n: p.detach().to(dtype) for n, p in named.items() if n not in names}
    fixed.update({n: b.detach().to(dtype) if b.is_floating_point() else b for n, b in model.named_buffers()})
    theta = torch.cat([p.reshape(-1) for p in chosen]).clone()
    return Flat(model, names, [p.shape for p in chosen], theta, fixed, loss, dtype)


def check_loss(flat: Flat, x: torch.Tensor, y: torch.Tensor) -> None:
    """Refuse a loss that is not one differentiable value per example."""
    theta = flat.theta.clone().requires_grad_()
    out = flat.losses(theta, x[:2], y[:2])
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        raise ValueError("the loss must return a float tensor of one value per example (reduction='none')")
    if out.shape != (min(2, len(x)),):
        raise ValueError(f"the loss must return one value per example (reduction='none'), got shape {tuple(out.shape)}")
    if not out.requires_grad:
        raise ValueError("the loss is not differentiable in the parameters (it returned a tensor without a gradient); "
                         "use a smooth loss such as cross-entropy, not accuracy or argmax")


def batches(n: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(s + size, n)) for s in range(0, n, size)]


def hvp(flat: Flat, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """``H v`` for the Hessian of the mean training loss (forward-over-reverse, summed over batches);
    ``v`` may be one vector ``(P,)`` or several rows ``(k, P)``, done in one vmapped pass."""
    n = len(x)
    out = torch.zeros_like(v)
    for a, b in batches(n, batch):
        g = lambda t: grad(flat.mean_loss)(t, x[a:b], y[a:b])  # noqa: E731
        one = lambda u: jvp(g, (flat.theta,), (u,))[1]  # noqa: E731
        out += (one(v) if v.dim() == 1 else vmap(one)(v)) * ((b - a) / n)
    return out


def hessian(flat: Flat, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The explicit ``(P, P)`` Hessian of the mean training loss, summed over data batches sized so
    that one batch's forward-over-reverse pass holds about 2**26 values."""
    from torch.func import hessian as _hessian

    n, p = len(x), flat.size
    per = max(1, min(n, 2**26 // max(p * x[0].numel(), 1)))
    out = torch.zeros(p, p, dtype=flat.dtype, device=flat.theta.device)
    for a, b in batches(n, per):
        out += _hessian(flat.mean_loss)(flat.theta, x[a:b], y[a:b]) * ((b - a) / n)
    return (out + out.T) / 2
