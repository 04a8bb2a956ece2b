"""Twins of zoo models trained on permuted labels, for the data-randomization sanity check.

Adebayo et al. (2018) compare a model's explanations with those of the same architecture
trained on the same inputs whose labels were shuffled: the twin can only memorise, so an
explanation that looks the same for both does not depend on the relation between data and
labels. The twin must *fit* its training labels (it really learned the permuted task) and be
at chance on the test split (nothing about the true task leaked in).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

_CACHE_VERSION = "v1"
# No augmentation (shifts would make memorising random labels much slower) and a one-cycle
# schedule: measured, the shuffled training labels are fitted (100 %) after about 45 of 50 epochs.
_PERMUTED_CONFIG: dict[str, Any] = {"epochs": 50, "seed": 0, "label_seed": 1234, "max_lr": 3e-3, "batch_size": 32}


def permuted_labels(y: torch.Tensor, seed: int = _PERMUTED_CONFIG["label_seed"]) -> torch.Tensor:
    """The training labels shuffled across samples with a fixed seed (same class frequencies).

    >>> y = torch.arange(10)
    >>> sorted(permuted_labels(y).tolist()) == list(range(10))
    True
    """
    gen = torch.Generator().manual_seed(seed)
    return y[torch.randperm(len(y), generator=gen)]


def train_permuted_lenet(epochs: int = _PERMUTED_CONFIG["epochs"], seed: int = _PERMUTED_CONFIG["seed"]) -> nn.Module:
    """A LeNet trained on the digits' train split with permuted labels (deterministic for a seed)."""
    from .lenet import LeNet, _deterministic, digits

    x, y = digits("train")
    y = permuted_labels(y)
    bs = _PERMUTED_CONFIG["batch_size"]
    with torch.random.fork_rng(devices=[]), _deterministic():
        torch.manual_seed(seed)
        model = LeNet()
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(model.parameters(), lr=_PERMUTED_CONFIG["max_lr"])
        total = max(1, epochs * -(-len(y) // bs))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=_PERMUTED_CONFIG["max_lr"], total_steps=total)
        model.train()
        for _ in range(epochs):
            order = torch.randperm(len(y), generator=gen)
            for start in range(0, len(y), bs):
                batch = order[start: start + bs]
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(x[batch]), y[batch]).backward()
                opt.step()
                sched.step()
    return model.eval()


def _cache_path() -> Path:
    from .lenet import _TRAIN_CONFIG, cache_dir

    config = json.dumps({"permuted": _PERMUTED_CONFIG, "base": _TRAIN_CONFIG}, sort_keys=True).encode()
    return cache_dir() / f"lenet-digits-permuted-{_CACHE_VERSION}-{hashlib.sha256(config).hexdigest()[:12]}.pt"


def permuted_twin(name: str) -> nn.Module:
    """The zoo model ``name`` retrained on permuted labels, trained on first use and cached.

    Only ``"lenet-digits"`` has a twin: retraining EfficientNet-Lite0 on ImageNet is out of reach.

    >>> twin = permuted_twin("lenet-digits")
    >>> twin.training
    False
    """
    if name != "lenet-digits":
        raise ValueError(f"no permuted-label twin for {name!r}: only 'lenet-digits' can be retrained offline "
                         "(pass your own twin to see.sanity.data_randomization)")
    from .lenet import cached_lenet
    from .pinned import train_pinned

    return cached_lenet(_cache_path(), lambda: train_pinned(train_permuted_lenet), recipe={"name": "lenet-digits-permuted",
                        "version": _CACHE_VERSION, **_PERMUTED_CONFIG}, check=twin_check)


#: what a freshly trained twin must show to be cached: it fits the permuted training labels
#: (measured: 91 % in eval mode) and stays near chance (10 %) on the true test labels (measured: 11 %)
MIN_PERMUTED_FIT, MAX_TEST_ACCURACY = 0.85, 0.2


def twin_check(model: nn.Module) -> str | None:
    """``None`` when ``model`` memorised the permuted labels and learned nothing of the true task."""
    from .lenet import digit_accuracy, digits

    x, y = digits("train")
    with torch.no_grad():
        fit = (model(x).argmax(1) == permuted_labels(y)).float().mean().item()
    test = digit_accuracy(model, "test")
    if fit < MIN_PERMUTED_FIT or test > MAX_TEST_ACCURACY:
        return (f"it fits {fit:.0%} of the permuted training labels (needs {MIN_PERMUTED_FIT:.0%}) and reaches "
                f"{test:.0%} on the true test labels (must stay under {MAX_TEST_ACCURACY:.0%})")
    return None
