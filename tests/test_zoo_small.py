"""Tests for the small offline zoo models: digits LeNet and the 2-D spirals MLP."""
from __future__ import annotations

import os

import pytest
import torch

# Imported from the submodules directly so these tests do not depend on the
# package __init__ files, which are edited elsewhere.
import seethrough.zoo.lenet as dg
from seethrough.zoo.lenet import LeNet, digit_accuracy, digits, lenet_digits, train_lenet
from seethrough.zoo.toy2d import MLP2D, mlp_2d, toy_2d, toy_accuracy, train_mlp_2d


@pytest.fixture(scope="session")
def cache_env(tmp_path_factory):
    """Point the weight cache at a private directory for the whole session."""
    path = tmp_path_factory.mktemp("seethrough-cache")
    old = os.environ.get("SEETHROUGH_CACHE")
    os.environ["SEETHROUGH_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("SEETHROUGH_CACHE", None)
    else:
        os.environ["SEETHROUGH_CACHE"] = old


@pytest.fixture(scope="session")
def trained(cache_env):
    """The one full LeNet training of this file; it also fills the cache."""
    return lenet_digits()


# --- digits data ---------------------------------------------------------------


def test_digits_shapes_dtypes_range():
    for split in ("train", "test", "all"):
        x, y = digits(split)
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape[1:] == (1, 32, 32) and x.shape[0] == y.shape[0]
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert x.max() > 0.9  # really scaled from 0..16, not left tiny
        assert set(y.tolist()) == set(range(10))


def test_digits_splits_partition_and_stratify():
    (x_tr, y_tr), (x_te, y_te), (x_all, _) = digits("train"), digits("test"), digits("all")
    assert len(y_tr) + len(y_te) == len(x_all) == 1797
    assert len(y_te) == 360
    # Disjoint: no test image appears in the train split (the digits have no exact duplicates across them).
    tr = {tuple(row.tolist()) for row in x_tr.flatten(1)}
    assert not any(tuple(row.tolist()) in tr for row in x_te.flatten(1))
    counts = torch.bincount(y_te, minlength=10)
    assert counts.min() >= 30 and counts.max() <= 40


def test_digits_returns_copies_and_rejects_unknown_split():
    x, y = digits("all")
    x.zero_()
    y.fill_(-1)
    x2, y2 = digits("all")
    assert x2.max() > 0 and y2.min() == 0
    with pytest.raises(ValueError, match="'train', 'test', 'all'"):
        digits("validation")


# --- LeNet ------------------------------------------------------------------------


def test_lenet_layout():
    names = [name for name, _ in LeNet().named_children()]
    assert names == [
        "conv1", "relu1", "pool1", "conv2", "relu2", "pool2",
        "flatten", "fc1", "relu3", "fc2", "relu4", "fc3",
    ]  # fmt: skip
    assert all(not m.inplace for m in LeNet().modules() if isinstance(m, torch.nn.ReLU))


def test_trained_lenet_accuracy(trained):
    assert not trained.training
    assert digit_accuracy(trained, "test") >= 0.97


def test_training_is_deterministic_and_leaves_global_rng_alone():
    epochs = []
    torch.manual_seed(123)
    a = train_lenet(epochs=1, seed=0, on_epoch=lambda m, e: epochs.append((e, m.training)))
    after = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(after, torch.rand(3))
    assert epochs == [(0, False), (1, False)]

    b = train_lenet(epochs=1, seed=0)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    c = train_lenet(epochs=1, seed=1)
    assert not torch.equal(sa["conv1.weight"], c.state_dict()["conv1.weight"])


def test_cache_is_reused(trained, cache_env, monkeypatch):
    files = list(cache_env.glob("lenet-digits-v1-*.pt"))
    assert len(files) == 1
    assert not list(cache_env.glob("*.tmp"))

    def fail(*args, **kwargs):
        raise AssertionError("should have loaded from the cache instead of training")

    monkeypatch.setattr(dg, "train_lenet", fail)
    loaded = lenet_digits()
    assert not loaded.training
    x, _ = digits("test")
    with torch.no_grad():
        assert torch.equal(loaded(x), trained(x))


def test_corrupt_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("SEETHROUGH_CACHE", str(tmp_path))
    monkeypatch.setattr(dg, "MIN_TEST_ACCURACY", 0.0)  # the one-epoch stand-in is cached despite its accuracy
    calls = []
    real_train = dg.train_lenet

    def quick_train(epochs, seed):
        # A one-epoch stand-in: this test is about the file handling, not accuracy.
        calls.append(seed)
        return real_train(epochs=1, seed=seed)

    monkeypatch.setattr(dg, "train_lenet", quick_train)
    path = dg._cache_path()
    path.write_bytes(b"not a torch file")
    first = lenet_digits()
    assert len(calls) == 1
    state = torch.load(path, weights_only=True)
    assert all(torch.equal(state[k], v) for k, v in first.state_dict().items())
    lenet_digits()
    assert len(calls) == 1  # the rebuilt file is now used


# --- 2-D toy problem ---------------------------------------------------------------


def test_toy_2d_seeded_and_balanced():
    x, y = toy_2d(seed=3)
    x2, y2 = toy_2d(seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    x3, _ = toy_2d(seed=4)
    assert not torch.equal(x, x3)
    assert x.shape == (400, 2) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.bincount(y).tolist() == [200, 200]
    assert x.abs().max() < 1.5
    with pytest.raises(ValueError):
        toy_2d(n=1)


def test_toy_2d_is_not_linearly_separable():
    x, y = toy_2d()
    # A logistic regression (the best single hyperplane, roughly) stays far from solving it.
    w = torch.zeros(2, requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=0.1)
    for _ in range(300):
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, y.float()).backward()
        opt.step()
    assert (((x @ w + b) > 0).long() == y).float().mean() < 0.8


def test_mlp_2d_factory():
    a, b = mlp_2d(5), mlp_2d(5)
    assert isinstance(a, MLP2D) and not a.training
    assert [n for n, _ in a.named_children()] == ["fc1", "relu", "fc2"]
    assert torch.equal(a.fc1.weight, b.fc1.weight)
    assert not torch.equal(a.fc1.weight, mlp_2d(6).fc1.weight)


def test_mlp_training_reaches_accuracy_with_steps_reported():
    log: list[tuple[int, float]] = []
    model = train_mlp_2d(on_step=lambda m, step, loss: log.append((step, loss)))
    assert not model.training
    assert [s for s, _ in log] == list(range(1, 1001))
    losses = torch.tensor([loss for _, loss in log])
    assert losses[-50:].mean() < 0.5 * losses[:10].mean()
    assert toy_accuracy(model, *toy_2d()) >= 0.95
