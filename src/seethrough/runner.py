"""How a model runs many passes: the one place that picks the memory layout and, on request, compiles.

Every many-pass loop (occlusion, LIME, KernelSHAP, RISE, SmoothGrad, integrated gradients, the metrics
and sanity cascades) runs its batches inside :func:`fast`, *inside* :func:`seethrough.hooks.hooks`::

    with hooks(model), torch.no_grad(), fast(model, x, "forward") as run:
        out = run_batched(run.guard(lambda a, b: run.model(run.input(batch(a, b)))), n)

**Layout.** For a 4-D image batch and a model holding a ``Conv2d``, the model is converted to
channels-last *in place*: every 4-D parameter and buffer gets a channels-last ``.data`` and its original
tensor is kept; on exit (also when the body raises) ``p.data = original`` puts back the very same tensor —
same storage (``data_ptr``), strides, dtype and values, and ``_version`` untouched. No copy of the model is
made per call (the deep copy this replaces cost a full model per call). Measured 1.4-1.5× faster per image
on EfficientNet-Lite0 on a CPU (``benchmarks/``), and the layout cudnn prefers for convolutions, so it is
used on every device. A model whose forward cannot run channels-last (it calls ``.view`` on a weight, say)
falls back: :meth:`Run.guard` sees the layout error on the first batch, restores the model, switches to the
contiguous layout, retries, and remembers the model (weakly) so later calls start contiguous.

**Compilation** (``compile=True``, opt-in). ``torch.compile`` of the model, one compile per (model, mode,
per-item shape, dtype, device, layout, batch size), cached for the process and invalidated when any
parameter or buffer changes (its ``_version``, ``data_ptr`` or value sum). Inference (``mode="forward"``)
compiles under ``torch._inductor.config.patch(freezing=True)``: the weights become constants of the compiled
graph, which is why a weight change must recompile (tests/test_runner_compile.py shows the stale result
it would give otherwise). Gradient passes (``mode="grad"``) compile forward and backward without freezing.
Every batch is padded to the compiled batch size, so a short tail batch does not recompile. The first
compile reports its time through :func:`seethrough.progress.report` (``"compile"``); a compile that fails
falls back to eager with one warning line.
"""
from __future__ import annotations

import os
import time
import warnings
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from torch import nn

from .batching import ModelKey, bytes_per_item, default_batch_size, fingerprint, model_key
from .progress import report

__all__ = ["fast", "Run", "fingerprint", "wants_channels_last", "as_layout_of", "once"]  # fingerprint: from batching, re-exported

MODES = ("forward", "grad")
_NO_CHANNELS_LAST: "weakref.WeakKeyDictionary[nn.Module, bool]" = weakref.WeakKeyDictionary()
# model -> {(mode, shape, dtype, device, layout, batch): (fingerprint, compiled callable or None if it failed)}
_COMPILED: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def wants_channels_last(model: nn.Module, x: torch.Tensor) -> bool:
    """True when ``x`` is a 4-D image batch and ``model`` has a ``Conv2d`` that has not failed channels-last.

    >>> wants_channels_last(nn.Sequential(nn.Conv2d(3, 4, 3)), torch.rand(2, 3, 8, 8))
    True
    >>> wants_channels_last(nn.Linear(4, 2), torch.rand(2, 4))
    False
    """
    return (isinstance(x, torch.Tensor) and x.dim() == 4 and model not in _NO_CHANNELS_LAST
            and any(isinstance(m, nn.Conv2d) for m in model.modules()))


