"""``mlp-breast-cancer``: a small MLP on scikit-learn's breast-cancer rows, standardisation inside the model.

The tabular counterpart of lenet-digits. The data ship inside scikit-learn (569 rows, 30 features,
``malignant`` = 0 / ``benign`` = 1), so the model trains offline in about a second and is cached
with the checksum and recipe identity of :mod:`seethrough.zoo.cache`. The network's first module
is :class:`Standardize` (the training mean and std as buffers, like ``normalize`` for images): it
takes RAW feature rows, so baselines, backgrounds and attack budgets are all in feature units.

The train/test split is the one of :func:`seethrough.inspect.breast_cancer_logistic` (a
stratified quarter held out, ``random_state=0``), so the MLP and the logistic regression are
judged on the same held-out rows.

>>> rows, labels, names = breast_cancer("test")
>>> tuple(rows.shape), names[0]
((143, 30), 'mean radius')
"""
from __future__ import annotations

import functools
import hashlib
import json
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .pinned import train_pinned

SPLITS = ("train", "test", "all")
CLASSES = ["malignant", "benign"]

# Bump the version whenever the data pipeline or architecture changes in a way the training
# config does not capture, so stale cache files are never reused.
_CACHE_VERSION = "v1"
_TRAIN_CONFIG: dict[str, Any] = {
    "hidden": [32, 16],
    "steps": 300,
    "lr": 3e-3,
    "weight_decay": 0.1,
    "seed": 0,
    "test_size": 0.25,
    "split_seed": 0,
}

#: held-out accuracy a freshly trained mlp-breast-cancer must reach to be cached (measured: see docs/tabular.md)
MIN_TEST_ACCURACY = 0.95


class Standardize(nn.Module):
    """``(x - mean) / std`` per feature, for rows ``(N, F)``; the statistics are buffers of the state dict.

    >>> s = Standardize([1.0, 10.0], [2.0, 5.0])
    >>> s(torch.tensor([[3.0, 0.0]])).tolist()
    [[1.0, -2.0]]
    """

    def __init__(self, mean: Sequence[float] | torch.Tensor, std: Sequence[float] | torch.Tensor):
        super().__init__()
        mean = torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1)
        std = torch.as_tensor(std, dtype=torch.float32).reshape(1, -1)
        if mean.shape != std.shape:
            raise ValueError(f"mean has {mean.shape[1]} features but std has {std.shape[1]}; give one value per feature")
        if bool((std <= 0).any()):
            raise ValueError("std must be positive for every feature")
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.mean.shape[1]:
            raise ValueError(f"expected tabular rows (N, {self.mean.shape[1]}) in raw feature units, "
                             f"got shape {tuple(x.shape)}")
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def extra_repr(self) -> str:
        return f"features={self.mean.shape[1]}"


def mlp(n_features: int = 30, hidden: Sequence[int] = (32, 16), n_classes: int = 2, *,
        mean: torch.Tensor | None = None, std: torch.Tensor | None = None, seed: int = 0) -> nn.Sequential:
    """The untrained architecture: ``standardize`` → ``fc1`` → ``relu1`` → … → ``fc{k}`` (logits).

    Each ReLU is its own module so hooks and backward rules can see every activation.

    >>> net = mlp()
    >>> [n for n, _ in net.named_children()]
    ['standardize', 'fc1', 'relu1', 'fc2', 'relu2', 'fc3']
    >>> net(torch.zeros(4, 30)).shape
    torch.Size([4, 2])
    """
    mean = torch.zeros(n_features) if mean is None else mean
    std = torch.ones(n_features) if std is None else std
    layers: list[tuple[str, nn.Module]] = [("standardize", Standardize(mean, std))]
    width = n_features
    with torch.random.fork_rng(devices=[]):  # seeding the init leaves the caller's random stream alone
        torch.manual_seed(seed)
        for i, h in enumerate(hidden, 1):
            layers += [(f"fc{i}", nn.Linear(width, h)), (f"relu{i}", nn.ReLU())]
            width = h
        layers.append((f"fc{len(hidden) + 1}", nn.Linear(width, n_classes)))
    return nn.Sequential(OrderedDict(layers)).eval()


