"""Zoo training on pinned CPU kernels: the same recipe gives the same weights bit for bit on every x86 CPU.

Why: PyTorch picks its CPU kernels by instruction set at start-up (oneDNN's convolutions, ATen's vector
code). An AVX-512 machine sums in another order than an AVX2 one, and a few thousand optimiser steps
amplify the last-bit differences: the lenet-digits trained on an AVX-512 machine was a different model
(measured: six of the numbers the docs quote from it came out different), so what the docs say moved with
the machine. MKL's matrix products (the ``Linear`` layers) are the third choice: by default MKL picks
its code path and blocking by CPU and by the shape of the product, so on a Xeon with a 4 MiB L2 one
row of a batch came out different when it was multiplied alone (measured there: every row of a 64×400
by 400×120 product differed in its last bits; CI ran on that machine and seven docs numbers moved).
``MKL_CBWR=AVX2,STRICT`` (conditional numerical reproducibility) fixes MKL's path and blocking: MKL
documents the same bits on every AVX2 CPU for it, and on that Xeon a row multiplied alone or in a batch
then gave the same bits (0 of 64 differ; ``tests/test_zoo_pinned.py`` checks it). All three
choices are read once per process from environment variables, so the training runs in a fresh Python
with ``ONEDNN_MAX_CPU_ISA=AVX2``, ``ATEN_CPU_CAPABILITY=avx2`` and ``MKL_CBWR=AVX2,STRICT`` (every
x86-64 CPU the wheels support has AVX2) and hands its result back through a temporary file. A process
already started with all three pins (or not on x86-64, where there is nothing to pin) trains in place.
"""
from __future__ import annotations

import importlib
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

#: the environment every zoo training runs under on x86-64
PINNED_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2,STRICT"}

_CHILD = """
import importlib, sys, torch
torch.set_num_threads(int(sys.argv[5]))  # the caller's count (the zoo trains on one thread): sums split alike
args, kwargs = torch.load(sys.argv[3], weights_only=False)
fn = getattr(importlib.import_module(sys.argv[1]), sys.argv[2])
torch.save(fn(*args, **kwargs), sys.argv[4])
"""


def pinned_here() -> bool:
    """True when this process already runs on the pinned kernels (or on a CPU with nothing to pin).

    >>> isinstance(pinned_here(), bool)
    True
    """
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return True
    return all(os.environ.get(k, "").lower() == v.lower() for k, v in PINNED_ENV.items())


def train_pinned(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` computed on the pinned CPU kernels: in this process when it already runs on
    them, else in a fresh Python that does, with this process's torch thread count. ``fn`` is a module-level function; its arguments and result
    go through ``torch.save`` (a model, a state dict, tensors). A failure in the child is a
    ``RuntimeError`` carrying the child's last lines.

    >>> import math
    >>> train_pinned(math.factorial, 5)
    120
    """
    if pinned_here():
        return fn(*args, **kwargs)
    module, name = fn.__module__, fn.__qualname__
    if "." in name or getattr(importlib.import_module(module), name, None) is not fn:
        raise TypeError(f"train_pinned needs a module-level function, got {module}.{name}")
    # the child must import the same seethrough (a source checkout on PYTHONPATH included)
    here = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join([here, *[p for p in sys.path if p]])
    env = {**os.environ, **PINNED_ENV, "PYTHONPATH": path}
    with tempfile.TemporaryDirectory(prefix="seethrough-train-") as tmp:
        given, result = Path(tmp) / "args.pt", Path(tmp) / "result.pt"
        torch.save((args, kwargs), given)
        done = subprocess.run([sys.executable, "-c", _CHILD, module, name, str(given), str(result),
                               str(torch.get_num_threads())],
                              env=env, capture_output=True, text=True)
        if done.returncode != 0:
            tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            raise RuntimeError(f"training {module}.{name} on pinned CPU kernels failed: {tail}")
        return torch.load(result, weights_only=False)
