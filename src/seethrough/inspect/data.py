"""Streaming a dataset through a model in batches: a tensor, a Dataset or an iterable of batches.

Every dataset scan of this package (layer statistics, top-k examples) is a *map* over
batches followed by a *reduce*; :func:`scan` runs the map through the batching engine
(``run_batched`` with ``on_batch``) so memory stays bounded whatever the dataset size.
Given a :class:`~seethrough.boundary.Boundary` (:func:`with_boundary`), every batch is checked by
its kind's rules and the map gets the dataset indices of its rows, which pick each sample's
``extra`` forward arguments (an ``attention_mask`` row per sequence).
"""
from __future__ import annotations

import itertools
from typing import Any, Callable, Iterable

import torch
from torch import nn

from ..batching import bytes_per_item, check_batch_size, run_batched
from ..boundary import Boundary, as_boundary
from ..inputs import check_images
from ..progress import report

Data = torch.Tensor | Iterable[Any]


def _first(item: Any) -> torch.Tensor:
    """A dataset item or batch may be ``x`` or ``(x, label, ...)``: keep ``x``."""
    if isinstance(item, (tuple, list)) and item and isinstance(item[0], torch.Tensor):
        item = item[0]
    if not isinstance(item, torch.Tensor):
        raise TypeError(f"data must yield tensors (or (tensor, label) pairs), got {type(item).__name__}")
    return item


def data_length(data: Data) -> int | None:
    """How many samples ``data`` holds, or ``None`` for an iterable of batches.

    >>> data_length(torch.zeros(5, 1, 4, 4)), data_length(iter([torch.zeros(2, 1, 4, 4)]))
    (5, None)
    """
    if isinstance(data, torch.Tensor):
        if data.dim() < 2:
            raise ValueError(f"data must be a batch of samples (N, ...), got shape {tuple(data.shape)}")
        return data.shape[0]
    if hasattr(data, "__len__") and hasattr(data, "__getitem__"):
        return len(data)
    if isinstance(data, Iterable):
        return None
    raise TypeError(f"data must be a tensor (N, C, H, W), a Dataset or an iterable of batches, got {type(data).__name__}")


def with_boundary(model: nn.Module | Boundary, data: Data, how: dict[str, Any]) -> tuple[Boundary, Data]:
    """The boundary a scan of ``data`` works through (the kind inferred from its first sample) and the
    data to scan (an iterator's first batch put back in front).

    >>> b, _ = with_boundary(torch.nn.Linear(3, 1), torch.zeros(5, 3), {})
    >>> b.kind
    'tabular'
    """
    if isinstance(data, torch.Tensor):
        sample = data[:1]
    elif hasattr(data, "__len__") and hasattr(data, "__getitem__"):
        sample = _first(data[0]).unsqueeze(0) if len(data) else None
    elif isinstance(data, Iterable):
        it = iter(data)
        first = next(it, None)
        sample = None if first is None else _first(first)[:1]
        data = it if first is None else itertools.chain([first], it)
    else:
        sample = None  # data_length names the problem
    return as_boundary(model, sample, **how), data


def scan(
    data: Data,
    map_fn: Callable[..., Any],
    reduce_fn: Callable[[int, Any], None],
    *,
    batch_size: int | str = "auto",
    key: Any = None,
    progress: bool = True,
    desc: str = "",
    boundary: Boundary | None = None,
) -> int:
    """Call ``reduce_fn(start, map_fn(batch))`` for consecutive batches; return the sample count.

    ``start`` is the dataset index of the batch's first sample. Tensors and Datasets are
    batched by :func:`seethrough.batching.run_batched`; an iterable's own batches are kept.
    With a ``boundary``, batches are checked by its kind's rules (a tensor once, whole) and the map
    is ``map_fn(batch, rows)``, ``rows`` the dataset indices of the batch's samples; without one,
    image batches must be in [0, 1] and other inputs are taken as given.

    >>> seen = []
    >>> scan(torch.arange(10.).view(10, 1), lambda b: b.sum(), lambda s, r: seen.append((s, r.item())), batch_size=4, progress=False)
    10
    >>> seen
    [(0, 6.0), (4, 22.0), (8, 17.0)]
    """
    check_batch_size(batch_size)
    n = data_length(data)
    if n == 0:
        raise ValueError("data is empty: give at least one sample")

    def check(x: torch.Tensor, start: int) -> torch.Tensor:
        if boundary is None:
            return check_images(x, name="a data batch", kind="auto")  # images in [0, 1]; other inputs as given
        return boundary.check(x, name="a data batch", rows=_rows(start, x))

    def run(x: torch.Tensor, start: int) -> Any:
        return map_fn(x) if boundary is None else map_fn(x, _rows(start, x))

    if n is None:
        start = 0
        for batch in data:
            x = _first(batch)
            if isinstance(x, torch.Tensor) and x.dim() and x.shape[0] == 0:
                continue
            x = check(x, start)
            reduce_fn(start, run(x, start))
            start += x.shape[0]
            report(desc or "batches", start, 0)  # total 0: an iterable's length is unknown
        if start == 0:
            raise ValueError("data is empty: the iterable yielded no samples")
        return start
    if isinstance(data, torch.Tensor):
        if boundary is None:
            check_images(data, name="data", kind="auto")
        else:
            boundary.check(data, name="data")
        sample = data[:1]

        def get(a: int, b: int) -> torch.Tensor:
            return data[a:b]
    else:
        sample = _first(data[0]).unsqueeze(0)

        def get(a: int, b: int) -> torch.Tensor:
            return check(torch.stack([_first(data[i]) for i in range(a, b)]), a)

    run_batched(
        lambda a, b: run(get(a, b), a), n, batch_size=batch_size, item_bytes=bytes_per_item(sample, "forward"),
        device=sample.device,
        key=key, progress=progress, desc=desc, on_batch=lambda a, b, out: reduce_fn(a, out),
    )
    return n


def _rows(start: int, x: torch.Tensor) -> torch.Tensor:
    return torch.arange(start, start + x.shape[0])


def tiles(images: torch.Tensor, size: int, stride: int | None = None) -> torch.Tensor:
    """Cut every image of ``(N, C, H, W)`` into ``size``×``size`` tiles with ``stride`` (default ``size``).

    >>> tiles(torch.zeros(2, 3, 8, 12), 4).shape
    torch.Size([12, 3, 4, 4])
    """
    stride = stride or size
    if size > min(images.shape[-2:]):
        raise ValueError(f"tile size {size} is larger than the images ({images.shape[-2]}×{images.shape[-1]})")
    t = images.unfold(2, size, stride).unfold(3, size, stride)  # N, C, nh, nw, size, size
    return t.permute(0, 2, 3, 1, 4, 5).reshape(-1, images.shape[1], size, size).contiguous()


def photo_tiles(preprocess: Callable | None = None, size: int = 112, stride: int | None = 56) -> torch.Tensor:
    """Every bundled photo, preprocessed (default: efficientnet-lite0's 224 centre crop) and cut
    into ``size``×``size`` tiles with ``stride``: a small image dataset for top-k scans.

    >>> photo_tiles(size=112, stride=112).shape
    torch.Size([32, 3, 112, 112])
    """
    from .. import zoo

    prep = preprocess or zoo.preprocess("efficientnet-lite0")
    photos = torch.cat([prep(zoo.image(n)) for n in zoo.images()])
    return tiles(photos, size, stride)