def _convert(model: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Give every 4-D parameter and buffer a channels-last ``.data``; return (tensor, original data) pairs."""
    saved = []
    for t in [*model.parameters(), *model.buffers()]:
        if t.dim() == 4 and not t.is_contiguous(memory_format=torch.channels_last):
            original = t.data
            saved.append((t, original))
            t.data = original.contiguous(memory_format=torch.channels_last)
    return saved


def _restore(saved: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    for t, original in reversed(saved):
        t.data = original  # the very same tensor: storage, strides, dtype and values as found


def _layout_error(e: BaseException) -> bool:
    """An error the channels-last layout can cause (``.view`` on a permuted tensor and the like)."""
    msg = str(e).lower()
    return isinstance(e, RuntimeError) and ("stride" in msg or "contiguous" in msg or "memory format" in msg)


@dataclass
class Run:
    """What :func:`fast` yields: ``model`` to call (the user's model converted in place, or its compiled
    form), the ``layout`` to give inputs (:meth:`input`), and :meth:`guard` for the batch function."""

    model: Any
    layout: torch.memory_format
    mode: str
    batch_size: int | str = "auto"
    compiled: bool = False
    key: ModelKey | None = None  # the batch-size key of the weights as found (before the conversion)
    _original: nn.Module | None = None
    _saved: list = field(default_factory=list)
    _ok: bool = False

    def __iter__(self):  # ``with fast(...) as (net, layout):``
        return iter((self.model, self.layout))

    def input(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` in the run's layout (4-D tensors only; anything else as given)."""
        return t.contiguous(memory_format=self.layout) if isinstance(t, torch.Tensor) and t.dim() == 4 else t

    def guard(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` with the channels-last fallback: until one call has succeeded, a layout error restores the
        model, switches to the contiguous layout and calls ``fn`` again (``fn`` reads :attr:`layout` /
        :meth:`input` each call)."""

        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                out = fn(*args, **kwargs)
            except RuntimeError as e:
                if self._ok or self.layout != torch.channels_last or not _layout_error(e):
                    raise
                self._fall_back()
                out = fn(*args, **kwargs)
            self._ok = True
            return out

        return guarded

    def _fall_back(self) -> None:
        _restore(self._saved)
        self._saved = []
        self.layout = torch.contiguous_format
        if self._original is not None:
            _NO_CHANNELS_LAST[self._original] = True
            self.model, self.compiled = self._original, False
        report("channels-last failed on this model: running contiguous", 0, 0)


@contextmanager
def fast(model: nn.Module, x: torch.Tensor, mode: str = "forward", *, compile: bool = False, n: int | None = None,
         batch_size: int | str = "auto", key_mode: str | None = None, single: bool = False) -> Iterator[Run]:
    """Run many passes of ``model`` on batches like ``x`` in the fastest layout, the model restored exactly on exit.

    Call it inside :func:`seethrough.hooks.hooks` (eval mode, frozen parameters). ``mode`` is ``"forward"``
    (no autograd) or ``"grad"`` (forward + input gradient). ``compile=True`` compiles the model for these
    passes (module docstring), else the user's model itself is called, converted to channels-last in place
    when that helps. ``n`` (the number of items) and ``batch_size`` give :attr:`Run.batch_size`, the
    ``batch_size`` to hand :func:`~seethrough.batching.run_batched`: as given, except that a compiled run
    needs one fixed size (``"auto"`` becomes :func:`~seethrough.batching.default_batch_size` of ``n``).
    :attr:`Run.key` is the ``key`` for ``run_batched``: :func:`~seethrough.batching.model_key` of the weights
    as found, taken before the conversion (the converted tensors' pointers are new on every call, so a key
    taken inside would never be remembered); ``key_mode`` names it when a method keeps its own sizes.
    ``single=True``: one pass, not batched (the single-pass methods, :func:`once`): no batch-size key is taken
    (``key`` is None), saving a walk over every parameter.

    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 2)).eval()
    >>> x = torch.rand(5, 3, 8, 8)
    >>> ptr, strides = net[0].weight.data_ptr(), net[0].weight.stride()
    >>> with torch.no_grad(), fast(net, x) as run:
    ...     inside = run.model[0].weight.is_contiguous(memory_format=torch.channels_last)
    ...     y = run.model(run.input(x))
    >>> inside, run.layout == torch.channels_last, torch.allclose(y, net(x), atol=1e-6)
    (True, True, True)
    >>> net[0].weight.data_ptr() == ptr and net[0].weight.stride() == strides   # the very tensor as found
    True
    >>> with torch.no_grad(), fast(net, x) as again:
    ...     pass
    >>> again.key.rest == run.key.rest   # the weights as found, unchanged by the conversion: the same batch-size key
    True
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    if not isinstance(compile, bool):
        raise TypeError(f"compile must be True or False, got {compile!r}")
    plain = model if isinstance(model, nn.Module) else None
    cl = plain is not None and wants_channels_last(plain, x)
    fp = fingerprint(plain, values=True) if compile and plain is not None else None
    key = model_key(plain, x, key_mode or mode) if plain is not None and not single else None
    saved = _convert(plain) if cl else []
    run = Run(model, torch.channels_last if cl else torch.contiguous_format, mode, batch_size=batch_size, key=key,
              _original=plain, _saved=saved)
    try:
        if compile and plain is not None:
            size = batch_size
            if size == "auto":
                items = n if n is not None else x.shape[0]
                size = default_batch_size(items, min(items, 64), x.device, bytes_per_item(x))  # the rule sizes by the forward
            run.batch_size = size
            compiled = _compiled(plain, x, mode, run.layout, size, fp)
            if compiled is not None:
                run.model, run.compiled = compiled, True
        yield run
    finally:
        _restore(run._saved)


# ------------------------------------------------------------------------------------------ compile
class _Compiled(nn.Module):
    """The compiled forward of ``inner``, padding each batch to ``size`` rows (one compiled shape)."""

    def __init__(self, inner: nn.Module, fn: Callable, size: int | None, freezing: bool):
        super().__init__()
        self.inner = inner  # registered: hooks() sets and restores its flags through this wrapper
        object.__setattr__(self, "_fn", fn)
        self.size, self.freezing = size, freezing

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        k = x.shape[0]
        pad = self.size is not None and not args and not kwargs and k < self.size
        if pad:
            x = torch.cat([x, x[-1:].expand(self.size - k, *x.shape[1:])]).contiguous(memory_format=_layout_of(x))
        with torch._inductor.config.patch(inductor_options(self.freezing)):
            out = self._fn(x, *args, **kwargs)
        if pad:
            if not isinstance(out, torch.Tensor):
                raise TypeError("compile=True pads batches and needs a model that returns one tensor")
            out = out[:k]
        return out


# ATen's kernel choice, pinned by ATEN_CPU_CAPABILITY (make test pins avx2), and the vector width inductor picks
# by probing the CPU must agree: with ATen pinned to AVX2 on an AVX-512 machine, inductor's 512-bit code gave
# SmoothGrad gradients of 1e32 on lenet-digits (measured, torch 2.13); at the pinned width they equal eager.
_SIMD = {"avx2": 256, "avx512": 512}


def inductor_options(freezing: bool) -> dict[str, Any]:
    """The ``torch._inductor.config`` a compile runs under: ``freezing`` and, where ``ATEN_CPU_CAPABILITY``
    pins ATen's CPU kernels, the same vector width for inductor's generated code.

    >>> inductor_options(True)["freezing"]
    True
    """
    opts: dict[str, Any] = {"freezing": freezing}
    width = _SIMD.get(os.environ.get("ATEN_CPU_CAPABILITY", "").lower())
    if width is not None:
        opts["cpp.simdlen"] = width
    return opts


def once(model: nn.Module, x: torch.Tensor, fn: Callable[[Run], Any], mode: str = "grad") -> Any:
    """``fn(run)`` called once inside :func:`fast` (``single=True``) with the layout fallback: the one pass of a
    single-pass method, channels-last where that helps, the model restored exactly on exit.

    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 36, 2)).eval()
    >>> x = torch.rand(2, 3, 8, 8)
    >>> with torch.no_grad():
    ...     y = once(net, x, lambda run: run.model(run.input(x)), "forward")
    >>> torch.allclose(y, net(x), atol=1e-6), net[0].weight.is_contiguous()
    (True, True)
    """
    with fast(model, x, mode, single=True) as run:
        return run.guard(lambda: fn(run))()


def as_layout_of(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``t`` with the memory layout of ``like`` (a result computed channels-last handed back as the input was given).

    >>> x = torch.rand(1, 3, 4, 4)
    >>> as_layout_of(x.contiguous(memory_format=torch.channels_last), x).is_contiguous()
    True
    """
    return t.contiguous(memory_format=_layout_of(like)) if t.dim() == 4 and like.dim() == 4 else t


def _layout_of(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous() else torch.contiguous_format


def _compiled(model: nn.Module, x: torch.Tensor, mode: str, layout: torch.memory_format, size: int | None,
              fp: tuple) -> nn.Module | None:
    """The cached compiled wrapper of ``model`` for this key, compiling (and timing) it on first use."""
    key = (mode, tuple(x.shape[1:]), x.dtype, str(x.device), str(layout), size)
    per_model = _COMPILED.setdefault(model, {})
    hit = per_model.get(key)
    if hit is not None and hit[0] == fp:
        return hit[1]
    if any(old_fp != fp for old_fp, _ in per_model.values()):
        # The weights changed since a compile: dynamo's cache is keyed on code and guards, not on values,
        # and a frozen graph holds the old weights as constants, so drop every compiled graph.
        torch._dynamo.reset()
        _COMPILED.clear()
        per_model = _COMPILED.setdefault(model, {})
    wrapper = _Compiled(model, torch.compile(model, dynamic=False), size, freezing=mode == "forward")
    shape = (size or x.shape[0], *x.shape[1:])
    probe = torch.zeros(shape, dtype=x.dtype, device=x.device).contiguous(memory_format=layout) if x.dim() == 4 \
        else torch.zeros(shape, dtype=x.dtype, device=x.device)
    t0 = time.perf_counter()
    try:
        with torch._inductor.config.patch(inductor_options(mode == "forward")):  # the backward compiles here too
            _probe(wrapper, probe, mode)
    except Exception as e:  # noqa: BLE001 - any compiler failure: eager is always right
        warnings.warn(f"compile=True: torch.compile failed on this model ({type(e).__name__}: "
                      f"{str(e).splitlines()[0][:200] if str(e) else ''}); running eager", RuntimeWarning, stacklevel=4)
        per_model[key] = (fp, None)
        return None
    seconds = time.perf_counter() - t0
    report(f"compiled the model for {mode} passes in {seconds:.1f} s", 1, 1)
    wrapper.compile_seconds = seconds
    per_model[key] = (fp, wrapper)
    return wrapper


def _probe(wrapper: nn.Module, probe: torch.Tensor, mode: str) -> None:
    """One call that compiles ``wrapper`` for ``mode`` (forward, or forward and backward)."""
    if mode == "forward":
        with torch.no_grad():
            wrapper(probe)
        return
    with torch.enable_grad():
        p = probe.requires_grad_(True)
        out = wrapper(p)
        torch.autograd.grad(out.sum() if isinstance(out, torch.Tensor) else out[0].sum(), p)


def compiled_count(model: nn.Module) -> int:
    """How many compiled graphs of ``model`` are cached (0 when none).

    >>> compiled_count(nn.Linear(2, 2))
    0
    """
    return sum(w is not None for _, w in _COMPILED.get(model, {}).values())
