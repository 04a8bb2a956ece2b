"""What a layer sees: its outputs for given inputs, and which channels to show."""
from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn

from ..boundary import Boundary, as_boundary, capture
from ..outputs import OutputSelector


def activations(model: nn.Module | Boundary, x: torch.Tensor, layers: str | Iterable[str], *,
                layer_output: OutputSelector = None, **how: Any) -> dict[str, torch.Tensor]:
    """The outputs of ``layers`` for the batch ``x``: ``{name: tensor (N, ...)}`` (detached).

    A layer called several times in one forward gives its last call. ``model`` is an ``nn.Module``
    or a :class:`~seethrough.boundary.Boundary`; ``how`` takes the boundary's fields (``kind=``,
    ``extra={"attention_mask": mask}``, ...): token ids ``(N, L)``, tabular rows and any tensor
    work as well as images in [0, 1]. A layer whose output is a tuple or dict (a transformer block)
    gives its first tensor, or the one ``layer_output`` selects (a key, an index or a callable; one
    for every layer).

    >>> import seethrough as see
    >>> model, _ = see.zoo.load("lenet-digits")
    >>> x, _ = see.zoo.digits("test")
    >>> a = see.activations(model, x[:2], ["conv1", "fc1"])
    >>> torch.equal(a["conv1"], model.conv1(x[:2]))
    True
    """
    b = as_boundary(model, x, **how)
    x = b.check(x)  # an image batch in [0, 1]; rows, ids or tensors by their kind's rules
    names = [layers] if isinstance(layers, str) else list(layers)
    if not names:
        raise ValueError("layers is empty: name at least one layer (see seethrough.layer_names(model))")
    rec = capture(b, x, names, layer_output=layer_output)
    return {n: rec[n] for n in names}


def pick_channels(act: torch.Tensor, n: int | None = None, *, how: str = "energy", seed: int = 0) -> torch.Tensor:
    """Indices of the channels of one activation ``(C, ...)`` to show for a wide layer.

    ``how="energy"``: the ``n`` channels with the largest mean square, strongest first;
    ``"random"``: ``n`` channels drawn with ``seed`` (sorted); ``"first"``: ``0..n-1``.
    ``n=None`` keeps all channels.

    >>> pick_channels(torch.tensor([[1.0], [3.0], [-2.0]]), 2).tolist()
    [1, 2]
    """
    if act.dim() < 1 or act.shape[0] == 0:
        raise ValueError(f"act must be one sample's activation (C, ...), got shape {tuple(act.shape)}")
    c = act.shape[0]
    if n is None or n >= c:
        n = c
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int (how many channels), got {n!r}")
    if how == "energy":
        energy = act.detach().reshape(c, -1).double().pow(2).mean(1)
        return torch.sort(energy, descending=True, stable=True).indices[:n].to(act.device)
    if how == "random":
        g = torch.Generator().manual_seed(seed)
        return torch.randperm(c, generator=g)[:n].sort().values.to(act.device)
    if how == "first":
        return torch.arange(n, device=act.device)
    raise ValueError(f"how must be 'energy', 'random' or 'first', got {how!r}")