@functools.lru_cache(maxsize=1)
def _load_all() -> tuple[np.ndarray, np.ndarray, tuple[str, ...], np.ndarray, np.ndarray]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    raw = load_breast_cancer()
    idx = np.arange(len(raw.target))
    itr, ite = train_test_split(idx, test_size=_TRAIN_CONFIG["test_size"], random_state=_TRAIN_CONFIG["split_seed"],
                                stratify=raw.target)
    return (raw.data.astype(np.float32), raw.target.astype(np.int64), tuple(str(n) for n in raw.feature_names),
            np.sort(itr), np.sort(ite))


def feature_names() -> list[str]:
    """The 30 column names, in the order of the model's input.

    >>> feature_names()[-1]
    'worst fractal dimension'
    """
    return list(_load_all()[2])


def breast_cancer(split: str = "train") -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """``(rows float32 (N, 30) in raw feature units, labels int64 (0 malignant, 1 benign), feature names)``.

    ``split`` is ``"train"`` (426 rows), ``"test"`` (a fixed stratified 143) or ``"all"`` (569);
    the tensors are fresh copies.

    >>> rows, y, names = breast_cancer("train")
    >>> rows.dtype, y.dtype, len(names), sorted(set(y.tolist()))
    (torch.float32, torch.int64, 30, [0, 1])
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(map(repr, SPLITS))}")
    x, y, names, itr, ite = _load_all()
    idx = {"train": itr, "test": ite, "all": np.arange(len(y))}[split]
    return torch.from_numpy(x[idx].copy()), torch.from_numpy(y[idx].copy()), list(names)


def background(n: int = 100, seed: int = 0) -> torch.Tensor:
    """``n`` training rows drawn without replacement by a seeded permutation: the baseline set of the
    perturbation methods (what a feature "switched off" takes) and of integrated gradients.

    >>> bg = background(100)
    >>> tuple(bg.shape), torch.equal(bg, background(100))
    ((100, 30), True)
    """
    x, _, _ = breast_cancer("train")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(x):
        raise ValueError(f"n must be an int from 1 to {len(x)} (the training rows), got {n!r}")
    return x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]]


def benign_log_odds(output: torch.Tensor) -> torch.Tensor:
    """A callable target: the log-odds of benign, ``logit[1] − logit[0]`` = ``log p(benign) / p(malignant)``.

    The score a binary softmax model explains best: unlike one class's logit, it does not change
    when the same number is added to both logits, and it is what a logistic regression outputs.

    >>> benign_log_odds(torch.tensor([[0.5, 2.0]])).tolist()
    [1.5]
    """
    return output[:, 1] - output[:, 0]


#: the tabular zoo models and their data: ``name -> breast_cancer``-like ``split -> (rows, labels, names)``
DATASETS = {"mlp-breast-cancer": breast_cancer}


def train_mlp(seed: int = _TRAIN_CONFIG["seed"], steps: int = _TRAIN_CONFIG["steps"]) -> nn.Sequential:
    """Train the MLP on the train split: full-batch Adam with weight decay, deterministic for a seed.

    The standardisation statistics are the train split's mean and (population) std. The caller's
    global random state is left as it was. Returns the model in eval mode.

    >>> net = train_mlp(steps=5)
    >>> net.training, net.standardize.mean.shape
    (False, torch.Size([1, 30]))
    """
    from .lenet import _deterministic

    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    x, y, _ = breast_cancer("train")
    mean, std = x.double().mean(0), x.double().std(0, unbiased=False)
    model = mlp(x.shape[1], _TRAIN_CONFIG["hidden"], len(CLASSES), mean=mean.float(), std=std.float(), seed=seed)
    # Only the Linear layers learn: the standardisation is fixed by the training data.
    params = [p for n, p in model.named_parameters() if n.startswith("fc")]
    with torch.random.fork_rng(devices=[]), _deterministic():
        opt = torch.optim.Adam(params, lr=_TRAIN_CONFIG["lr"], weight_decay=_TRAIN_CONFIG["weight_decay"])
        model.train()
        for _ in range(steps):  # 426 rows: one full batch per step is both the fastest and seed-free
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()
    for p in model.parameters():
        p.grad = None
    return model.eval()


def tabular_accuracy(model: nn.Module, split: str = "test") -> float:
    """Fraction of ``split`` that ``model`` classifies correctly (its train/eval mode restored).

    >>> 0.0 <= tabular_accuracy(mlp()) <= 1.0
    True
    """
    from ..hooks import hooks

    x, y, _ = breast_cancer(split)
    with hooks(model), torch.no_grad():  # eval mode, the model left as found
        pred = model(x).argmax(1)
    return (pred == y).double().mean().item()


def _recipe() -> dict[str, Any]:
    return {"name": "mlp-breast-cancer", "version": _CACHE_VERSION, **_TRAIN_CONFIG}


def _cache_path() -> Path:
    from .cache import cache_dir

    key = hashlib.sha256(json.dumps(_TRAIN_CONFIG, sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir() / f"mlp-breast-cancer-{_CACHE_VERSION}-{key}.pt"


def accuracy_check(state: dict[str, torch.Tensor]) -> str | None:
    """``None`` when the model of ``state`` reaches :data:`MIN_TEST_ACCURACY` on the test split, else why not.

    >>> accuracy_check(mlp().state_dict()).startswith("its test accuracy is")
    True
    """
    model = mlp()
    model.load_state_dict(state)
    acc = tabular_accuracy(model, "test")
    return None if acc >= MIN_TEST_ACCURACY else f"its test accuracy is {acc:.1%}, below the {MIN_TEST_ACCURACY:.0%} its recipe reaches"


def mlp_breast_cancer() -> nn.Sequential:
    """The trained model in eval mode, from the cache or trained once and cached.

    A cache file that fails its checksum or was written by another recipe is retrained (one
    warning); a fresh model below :data:`MIN_TEST_ACCURACY` is returned with a warning, never cached.

    >>> tabular_accuracy(mlp_breast_cancer()) >= MIN_TEST_ACCURACY
    True
    """
    from .cache import cached_state

    state = cached_state(_cache_path(), _recipe(), lambda: train_pinned(train_mlp).state_dict(), accuracy_check)
    model = mlp()
    model.load_state_dict(state)
    return model.eval()


def rows(src: Any) -> torch.Tensor:
    """Preprocessing of ``mlp-breast-cancer``: an ``(N, 30)`` (or one ``(30,)``) array-like in raw units → float32.

    A pandas DataFrame must have the model's columns (any order; they are put in the model's order).

    >>> rows(np.zeros(30)).shape
    torch.Size([1, 30])
    >>> rows(np.zeros((2, 29)))
    Traceback (most recent call last):
    ...
    ValueError: mlp-breast-cancer takes rows of 30 features (N, 30), got shape (2, 29)
    """
    names = feature_names()
    if hasattr(src, "columns"):  # a DataFrame: match the columns by name, not by position
        src = src[match_columns(list(src.columns), names)]
    t = torch.from_numpy(np.array(src, dtype=np.float32))  # a copy: the caller's array stays theirs
    if t.dim() == 1:
        t = t[None]
    if t.dim() != 2 or t.shape[1] != len(names):
        raise ValueError(f"mlp-breast-cancer takes rows of {len(names)} features (N, {len(names)}), got shape {tuple(t.shape)}")
    return t


def match_columns(columns: Sequence[str], names: Sequence[str]) -> list[str]:
    """The ``columns`` in the order of ``names``; one clear ``ValueError`` if they are not the same set.

    >>> match_columns(["b", "a"], ["a", "b"])
    ['a', 'b']
    >>> match_columns(["a", "c"], ["a", "b"])
    Traceback (most recent call last):
    ...
    ValueError: the columns do not match the model's 2 features: missing b; unexpected c
    """
    columns = [str(c).strip() for c in columns]
    have, want = set(columns), list(names)
    missing = [n for n in want if n not in have]
    unexpected = [c for c in columns if c not in set(want)]
    dup = sorted({c for c in columns if columns.count(c) > 1})
    if missing or unexpected or dup:
        parts = ([f"missing {', '.join(missing[:5])}" + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else "")]
                 if missing else []) + ([f"unexpected {', '.join(unexpected[:5])}"] if unexpected else []) + \
                ([f"repeated {', '.join(dup[:5])}"] if dup else [])
        raise ValueError(f"the columns do not match the model's {len(want)} features: {'; '.join(parts)}")
    return want
