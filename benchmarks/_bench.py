"""Helpers the benchmarks share: timing with a spread, the dense limit over batch sizes and memory
layouts, a first call in a fresh process, least-squares fits, peak memory, peer imports, tables.

Every helper here is plain measuring code; the numbers it produces go into the printed tables, and
``tests/test_benchmarks.py`` checks that each computes what it says (the limit is the minimum of its
grid, the fit recovers a known slope, ...).
"""
from __future__ import annotations

import copy
import json
import mmap
import os
import statistics
import subprocess
import sys
import threading
import time
import types
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

LAYOUTS = ("contiguous", "channels-last")


@dataclass
class Timing:
    """Seconds of ``repeats`` calls made after a warm-up: median and spread (min–max)."""

    times: list[float]
    warmup: float | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def min(self) -> float:
        return min(self.times)

    @property
    def max(self) -> float:
        return max(self.times)

    def spread(self) -> str:
        return f"{self.min:.2f}–{self.max:.2f}"

    def as_dict(self) -> dict:
        return {"median": self.median, "min": self.min, "max": self.max, "times": self.times, "warmup": self.warmup}


def timed(fn: Callable[[], Any], repeats: int = 3, warmup: bool = True) -> Timing:
    """``fn`` once as a warm-up (timed too, reported apart), then ``repeats`` timed calls.

    >>> t = timed(lambda: sum(range(1000)), repeats=3)
    >>> len(t.times), t.min <= t.median <= t.max
    (3, True)
    """
    first = None
    if warmup:
        t0 = time.perf_counter()
        fn()
        first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return Timing(times, first)


