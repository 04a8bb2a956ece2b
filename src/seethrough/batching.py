"""Batched evaluation of many inputs with a batch size chosen by measuring.

On a CPU the per-image cost of a convolutional network is often lowest at a small batch
(8-16 here) and rises beyond it; on a GPU bigger is better until memory runs out. So
``batch_size="auto"`` does not assume: it caps the batch by a memory budget, then runs the
first batches of the *real* work at growing sizes (1, 4, 8, 16, 32, … up to the cap),
keeps the size with the lowest time per item for the rest, and halves on out-of-memory.
No probe is wasted: every probe batch is part of the result. The choice is remembered per
``key`` so repeated calls skip the probing.
"""
from __future__ import annotations

import math
import os
import sys
import time
from typing import Any, Callable, Hashable, Sequence

import torch
from tqdm.auto import tqdm  # the notebook widget in a Jupyter kernel with ipywidgets, like progress.bar

from .progress import report, visible

_CHOSEN: dict[Hashable, int] = {}
_PROBE_SIZES = (1, 4, 8, 16, 32, 64, 128, 256)


def default_memory_budget(device: torch.device | str | None = None) -> int:
    """Half the free GPU memory on a CUDA device; on a CPU a quarter of the memory
    available now, at most 4 GiB (bytes).

    >>> default_memory_budget("cpu") > 0
    True
    """
    dev = torch.device(device) if device is not None else None
    if (dev is None and torch.cuda.is_available()) or (dev is not None and dev.type == "cuda"):
        free, _ = torch.cuda.mem_get_info(dev)
        return int(free * 0.5)
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
    except OSError:
        pass
    if avail is None:
        avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    return int(min(avail / 4, 4 * 2**30))


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower()


def _cat(parts: list[Any]) -> Any:
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(parts)
    if isinstance(first, (tuple, list)):
        return type(first)(_cat([p[i] for p in parts]) for i in range(len(first)))
    raise TypeError(f"a batched function must return tensors (or tuples of tensors), got {type(first).__name__}")


def check_batch_size(batch_size: int | str) -> None:
    """Raise a ``ValueError`` unless ``batch_size`` is a positive int or ``"auto"``.

    >>> check_batch_size("auto"); check_batch_size(8)
    """
    if batch_size == "auto":
        return
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int or 'auto', got {batch_size!r}")


