"""Batched evaluation of many inputs with a batch size chosen by rule or by measuring.

``batch_size="auto"`` decides in this order:

1. **Remembered**: a size measured before for the same model *and weights*, per-item input shape, dtype,
   device, thread count and mode (:func:`model_key`: a weak reference to the model, so a new model that
   reuses a dead one's ``id`` never hits, plus :func:`fingerprint` of its parameters'
   and buffers' versions and data pointers, so an optimizer step or ``load_state_dict`` re-measures).
2. **Few items, no probing**: up to :data:`PROBE_FROM` items, the work is split into the fewest batches
   whose sizes differ by at most one, of at most :func:`cpu_batch` items on a CPU (8 for a 224² RGB image,
   in proportion to the pixels for other sizes, from 1 for a 512² image up to 64 for small ones), or of the
   memory cap on a GPU: no tail batch is tiny
   and no probe is paid. The measurement behind it (``benchmarks/batch_sizes.py``, one development run,
   channels-last, 1 thread, on a shared and heavily loaded 2-core machine, so ratios only): on
   EfficientNet-Lite0 the per-image forward cost 1.03×, 1.00×, 1.17×, 1.33×, 1.90× the best at batch 1,
   4, 8, 16, 32, and forward + input gradient 1.61×, 1.08×, 1.13×, 1.00×, 1.63×; in the same session,
   occlusion of 50 windows with ``batch_size=16`` took 1.09× the time of ``batch_size=8``. On lenet-digits
   batch 1 cost 10.8× (forward) and 5.1× (gradient) the best and batches of 8 to 64 were within 2×.
   The benchmark of 2026-12-02 (README, "Speed") did not single it out either way: on an AVX-512 machine
   the best forward cell was batch 4 at the start of one run and batch 32 at its end. Larger images want
   smaller batches (``benchmarks/batch_sizes.py --px 512 efficientnet-lite0``, then ``--px 224``, one run on
   2026-12-03, 2 threads, AVX-512): at 512² the forward cost 1.00×, 1.17×, 1.61×, 1.88× the best per image at
   batch 1, 2, 4, 8, and forward + gradient 1.07×, 1.00×, 1.10×, 2.17×. The earlier rule's floor of 8 had
   made a 512² image cost about twice a 224² one per pixel (README, "How cost grows"). At batch 1 the 512²
   forward cost 229 ms per megapixel, against 194 ms for a 224² image at its best batch (4).
3. **Many items, probing**: the first batches of the *real* work run at growing sizes (8, 16, 32, … up to
   the memory cap; never 1 or 4 for a 224² image or smaller; an image larger than that starts at its
   rule-2 size, 1, 2, 4, 8, … at 512²), the size with the lowest time per item is kept for the rest and
   remembered. No probe is wasted: every probe batch is part of the result.

An explicit ``batch_size`` wins. Out-of-memory halves the batch in every case.
"""
from __future__ import annotations

import math
import os
import sys
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Sequence

import torch
from tqdm.auto import tqdm  # the notebook widget in a Jupyter kernel with ipywidgets, like progress.bar

from .progress import report, visible

# model -> {(weights fingerprint, shape, dtype, device, mode, threads): size}; weak, so a dead model's entries go
_CHOSEN: "weakref.WeakKeyDictionary[torch.nn.Module, dict]" = weakref.WeakKeyDictionary()
_CHOSEN_OTHER: dict[Hashable, int] = {}  # plain keys (a string, a scan's key)
_PROBE_SIZES = (8, 16, 32, 64, 128, 256)
CPU_BATCH = 8  # the batch of the no-probing rule on a CPU, for items the size of a 224² RGB image's forward
CPU_BATCH_BYTES = CPU_BATCH * 3 * 224 * 224 * 4 * 64  # ... i.e. this many bytes_per_item() bytes per batch
CPU_BATCH_MAX = 64  # small items (a 32² digit) run up to this many per batch: per-batch Python costs dominate them
PROBE_FROM = 256  # more items than this (and nothing remembered): probe


@dataclass(frozen=True, eq=False)
class ModelKey:
    """A batch-size cache key for one model (held weakly) and ``rest`` (fingerprint, shape, dtype, ...)."""

    ref: "weakref.ref[torch.nn.Module]"
    rest: tuple


def _recall(key: Hashable | None) -> int | None:
    if isinstance(key, ModelKey):
        model = key.ref()
        return None if model is None else _CHOSEN.get(model, {}).get(key.rest)
    return None if key is None else _CHOSEN_OTHER.get(key)


def _remember(key: Hashable | None, size: int) -> None:
    if isinstance(key, ModelKey):
        model = key.ref()
        if model is not None:
            _CHOSEN.setdefault(model, {})[key.rest] = size
    elif key is not None:
        _CHOSEN_OTHER[key] = size


