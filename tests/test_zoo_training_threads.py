"""Zoo models train with one torch thread whatever the caller's count (seethrough.zoo.cache.cached_state):
CPU kernels block their sums by thread count, so lenet-digits trained with two threads differs from one
trained with one by 0.3 in its weights, and numbers the docs quote from the model would move with it."""
from __future__ import annotations

import pytest
import torch

from seethrough.testing import torch_threads
from seethrough.zoo.cache import cached_state


def test_training_runs_with_one_thread_and_the_count_is_restored(tmp_path):
    seen = []

    def train():
        seen.append(torch.get_num_threads())
        return {"w": torch.ones(2)}

    with torch_threads(2):
        cached_state(tmp_path / "m.pt", {"name": "threads"}, train)
        assert torch.get_num_threads() == 2
    assert seen == [1]


def test_training_raising_restores_the_thread_count(tmp_path):
    def train():
        raise RuntimeError("boom")

    with torch_threads(2):
        with pytest.raises(RuntimeError, match="boom"):
            cached_state(tmp_path / "m.pt", {"name": "threads"}, train)
        assert torch.get_num_threads() == 2