def run_batched(
    fn: Callable[[int, int], Any],
    n: int,
    *,
    batch_size: int | str = "auto",
    item_bytes: int | None = None,
    memory_budget: int | None = None,
    key: Hashable | None = None,
    progress: bool = True,
    desc: str = "",
    on_batch: Callable[[int, int, Any], None] | None = None,
    device: torch.device | str | None = None,
) -> Any:
    """Evaluate ``fn(start, stop)`` over ``range(n)`` in batches; concatenate the results.

    ``fn`` builds and evaluates items ``start..stop-1`` itself, so perturbed inputs are
    made lazily and memory stays bounded. It returns a tensor (or tuple of tensors) with
    one row per item. With ``on_batch(start, stop, out)`` results are streamed instead of
    concatenated (dataset scans) and ``None`` is returned. ``item_bytes`` is the memory one
    item needs; with ``memory_budget`` (default: :func:`default_memory_budget` of ``device``)
    it caps the batch. An explicit ``batch_size`` wins over the probing (still halved on
    out-of-memory). The progress bar appears only for runs over two seconds, where
    :func:`seethrough.progress.visible` allows it (a terminal or a notebook);
    every finished batch is also sent to :func:`seethrough.progress.report` as
    ``(desc, items done, n)``, bar or not.

    >>> out = run_batched(lambda a, b: torch.arange(a, b) ** 2, 10, batch_size=3, progress=False)
    >>> out.tolist()
    [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]
    """
    check_batch_size(batch_size)
    if n < 1:
        raise ValueError(f"nothing to evaluate: {n} items")
    if memory_budget is not None and (isinstance(memory_budget, bool) or not isinstance(memory_budget, int) or memory_budget < 1):
        raise ValueError(f"memory_budget must be a positive number of bytes, got {memory_budget!r}")
    budget = default_memory_budget(device) if memory_budget is None else memory_budget
    cap = n
    if item_bytes:
        cap = budget // max(item_bytes, 1)
        if cap < 1:
            raise ValueError(
                f"memory_budget of {budget / 2**20:.1f} MiB is too small for one sample "
                f"(needs about {item_bytes / 2**20:.1f} MiB); raise memory_budget or use smaller inputs"
            )
        cap = min(cap, n)
    if batch_size != "auto":
        size, probing = min(batch_size, n), []
    elif key is not None and key in _CHOSEN:
        size, probing = min(_CHOSEN[key], cap), []
    else:
        size, probing = None, [s for s in _PROBE_SIZES if s <= cap] or [cap]
        if cap > probing[-1] and cap < _PROBE_SIZES[-1]:
            probing.append(cap)
    parts: list[Any] = []
    timings: dict[int, float] = {}
    desc = desc or "batches"
    # Drawn by seethrough.progress's rule (a terminal or a notebook, SEETHROUGH_PROGRESS, --quiet).
    bar = tqdm(total=n, desc=desc, delay=2.0, disable=not visible(progress, sys.stderr), leave=False)
    start = 0
    try:
        while start < n:
            want = probing[0] if probing else size
            stop = min(start + want, n)
            try:
                t0 = time.perf_counter()
                out = fn(start, stop)
                dt = time.perf_counter() - t0
            except (RuntimeError, torch.OutOfMemoryError) as e:
                if not _is_oom(e) or stop - start == 1:
                    raise
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                half = max(1, (stop - start) // 2)
                probing = [s for s in probing if s <= half]
                cap = half
                timings = {s: t for s, t in timings.items() if s <= half}
                if size is None or size > half:
                    size = min(timings, key=timings.get) if timings and not probing else half
                if key is not None:
                    _CHOSEN[key] = size
                continue
            if on_batch is not None:
                on_batch(start, stop, out)
            else:
                parts.append(out)
            if probing:
                probing.pop(0)
                if stop - start == want and want > 1:  # the size-1 batch is the warm-up
                    timings[want] = dt / want
                    # Per-item cost is roughly U-shaped in the batch size: stop once past the bottom.
                    if timings[want] > 1.15 * min(timings.values()):
                        probing = []
                if not probing:
                    size = min(timings, key=timings.get) if timings else want
                    if key is not None:
                        _CHOSEN[key] = size
            bar.update(stop - start)
            report(desc, stop, n)
            start = stop
    finally:
        bar.close()
    if size is None and timings and key is not None:  # the work ran out while still probing
        _CHOSEN[key] = min(timings, key=timings.get)
    if on_batch is not None:
        return None
    return _cat(parts)


def chosen_batch_size(key: Hashable) -> int | None:
    """The batch size ``batch_size="auto"`` settled on for ``key``, if measured yet."""
    return _CHOSEN.get(key)


def model_key(model: torch.nn.Module, x: torch.Tensor, mode: str) -> tuple:
    """A cache key for a model, a per-item input shape and a mode ('forward' or 'grad')."""
    return (id(model), tuple(x.shape[1:]), x.dtype, str(x.device), mode, torch.get_num_threads())


def bytes_per_item(x: torch.Tensor, mode: str = "forward") -> int:
    """A rough memory need per item: activations of a CNN are some tens of input sizes,
    and a backward pass keeps them all."""
    per = math.prod(x.shape[1:]) * x.element_size()
    return per * (64 if mode == "forward" else 256)


def as_batches(n: int, size: int) -> Sequence[tuple[int, int]]:
    """``[(0, size), (size, 2*size), …]`` covering ``range(n)``."""
    return [(s, min(s + size, n)) for s in range(0, n, size)]
