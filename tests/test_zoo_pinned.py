"""Zoo training on pinned CPU kernels (seethrough.zoo.pinned): the child really runs with the pins and the
caller's thread count, and a failure or an unusable function is one clear error."""
from __future__ import annotations

import math
import os
import platform

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

