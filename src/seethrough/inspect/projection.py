"""Projecting one hidden unit back to the input: Zeiler & Fergus's deconvnet view of top-k examples,
or the same view with guided back-propagation or the plain gradient."""
from __future__ import annotations

import torch
from torch import nn

from ..batching import run_batched
from ..hooks import hooks
from ..inputs import check_images
from ..layers import resolve_layer


def _unit_score(act: torch.Tensor, units: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
    rows = torch.arange(act.shape[0], device=act.device)
    if positions is None:
        return act.reshape(act.shape[0], act.shape[1], -1)[rows, units].sum(1)
    return act[rows, units, positions[:, 0], positions[:, 1]]


PROJECTIONS = ("deconvnet", "guided-backprop", "gradient")


def project(
    model: nn.Module,
    x: torch.Tensor,
    layer: str,
    units: torch.Tensor | int,
    positions: torch.Tensor | None = None,
    *,
    method: str = "auto",
) -> torch.Tensor:
    """The input-space projection ``(N, C, H, W)`` of each sample's unit ``units[i]`` of ``layer``
    (at ``positions[i]`` = (row, col) for a conv layer; the whole map when ``None``).

    ``method="deconvnet"`` back-propagates with the deconvnet rule (Zeiler & Fergus, 2014)
    from ``seethrough.attribution``; ``"guided-backprop"`` with guided back-propagation
    (Springenberg et al., 2015: the deconvnet's ``1{g>0}`` and the forward ReLU mask, so only
    pixels that both excite the unit and pass the forward pattern show); ``"gradient"`` with the
    plain gradient; ``"auto"`` uses the deconvnet when it is registered.

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> x, _ = see.zoo.digits("test")
    >>> g = project(model, x[:2], "conv1", 0, torch.tensor([[0, 0], [0, 0]]), method="gradient")
    >>> bool(g[:, :, 5:].abs().sum() == 0)   # conv1 at (0, 0) sees only the top-left 5×5 pixels
    True
    """
    from ..attribution import METHODS

    check_images(x)
    resolve_layer(model, layer)
    if method == "auto":
        method = "deconvnet" if "deconvnet" in METHODS else "gradient"
    if method not in PROJECTIONS:
        raise ValueError(f"method must be one of {', '.join(map(repr, ('auto', *PROJECTIONS)))}, got {method!r}")
    if method != "gradient" and method not in METHODS:
        raise ValueError(f"method={method!r} needs seethrough.attribution's {method}, which is not registered")
    n = x.shape[0]
    units = torch.as_tensor(units, dtype=torch.long, device=x.device).reshape(-1).expand(n) if not isinstance(units, torch.Tensor) or units.numel() == 1 else units.to(x.device).long()
    if units.shape != (n,):
        raise ValueError(f"units must be one int or one unit per sample ({n}), got shape {tuple(units.shape)}")
    if positions is not None:
        positions = torch.as_tensor(positions, dtype=torch.long, device=x.device).reshape(n, 2)
    with hooks(model, capture=layer) as rec:
        if method != "gradient":
            # The rule method's target is a callable of the output; the score it asks for is
            # the captured unit, so its modified backward runs from the hidden unit down.
            return METHODS[method].fn(model, x, lambda out: _unit_score(rec[layer], units, positions))
        with torch.enable_grad():
            xg = x.detach().requires_grad_()
            model(xg)
            (g,) = torch.autograd.grad(_unit_score(rec[layer], units, positions).sum(), xg, allow_unused=True)
    return torch.zeros_like(x) if g is None else g


def topk_examples(
    model: nn.Module, data: torch.Tensor, result, *, projection: str | None = "auto", batch_size: int | str = "auto"
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The receptive-field crops ``(U, k, C, s, s)`` of a conv-layer :class:`TopK` result and
    their projections (``projection``: ``"auto"``, ``"deconvnet"``, ``"guided-backprop"``, ``"gradient"``
    or ``None``),
    cropped the same way. ``data`` is the tensor the top-k was computed on.

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> x, _ = see.zoo.digits("test")
    >>> c, p = topk_examples(model, x, see.topk(model, x, "conv1", k=4, progress=False))
    >>> c.shape, p.shape
    (torch.Size([6, 4, 1, 5, 5]), torch.Size([6, 4, 1, 5, 5]))
    """
    from .topk import crops

    if result.boxes is None:
        raise ValueError(f"layer {result.layer!r} has no spatial output, so its top-k examples have no crops")
    u, k = result.indices.shape
    idx = result.indices.reshape(-1)
    boxes = result.boxes.reshape(-1, 4)
    x = data[idx.to(data.device)]
    c = crops(x, boxes)
    if projection is None:
        return c.reshape(u, k, *c.shape[1:]), None
    units = result.units.repeat_interleave(k)
    pos = result.positions.reshape(-1, 2)
    p = run_batched(lambda a, b: project(model, x[a:b], result.layer, units[a:b], pos[a:b], method=projection),
                    len(idx), batch_size=batch_size, progress=False, device=x.device)
    p = crops(p, boxes)
    return c.reshape(u, k, *c.shape[1:]), p.reshape(u, k, *p.shape[1:])