def even_batches(n: int, most: int) -> int:
    """The largest batch when ``n`` items are split into the fewest batches of at most ``most`` items whose
    sizes differ by at most one.

    >>> even_batches(50, 16), even_batches(169, 8), even_batches(10, 16)
    (13, 8, 10)
    """
    k = math.ceil(n / max(1, most))
    return math.ceil(n / k)


def _on_cuda(device: torch.device | str | None) -> bool:
    dev = torch.device(device) if device is not None else None
    return (dev is None and torch.cuda.is_available()) or (dev is not None and dev.type == "cuda")


def cpu_batch(item_bytes: int | None = None) -> int:
    """The largest batch of the no-probing rule on a CPU for items of ``item_bytes`` (:func:`bytes_per_item` of the
    *forward*, whatever the pass: the rule sizes by the image, the memory cap by the pass's need): :data:`CPU_BATCH`
    for an item the size of a 224² RGB image (or an unknown size), in proportion to the size for others, from 1
    (a 512² image: its activations alone outgrow the caches) up to :data:`CPU_BATCH_MAX`.

    >>> forward = lambda px: bytes_per_item(torch.zeros(1, 3, px, px))
    >>> cpu_batch(), cpu_batch(forward(224)), cpu_batch(forward(320)), cpu_batch(forward(512))
    (8, 8, 3, 1)
    >>> cpu_batch(bytes_per_item(torch.zeros(1, 1, 32, 32)))
    64
    """
    if not item_bytes:
        return CPU_BATCH
    return max(1, min(CPU_BATCH_MAX, CPU_BATCH_BYTES // item_bytes))


def default_batch_size(n: int, cap: int | None = None, device: torch.device | str | None = None,
                       item_bytes: int | None = None) -> int:
    """The no-probing batch size for ``n`` items under a memory cap of ``cap`` items (module docstring, rule 2):
    equal batches of at most :func:`cpu_batch` of ``item_bytes`` (forward bytes) on a CPU, of at most the cap on
    a GPU.

    >>> default_batch_size(170, device="cpu"), default_batch_size(170, cap=6, device="cpu")
    (8, 6)
    """
    cap = n if cap is None else min(cap, n)
    return even_batches(n, cap if _on_cuda(device) else min(cpu_batch(item_bytes), cap))


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
    rule_bytes: int | None = None,
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
    it caps the batch. ``rule_bytes`` (default ``item_bytes``) is what the no-probing rule sizes batches by
    (:func:`cpu_batch`): a gradient pass gives its forward's bytes here, so an image gets the same batch in both
    modes while its memory cap counts the backward. An explicit ``batch_size`` wins over the probing (still halved on
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
    cap = n
    if item_bytes:  # the budget is read only where it caps something: no device memory query for work without
        budget = default_memory_budget(device) if memory_budget is None else memory_budget
        cap = budget // max(item_bytes, 1)
        if cap < 1:
            raise ValueError(
                f"memory_budget of {budget / 2**20:.1f} MiB is too small for one sample "
                f"(needs about {item_bytes / 2**20:.1f} MiB); raise memory_budget or use smaller inputs"
            )
        cap = min(cap, n)
    remembered = _recall(key) if batch_size == "auto" else None
    planned: list[int] = []
    if batch_size != "auto":
        size, probing = min(batch_size, n), []
    elif remembered is not None:
        size, probing = min(remembered, cap), []
    elif n <= PROBE_FROM and _PROBE_SIZES:
        size, probing = default_batch_size(n, cap, device, rule_bytes or item_bytes), []
        k = math.ceil(n / size)
        planned = [n // k + (i < n % k) for i in range(k)]  # k batches whose sizes differ by at most one
    else:
        size, probing = None, [s for s in _PROBE_SIZES if s <= cap] or [cap]
        if _PROBE_SIZES and cap > probing[-1] and cap < _PROBE_SIZES[-1]:
            probing.append(cap)
        rule = cpu_batch(rule_bytes or item_bytes)
        if _PROBE_SIZES and rule < _PROBE_SIZES[0] and not _on_cuda(device):
            # an image larger than 224² starts where the rule would run it (1 at 512²), not at 8
            probing = [s for s in dict.fromkeys((rule, 2, 4)) if rule <= s <= cap] + probing
    parts: list[Any] = []
    timings: dict[int, float] = {}
    desc = desc or "batches"
    # Drawn by seethrough.progress's rule (a terminal or a notebook, SEETHROUGH_PROGRESS, --quiet).
    bar = tqdm(total=n, desc=desc, delay=2.0, disable=not visible(progress, sys.stderr), leave=False)
    start = 0
    try:
        while start < n:
            want = probing[0] if probing else planned.pop(0) if planned else size
            stop = min(start + want, n)
            try:
                t0 = time.perf_counter()
                out = fn(start, stop)
                if probing and _on_cuda(device):  # CUDA runs asynchronously: time the work, not its launch
                    torch.cuda.synchronize(device)
                dt = time.perf_counter() - t0
            except (RuntimeError, torch.OutOfMemoryError) as e:
                if not _is_oom(e) or stop - start == 1:
                    raise
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                half = max(1, (stop - start) // 2)
                probing = [s for s in probing if s <= half]
                planned = []
                cap = half
                timings = {s: t for s, t in timings.items() if s <= half}
                if size is None or size > half:
                    size = min(timings, key=timings.get) if timings and not probing else half
                _remember(key, size)
                continue
            if on_batch is not None:
                on_batch(start, stop, out)
            else:
                parts.append(out)
            if probing:
                probing.pop(0)
                if stop - start == want:
                    timings[want] = dt / want
                    # Per-item cost is roughly U-shaped in the batch size: stop once past the bottom.
                    if timings[want] > 1.15 * min(timings.values()):
                        probing = []
                if not probing:
                    size = min(timings, key=timings.get) if timings else want
                    _remember(key, size)
            bar.update(stop - start)
            report(desc, stop, n)
            start = stop
    finally:
        bar.close()
    if size is None and timings:  # the work ran out while still probing
        _remember(key, min(timings, key=timings.get))
    if on_batch is not None:
        return None
    return _cat(parts)


def chosen_batch_size(key: Hashable) -> int | None:
    """The batch size ``batch_size="auto"`` settled on for ``key``, if measured (or halved) yet."""
    return _recall(key)


def fingerprint(model: torch.nn.Module, values: bool = False) -> tuple:
    """What identifies the current weights of ``model``: each parameter's and buffer's ``_version`` and
    ``data_ptr`` (an optimizer step, ``load_state_dict`` or any in-place op bumps the version); with
    ``values=True`` also each one's sum, which catches ``p.data.copy_(...)`` (it bypasses the version).

    >>> net = torch.nn.Linear(2, 2)
    >>> before = fingerprint(net)
    >>> with torch.no_grad():
    ...     _ = net.weight.add_(1)
    >>> fingerprint(net) == before
    False
    """
    ts = [*model.parameters(), *model.buffers()]
    fp = tuple((t._version, t.data_ptr()) for t in ts)
    if values:
        with torch.no_grad():
            fp += tuple(float(t.detach().sum()) if t.is_floating_point() else int(t.detach().sum()) for t in ts)
    return fp


def model_key(model: torch.nn.Module, x: torch.Tensor, mode: str) -> ModelKey:
    """A batch-size cache key for a model with its current weights, a per-item input shape, dtype, device,
    thread count and a mode ('forward', 'grad', ...): changed weights or a new model give a new key.

    >>> net = torch.nn.Linear(2, 2)
    >>> k = model_key(net, torch.zeros(3, 2), "forward")
    >>> with torch.no_grad():
    ...     _ = net.weight.mul_(2)
    >>> model_key(net, torch.zeros(3, 2), "forward").rest == k.rest
    False
    """
    model = getattr(model, "model", model) if not isinstance(model, torch.nn.Module) else model  # a Boundary
    return ModelKey(weakref.ref(model), (fingerprint(model), tuple(x.shape[1:]), x.dtype, str(x.device), mode,
                                         torch.get_num_threads()))


def bytes_per_item(x: torch.Tensor, mode: str = "forward") -> int:
    """A rough memory need per item: activations of a CNN are some tens of input sizes,
    and a backward pass keeps them all."""
    per = math.prod(x.shape[1:]) * x.element_size()
    return per * (64 if mode == "forward" else 256)



def grad_sizes(x: torch.Tensor) -> dict[str, int]:
    """The sizes :func:`run_batched` takes for a gradient pass over items like ``x``: ``item_bytes`` counts the
    backward (the memory cap), ``rule_bytes`` the forward (the no-probing rule sizes batches by the image).

    >>> s = grad_sizes(torch.zeros(1, 3, 224, 224))
    >>> s["item_bytes"] > s["rule_bytes"] == bytes_per_item(torch.zeros(1, 3, 224, 224))
    True
    """
    return {"item_bytes": bytes_per_item(x, "grad"), "rule_bytes": bytes_per_item(x)}

def as_batches(n: int, size: int) -> Sequence[tuple[int, int]]:
    """``[(0, size), (size, 2*size), …]`` covering ``range(n)``."""
    return [(s, min(s + size, n)) for s in range(0, n, size)]