def channels_last_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` in channels-last memory format (the user's model keeps its layout)."""
    return copy.deepcopy(model).to(memory_format=torch.channels_last)


def _pass(model: nn.Module, xb: torch.Tensor, mode: str) -> None:
    if mode == "forward":
        with torch.no_grad():
            model(xb)
    else:  # forward + gradient w.r.t. the input only (loss.backward() would add the weight gradients)
        xg = xb.detach().clone().requires_grad_()
        torch.autograd.grad(model(xg)[:, 0].sum(), xg)


def per_image_grid(model: nn.Module, x: torch.Tensor, mode: str, sizes: Sequence[int] = (1, 2, 4, 8, 16, 32),
                   layouts: Sequence[str] = LAYOUTS, images: int = 48, repeats: int = 2,
                   models: dict[str, nn.Module] | None = None) -> dict[tuple[str, int], float]:
    """Seconds per image of a batched ``mode`` pass ('forward' or 'grad': forward + input gradient) of
    one image repeated ``b`` times, per (layout, batch size): each cell warmed up once, then the best
    of ``repeats`` loops of about ``images`` images (a warm-up: one batch of that shape first). ``models``: the model per layout (default: the
    model itself for 'contiguous', a channels-last copy for 'channels-last').

    >>> g = per_image_grid(nn.Conv2d(3, 2, 3), torch.rand(1, 3, 8, 8), "forward", sizes=(1, 2), images=2, repeats=1)
    >>> sorted(g)
    [('channels-last', 1), ('channels-last', 2), ('contiguous', 1), ('contiguous', 2)]
    """
    if mode not in ("forward", "grad"):
        raise ValueError(f"mode must be 'forward' or 'grad', got {mode!r}")
    models = dict(models or {})
    grid = {}
    for layout in layouts:
        net = models.get(layout) or (model if layout == "contiguous" else channels_last_copy(model))
        models[layout] = net
        fmt = torch.channels_last if layout == "channels-last" else torch.contiguous_format
        for b in sizes:
            xb = x[:1].expand(b, *x.shape[1:]).contiguous(memory_format=fmt)
            reps = max(1, images // b)
            _pass(net, xb, mode)  # warm-up: one batch of this shape
            t = timed(lambda: [_pass(net, xb, mode) for _ in range(reps)], repeats=repeats, warmup=False)
            grid[(layout, b)] = t.min / (reps * b)
    return grid


def best_cell(grid: dict[tuple[str, int], float], batch: int | None = None) -> tuple[float, str, int]:
    """The lowest cost of a grid (optionally at one batch size): (seconds per image, layout, batch).

    >>> best_cell({("contiguous", 1): 3.0, ("contiguous", 8): 1.0, ("channels-last", 8): 2.0})
    (1.0, 'contiguous', 8)
    >>> best_cell({("contiguous", 1): 3.0, ("channels-last", 1): 2.5, ("contiguous", 8): 1.0}, batch=1)
    (2.5, 'channels-last', 1)
    """
    cells = {k: v for k, v in grid.items() if batch is None or k[1] == batch}
    if not cells:
        raise ValueError(f"no cell at batch {batch} in the grid")
    layout, b = min(cells, key=cells.get)
    return cells[(layout, b)], layout, b


def merge_min(*grids: dict) -> dict:
    """Cell-wise minimum of grids measured at different times of a run (the machine drifts).

    >>> merge_min({("c", 1): 2.0, ("c", 2): 1.0}, {("c", 1): 1.5, ("c", 2): 3.0})
    {('c', 1): 1.5, ('c', 2): 1.0}
    """
    out = dict(grids[0])
    for g in grids[1:]:
        for k, v in g.items():
            out[k] = min(out.get(k, v), v)
    return out


def grid_text(grid: dict[tuple[str, int], float]) -> str:
    return "; ".join(f"{layout} " + ", ".join(f"b{b} {1e3 * v:.1f}" for (l, b), v in grid.items() if l == layout)
                     for layout in dict.fromkeys(l for l, _ in grid))


def compiled_cost(model: nn.Module, x: torch.Tensor, mode: str, batch: int, images: int = 48,
                  repeats: int = 2) -> tuple[float, float]:
    """(seconds per image, seconds compiling) of a ``torch.compile``d copy at one batch size; the
    no-grad forward compiles with inductor's ``freezing`` (weights folded as constants)."""
    import torch._inductor.config as inductor_config

    net = torch.compile(copy.deepcopy(model))
    xb = x[:1].expand(batch, *x.shape[1:]).contiguous()
    reps = max(1, images // batch)
    patch = inductor_config.patch(freezing=True) if mode == "forward" else nullcontext()
    with patch:
        t0 = time.perf_counter()
        _pass(net, xb, mode)
        setup = time.perf_counter() - t0
        t = timed(lambda: [_pass(net, xb, mode) for _ in range(reps)], repeats=repeats)
    return t.min / (reps * batch), setup


def first_call(setup: str, call: str, timeout: float = 900, env: dict | None = None) -> float:
    """Seconds of ``call`` run once in a fresh Python process after ``setup`` (imports and model
    loading excluded, everything the first call of a process pays included): what a one-off
    command-line user waits for.

    >>> first_call("import math", "math.factorial(10)") < 60
    True
    """
    code = (f"{setup}\nimport time as _t\n_t0 = _t.perf_counter()\n{call}\n"
            "print('FIRST_CALL_SECONDS', _t.perf_counter() - _t0)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, **(env or {})})
    for line in out.stdout.splitlines():
        if line.startswith("FIRST_CALL_SECONDS"):
            return float(line.split()[1])
    raise RuntimeError(f"first call failed: {(out.stderr or out.stdout).strip().splitlines()[-1:]}")


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float]:
    """Least-squares ``y = a + b·x``: (a, b, the largest |residual| / y). Small residuals = linear.

    >>> a, b, r = linear_fit([1, 2, 4, 8], [1.5, 2.5, 4.5, 8.5])
    >>> round(a, 6), round(b, 6), round(r, 6)
    (0.5, 1.0, 0.0)
    """
    X = torch.tensor([[1.0, float(v)] for v in xs], dtype=torch.float64)
    Y = torch.tensor([float(v) for v in ys], dtype=torch.float64)
    coef = torch.linalg.lstsq(X, Y.unsqueeze(1)).solution.squeeze(1)
    resid = (Y - X @ coef).abs() / Y.abs()
    return float(coef[0]), float(coef[1]), float(resid.max())


def rss_bytes() -> int:
    """Resident set size of this process now (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _status_bytes(field: str) -> int:
    """One ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"/proc/self/status has no {field}")


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (``VmHWM``) to the current RSS: True where Linux allows it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def touch_fresh(nbytes: int) -> int:
    """Map ``nbytes`` of new anonymous memory and write one byte per page, so the resident set must grow by
    about that much (an allocator could hand back pages it already holds; a fresh mapping cannot); return
    ``nbytes``. The checks of :func:`peak_rss_growth` use it.

    >>> touch_fresh(2 * mmap.PAGESIZE) == 2 * mmap.PAGESIZE
    True
    """
    m = mmap.mmap(-1, nbytes)
    try:
        for i in range(0, nbytes, mmap.PAGESIZE):
            m[i] = 1
    finally:
        m.close()
    return nbytes


def peak_rss_growth(fn: Callable[[], Any], interval: float = 0.002) -> tuple[int, Any]:
    """(peak RSS during ``fn`` minus RSS just before it, in bytes; ``fn``'s result).

    Read from the kernel's own peak counter (``VmHWM``, reset first through ``/proc/self/clear_refs``), so
    an allocation freed between two samples is still seen; where the counter cannot be reset, a thread
    samples the RSS every ``interval`` seconds instead. Memory freed and reused inside the allocator is not
    seen twice.

    >>> grew, _ = peak_rss_growth(lambda: touch_fresh(64 * 2**20))
    >>> grew > 48 * 2**20
    True
    """
    if _reset_peak_rss():
        start = _status_bytes("VmRSS")
        out = fn()
        return _status_bytes("VmHWM") - start, out
    start = rss_bytes()
    peak = [start]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        out = fn()
        peak[0] = max(peak[0], rss_bytes())
    finally:
        done.set()
        thread.join()
    return peak[0] - start, out


def verdict(value: float | None, bound: float, at_most: bool = True) -> str:
    """'meets' / 'misses' a target ``value ≤ bound`` (``at_most``) or ``value ≥ bound``; '—' without a value.

    >>> verdict(1.05, 1.1), verdict(1.3, 1.2, at_most=False), verdict(0.9, 1.2, at_most=False), verdict(None, 1.1)
    ('meets', 'meets', 'misses', '—')
    """
    if value is None or value != value:
        return "—"
    ok = value <= bound if at_most else value >= bound
    return "meets" if ok else "misses"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A markdown table (pipes in cells escaped).

    >>> print(markdown_table(["a", "b"], [[1, "x|y"]]))
    | a | b |
    |---|---|
    | 1 | x\\|y |
    """
    cell = lambda v: str(v).replace("|", "\\|")
    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    return "\n".join(lines)


def relu6_as_relu(model: nn.Module) -> nn.Module:
    """A copy whose ReLU6 modules are an ``nn.ReLU`` subclass computing ``clamp(x, 0, 6)``: Captum's
    GuidedBackprop, Deconvolution and DeepLift hook ``nn.ReLU`` only (DeepLift by exact type: the
    subclass is registered with its ReLU rule when Captum is installed)."""
    clone = copy.deepcopy(model)
    for module in list(clone.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.ReLU6):
                setattr(module, child_name, ReLU6AsReLU())
    try:
        from captum.attr._core import deep_lift

        deep_lift.SUPPORTED_NON_LINEAR.setdefault(ReLU6AsReLU, deep_lift.nonlinear)
    except ImportError:
        pass
    return clone


class ReLU6AsReLU(nn.ReLU):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, 0, 6)


_STUBS = ("torchvision", "torchvision.models", "torchvision.models.resnet")


def without_torchvision_import() -> None:
    """Let zennit (and Quantus, which imports zennit when present) load without torchvision.

    zennit imports ``torchvision.models.resnet`` at import time for its ResNet canonizers, which the
    benchmarks never use; torchvision cannot be installed beside the CPU torch here (PEERS.md). When
    torchvision is missing, two placeholder block classes stand in for it, so zennit's ResNet
    canonizers match no module; nothing else of torchvision is provided. :func:`peer` takes the
    placeholders out of ``sys.modules`` again once zennit has loaded: transformers, imported later,
    would take them for a real torchvision."""
    try:
        import torchvision  # noqa: F401
        return
    except ImportError:
        pass
    tv, models, resnet = (types.ModuleType(n) for n in ("torchvision", "torchvision.models", "torchvision.models.resnet"))
    resnet.Bottleneck = type("Bottleneck", (nn.Module,), {})
    resnet.BasicBlock = type("BasicBlock", (nn.Module,), {})
    tv.models, models.resnet = models, resnet
    sys.modules.update({"torchvision": tv, "torchvision.models": models, "torchvision.models.resnet": resnet})


def peer(name: str):
    """Import a peer library, or ``None`` (with the reason printed once) when it is not installed."""
    stubbed = name in ("zennit", "quantus") and "torchvision" not in sys.modules
    if stubbed:
        without_torchvision_import()
    try:
        return __import__(name)
    except Exception as e:  # noqa: BLE001 - a peer that cannot load is a note, not a crash
        print(f"note: {name} not available ({type(e).__name__}: {str(e).splitlines()[0][:80]}): its columns are empty")
        return None
    finally:
        if stubbed and not hasattr(sys.modules.get("torchvision"), "__version__"):  # ours, not a real one
            for n in _STUBS:
                sys.modules.pop(n, None)


def write_json(path: str, data: Any) -> None:
    """Every number of a run as JSON (timings with their repeats; the folder is created)."""
    def default(o):
        if isinstance(o, Timing):
            return o.as_dict()
        if hasattr(o, "__dataclass_fields__"):
            return asdict(o)
        if isinstance(o, tuple):
            return list(o)
        return str(o)

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=1, default=default)


__all__ = ["Timing", "timed", "per_image_grid", "best_cell", "merge_min", "grid_text", "compiled_cost", "first_call",
           "linear_fit", "rss_bytes", "peak_rss_growth", "verdict", "markdown_table", "relu6_as_relu",
           "without_torchvision_import", "peer", "write_json", "channels_last_copy"]
