"""Collecting each layer's activations over a data set, in batches, flattened per sample.

One forward pass per batch records every requested layer at once (through
:func:`seethrough.hooks.hooks`, the only place hooks live), so asking for six layers costs
one pass over the data, not six. The pass goes through the model's boundary
(docs/boundary.md): token ids with an ``attention_mask``, tabular rows and any tensor work as
well as images, and per-token states ``(N, L, D)`` are pooled to one ``(N, D)`` row per sequence:
the mean over its real tokens (mask nonzero, else ids other than ``pad_id``, else all).
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import torch
from torch import nn

from ..batching import bytes_per_item, model_key, run_batched
from ..boundary import Boundary, as_boundary, token_mask, token_states
from ..hooks import hooks
from ..inputs import check_finite
from ..layers import resolve_layer

INPUT, OUTPUT = "input", "output"


def default_layers(model: nn.Module) -> list[str]:
    """``"input"`` followed by every top-level child of ``model``: the course's view of a network.

    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    >>> default_layers(net)
    ['input', '0', '1', '2']
    """
    return [INPUT, *(name for name, _ in model.named_children())]


def check_layers(model: nn.Module, layers: str | Iterable[str] | None) -> list[str]:
    """Validate layer names; ``"input"`` and ``"output"`` are the model's input and output
    unless the model has modules of those names. An unknown name is a ``ValueError``."""
    if layers is None:
        return default_layers(model)
    if isinstance(layers, str):
        layers = [layers]
    layers = list(layers)
    if not layers:
        raise ValueError("layers is empty; name at least one layer, e.g. layers=['input', 'fc1'], or pass None for every top-level layer")
    if len(set(layers)) != len(layers):
        raise ValueError(f"layers lists a name twice: {layers}")
    for name in layers:
        if not _is_pseudo(model, name):
            resolve_layer(model, name)  # raises with the closest valid names
    return layers


def _is_pseudo(model: nn.Module, name: str) -> bool:
    return name in (INPUT, OUTPUT) and name not in dict(model.named_modules())


def check_data(x: object, *, name: str = "x") -> torch.Tensor:
    """A batch of samples ``(N, ...)`` with at least one sample: finite floats, or integer token ids
    (which the boundary checks against the vocabulary)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor with one sample per row (N, ...), got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"{name} must have a batch dimension, shape (N, ...), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (N = 0); give at least one sample")
    if not x.is_floating_point() and not x.is_complex() and x.dtype != torch.bool:
        return x
    return check_finite(x, name=name)


def collect(
    model: nn.Module | Boundary,
    x: torch.Tensor,
    layers: str | Sequence[str] | None = None,
    *,
    batch_size: int | str = "auto",
    progress: bool = True,
    **how: Any,
) -> dict[str, torch.Tensor]:
    """Run ``x`` through ``model`` in batches and return ``{layer: (N, D) activations}``.

    Each sample's activation is flattened (a conv layer's ``C×H×W`` becomes one row of
    ``D = C·H·W``); token states ``(N, L, D)`` are the mean over each sequence's real tokens.
    ``"input"`` is ``x`` itself (for token ids: the embedding's output, pooled) and ``"output"``
    the model's score output (read with the boundary's ``output=``). A layer called several times
    in one forward pass contributes its last call; a tuple or dict output gives its first tensor.
    ``how`` takes the boundary's fields (``kind=``, ``extra=``, ``output=``, ...). The model is
    left exactly as found.

    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten())
    >>> acts = collect(net, torch.rand(5, 1, 4, 4), ["input", "1"], progress=False)
    >>> {k: tuple(v.shape) for k, v in acts.items()}
    {'input': (5, 16), '1': (5, 8)}
    """
    b = as_boundary(model, x, **how)
    model = b.model
    x = b.check(check_data(x))  # a batch, then its kind's rules (images in [0, 1], ids in the vocabulary, ...)
    layers = check_layers(model, layers)
    real = [n for n in layers if not _is_pseudo(model, n)]
    want_output = OUTPUT in layers and _is_pseudo(model, OUTPUT)
    want_input = INPUT in layers and _is_pseudo(model, INPUT)
    # For token ids the input is the embedding's output, recorded in the same pass as the layers.
    embedding = b.embedding_name() if want_input and b.kind == "tokens" else None
    hooked = real + ([embedding] if embedding is not None and embedding not in real else [])
    if hooked or want_output:
        with hooks(model, capture=hooked, detach=True) as rec, torch.no_grad():

            def run(start: int, stop: int) -> tuple[torch.Tensor, ...]:
                rec.clear()
                rows = torch.arange(start, stop)
                xs = x[start:stop]
                out = b.call(xs, rows)
                missed = [n for n in hooked if not rec.activations[n]]
                if missed:
                    raise ValueError(f"layer(s) {', '.join(map(repr, missed))} were not called in the model's forward pass; pick layers the forward uses")
                got = [_per_sample(b, xs, rows, rec[n]) for n in real]
                if want_output:
                    got.append(_per_sample(b, xs, rows, b.select(out)))
                if embedding is not None:
                    got.append(_per_sample(b, xs, rows, rec[embedding]))
                return tuple(got)

            parts = run_batched(run, len(x), batch_size=batch_size, item_bytes=bytes_per_item(x), device=x.device,
                                key=model_key(model, x, "forward"), progress=progress, desc="activations")
        got = dict(zip(real + ([OUTPUT] if want_output else []) + ([INPUT] if embedding is not None else []), parts))
    else:
        got = {}
    if want_input and b.kind != "tokens":
        got[INPUT] = x.detach().flatten(1)
    return {n: got[n] for n in layers}


def _per_sample(b: Boundary, x: torch.Tensor, rows: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
    """One row per sample: token states ``(N, L, D)`` are averaged over the real tokens; others flattened."""
    if not token_states(b, x, act):
        return act.flatten(1)
    mask = token_mask(b, x, rows).to(act.dtype).unsqueeze(-1)
    return (act * mask).sum(1) / mask.sum(1).clamp(min=1)
