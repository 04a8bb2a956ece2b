"""Zoo training on pinned CPU kernels (seethrough.zoo.pinned): the child really runs with the pins and the
caller's thread count, and a failure or an unusable function is one clear error."""
from __future__ import annotations

import math
import os
import platform
import subprocess
import sys

import pytest
import torch

from seethrough.testing import torch_threads
from seethrough.zoo.pinned import PINNED_ENV, pinned_here, train_pinned

x86 = platform.machine().lower() in ("x86_64", "amd64")


@pytest.fixture
def unpinned(monkeypatch):
    for k in PINNED_ENV:
        monkeypatch.delenv(k, raising=False)


@pytest.mark.skipif(not x86, reason="only x86-64 has CPU kernels to pin; elsewhere training runs in place")
def test_without_the_pins_the_training_runs_in_a_child_that_has_them(unpinned):
    assert not pinned_here()
    assert train_pinned(os.getenv, "ONEDNN_MAX_CPU_ISA") == "AVX2"
    assert train_pinned(os.getenv, "ATEN_CPU_CAPABILITY") == "avx2"
    assert train_pinned(os.getenv, "MKL_CBWR") == "AVX2,STRICT"
    assert train_pinned(os.getpid) != os.getpid()  # another process
    with torch_threads(1):  # cached_state trains on one thread: the child must too
        assert train_pinned(torch.get_num_threads) == 1


def test_with_the_pins_the_training_runs_here(monkeypatch):
    for k, v in PINNED_ENV.items():
        monkeypatch.setenv(k, v)
    assert pinned_here() and train_pinned(os.getpid) == os.getpid()


@pytest.mark.skipif(not x86, reason="only x86-64 runs a child")
def test_a_failure_in_the_child_is_one_runtime_error_with_its_message(unpinned):
    with pytest.raises(RuntimeError, match="math.sqrt on pinned CPU kernels failed: .*math domain error"):
        train_pinned(math.sqrt, -1.0)


@pytest.mark.skipif(not x86, reason="only x86-64 runs a child")
def test_a_function_the_child_cannot_import_is_refused(unpinned):
    with pytest.raises(TypeError, match="module-level function"):
        train_pinned(lambda: 1)



_ROWS_ALONE = """
import torch
torch.manual_seed(0)
lin = torch.nn.Linear(400, 120)
x = torch.randn(64, 400)
with torch.no_grad():
    full = lin(x)
    print(sum(not torch.equal(lin(x[i:i + n]), full[i:i + n]) for n in (1, 4, 16) for i in range(0, 64, n)))
"""


@pytest.mark.skipif(not x86, reason="only x86-64 has CPU kernels to pin")
def test_on_the_pinned_kernels_a_row_multiplied_alone_gives_the_bits_it_gives_in_a_batch():
    """MKL_CBWR=AVX2,STRICT is what makes a Linear batch-invariant (by default a Xeon with a 4 MiB L2 gave
    other last bits for all 64 rows alone); the scans' merge and top-k tests compare bits across batches."""
    done = subprocess.run([sys.executable, "-c", _ROWS_ALONE], env={**os.environ, **PINNED_ENV},
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "0", done.stdout


def test_make_pins_the_same_kernels_the_zoo_trains_on():
    """The Makefile's PINNED (make test, make demo) and PINNED_ENV are two spellings of one setting: a pin
    added to one only would train the zoo on other kernels than the tests and the report run on."""
    from pathlib import Path

    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    line = next(ln for ln in makefile.splitlines() if ln.startswith("PINNED :="))
    assert dict(kv.split("=", 1) for kv in line.split(":=", 1)[1].split()) == PINNED_ENV
