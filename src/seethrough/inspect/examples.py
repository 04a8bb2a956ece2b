"""Top-k examples shown where pixels are not the point: tabular rows as ``name=value`` lines, token
sequences as ids or strings with the maximising token marked.

Images have their crops (:func:`seethrough.inspect.topk.crops`, ``see.render.topk_grid``); these are
the text views of the same :class:`~seethrough.inspect.topk.TopK` result.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from .topk import TopK

Decode = Callable[[list[int]], str]  # a tokenizer's decode: ids -> text


def topk_table(result: TopK, data: torch.Tensor, *, decode: Decode | None = None,
               feature_names: Sequence[str] | None = None, digits: int = 4) -> list[list[str]]:
    """One line per example: ``[unit][rank]`` for the examples of ``result`` taken from ``data``.

    Tabular rows ``(N, F)``: ``"#index (value): name=…, name=…"`` (``feature_names`` default ``f0…``).
    Token ids ``(N, L)``: ``"#index (value): tok tok [tok] tok"``, each token an id or, with ``decode``
    (a tokenizer-like ``decode(list_of_ids) -> str``), its string; the token at the unit's maximum is
    in brackets. ``value`` is the unit's activation with ``digits`` significant digits.

    >>> r = TopK("fc", torch.tensor([0]), torch.tensor([[1]]), torch.tensor([[2.5]]))
    >>> topk_table(r, torch.tensor([[0.0, 1.0], [3.0, -1.0]]), feature_names=["a", "b"])
    [['#1 (2.5): a=3, b=-1']]
    """
    if not isinstance(data, torch.Tensor) or data.dim() != 2:
        raise ValueError(f"topk_table shows tabular rows (N, F) or token ids (N, L), got "
                         f"{tuple(data.shape) if isinstance(data, torch.Tensor) else type(data).__name__}; "
                         "image examples are crops (seethrough.inspect.topk.crops)")
    tokens = not data.is_floating_point()
    if not tokens and feature_names is not None and len(feature_names) != data.shape[1]:
        raise ValueError(f"feature_names has {len(feature_names)} names but the rows have {data.shape[1]} features")
    names = [str(n) for n in feature_names] if feature_names is not None else [f"f{i}" for i in range(data.shape[1])]
    if int(result.indices.max()) >= data.shape[0]:
        raise ValueError(f"the result refers to sample {int(result.indices.max())} but data has {data.shape[0]}; "
                         "pass the data the top-k scan ran over")
    table = []
    for u in range(result.indices.shape[0]):
        lines = []
        for j, (i, v) in enumerate(zip(result.indices[u].tolist(), result.values[u].tolist())):
            row = data[i]
            if tokens:
                at = int(result.positions[u, j, 0]) if result.positions is not None and result.positions.shape[-1] == 1 else None
                body = " ".join(_token(t, decode, mark=k == at) for k, t in enumerate(row.tolist()))
            else:
                body = ", ".join(f"{n}={x:.{digits}g}" for n, x in zip(names, row.tolist()))
            lines.append(f"#{i} ({v:.{digits}g}): {body}")
        table.append(lines)
    return table


def _token(i: int, decode: Decode | None, mark: bool) -> str:
    text = str(i) if decode is None else decode([i]).strip() or repr(decode([i]))
    return f"[{text}]" if mark else text
