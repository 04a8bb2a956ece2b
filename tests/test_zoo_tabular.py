"""mlp-breast-cancer: the data, the Standardize module, the trained model's accuracy and its checked cache."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

import seethrough as see
import seethrough.zoo.tabular as tab
from seethrough.testing import untouched
from seethrough.zoo.cache import META_KEY, CacheWarning, load_checked, state_sha256


def _same(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def fresh():
    """One training of the recipe in this file (about 3 s)."""
    return tab.train_mlp()


# --- data ----------------------------------------------------------------------------------------


def test_splits_partition_the_569_rows_stratified_and_in_raw_units():
    (xtr, ytr, names), (xte, yte, names2), (xall, yall, _) = (see.zoo.breast_cancer(s) for s in ("train", "test", "all"))
    assert names == names2 == tab.feature_names() and len(names) == 30
    assert (len(xtr), len(xte), len(xall)) == (426, 143, 569)
    assert xtr.dtype == xte.dtype == torch.float32 and ytr.dtype == torch.int64
    rows = {tuple(r) for r in xtr.tolist()}
    assert not any(tuple(r) in rows for r in xte.tolist())  # disjoint (the data set has no duplicate rows)
    assert sorted(map(tuple, torch.cat([xtr, xte]).tolist())) == sorted(map(tuple, xall.tolist()))
    # stratified: each split has the data set's share of benign rows (357 / 569) to within one row
    assert abs(int(yte.sum()) - 143 * 357 / 569) <= 1 and abs(int(ytr.sum()) - 426 * 357 / 569) <= 1
    # raw units: "worst area" runs in the hundreds to thousands, not a standardised ±3
    assert float(xall[:, names.index("worst area")].max()) > 1000


def test_the_held_out_rows_are_those_of_the_reports_logistic_regression():
    fit = see.inspect.breast_cancer_logistic(seed=0)
    x, y, _ = see.zoo.breast_cancer("test")
    theirs = fit.x_test.double() * fit.std.double() + fit.mean.double()  # back to raw units; their rows are unsorted
    order = torch.cdist(theirs, x.double()).argmin(1)
    assert sorted(order.tolist()) == list(range(len(x)))  # the same 143 rows
    torch.testing.assert_close(theirs, x[order].double(), rtol=1e-5, atol=1e-4)
    assert torch.equal(fit.y_test, y[order])


def test_splits_are_copies_and_bad_split_is_one_line():
    x, y, names = see.zoo.breast_cancer("test")
    x.zero_(); y.zero_(); names.clear()
    x2, y2, n2 = see.zoo.breast_cancer("test")
    assert x2.abs().sum() > 0 and y2.sum() > 0 and len(n2) == 30
    with pytest.raises(ValueError, match="unknown split 'val'; choose one of 'train', 'test', 'all'"):
        see.zoo.breast_cancer("val")


def test_background_is_a_seeded_sample_of_training_rows():
    bg = tab.background(100)
    train = {tuple(r) for r in see.zoo.breast_cancer("train")[0].tolist()}
    assert len({tuple(r) for r in bg.tolist()}) == 100 and all(tuple(r) in train for r in bg.tolist())
    assert torch.equal(bg, tab.background(100)) and not torch.equal(bg, tab.background(100, seed=1))
    with pytest.raises(ValueError, match="n must be an int from 1 to 426"):
        tab.background(1000)


# --- the model -------------------------------------------------------------------------------------


def test_standardize_is_the_first_module_and_holds_the_training_statistics(fresh):
    first_name, first = next(iter(fresh.named_children()))
    assert first_name == "standardize" and isinstance(first, see.zoo.Standardize)
    x, _, _ = see.zoo.breast_cancer("train")
    torch.testing.assert_close(first.mean[0].double(), x.double().mean(0), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(first.std[0].double(), x.double().std(0, unbiased=False), rtol=1e-5, atol=1e-7)
    z = first(x)
    torch.testing.assert_close(z.mean(0), torch.zeros(30), atol=1e-4, rtol=0)
    assert {n for n, _ in fresh.named_buffers()} == {"standardize.mean", "standardize.std"}
    # the model takes raw rows: the same output as standardising by hand and running the rest
    import copy

    net64, x64 = copy.deepcopy(fresh).double(), x[:5].double()
    rest = torch.nn.Sequential(*list(net64.children())[1:])
    by_hand = rest((x64 - first.mean.double()) / first.std.double())
    torch.testing.assert_close(net64(x64), by_hand)


def test_standardize_refuses_rows_of_another_width_in_one_line(fresh):
    with pytest.raises(ValueError, match=r"^expected tabular rows \(N, 30\) in raw feature units, got shape \(2, 29\)$"):
        fresh(torch.zeros(2, 29))
    with pytest.raises(ValueError, match="std must be positive"):
        see.zoo.Standardize([0.0, 0.0], [1.0, 0.0])


def test_the_recipe_reaches_95_percent_on_the_held_out_rows(fresh):
    acc = tab.tabular_accuracy(fresh, "test")
    assert acc >= tab.MIN_TEST_ACCURACY == 0.95
    assert acc <= tab.tabular_accuracy(fresh, "train")  # sanity: it is not scoring the held-out rows by luck of a bug


def test_training_is_deterministic_and_leaves_the_global_rng_alone(fresh):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    again = tab.train_mlp()
    assert torch.equal(torch.get_rng_state(), before)
    assert _same(fresh, again)
    assert not _same(fresh, tab.train_mlp(seed=1))
    assert all(p.grad is None for p in again.parameters())


def test_zoo_load_gives_the_cached_recipe_model_in_eval_mode(fresh, tmp_path, monkeypatch):
    monkeypatch.setenv("SEETHROUGH_CACHE", str(tmp_path))
    model, prep = see.zoo.load("mlp-breast-cancer")
    assert not model.training and _same(model, fresh)
    assert see.zoo.labels("mlp-breast-cancer") == ["malignant", "benign"]
    x, y, names = see.zoo.breast_cancer("test")
    with untouched(model.train()):
        acc = tab.tabular_accuracy(model, "test")
    assert acc >= 0.95
    # the preprocessing takes arrays and DataFrames (columns matched by name, any order)
    import pandas as pd

    df = pd.DataFrame(x[:3].numpy(), columns=names)[names[::-1]]
    assert torch.equal(prep(df), x[:3]) and torch.equal(prep(x[0].numpy()), x[:1])
    with pytest.raises(ValueError, match="the columns do not match the model's 30 features: missing mean radius; unexpected radius"):
        prep(df.rename(columns={"mean radius": "radius"}))


# --- the cache (the pattern of tests/test_checksums.py, on this model's file) ------------------------


@pytest.fixture
def cache(tmp_path, monkeypatch, fresh):
    """A private cache whose training is a stand-in returning ``trains["model"]`` (the recipe's model by default)."""
    monkeypatch.setenv("SEETHROUGH_CACHE", str(tmp_path))
    calls, trains = [], {"model": fresh}
    monkeypatch.setattr(tab, "train_mlp", lambda: calls.append("train") or trains["model"])
    return tmp_path, calls, trains


def test_the_cached_file_carries_its_recipe_and_checksum_and_is_read_back(cache):
    tmp, calls, _ = cache
    first = tab.mlp_breast_cancer()
    second = tab.mlp_breast_cancer()
    assert calls == ["train"] and _same(first, second)  # trained once, then read back
    (path,) = tmp.glob("*.pt")
    assert path == tab._cache_path() and path.name.startswith("mlp-breast-cancer-v1-")
    obj = torch.load(path, weights_only=True)
    meta = obj.pop(META_KEY)
    assert meta["recipe"] == tab._recipe() and meta["sha256"] == state_sha256(obj)


def test_flipped_bytes_and_another_recipes_file_are_retrained(cache):
    tmp, calls, _ = cache
    first = tab.mlp_breast_cancer()
    path = tab._cache_path()
    data = bytearray(path.read_bytes())
    for i in random.Random(0).sample(range(len(data)), 16):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.warns(CacheWarning, match="is not used"):
        assert _same(first, tab.mlp_breast_cancer())
    from seethrough.zoo.cache import save_checked

    save_checked(first.state_dict(), path, {**tab._recipe(), "steps": 1})  # an intact file of another recipe
    with pytest.warns(CacheWarning, match="written by another recipe"):
        tab.mlp_breast_cancer()
    assert calls == ["train"] * 3 and load_checked(path, tab._recipe())[0] is not None


def test_a_model_below_the_accuracy_bar_is_returned_but_not_cached(cache, fresh):
    tmp, calls, trains = cache
    trains["model"] = tab.mlp(mean=fresh.standardize.mean, std=fresh.standardize.std, seed=5)  # untrained
    with pytest.warns(CacheWarning, match=r"not cached: its test accuracy is \d+\.\d%, below the 95%"):
        model = tab.mlp_breast_cancer()
    assert tab.tabular_accuracy(model) < 0.95 and not list(tmp.iterdir())


def test_rows_preprocessing_refuses_other_shapes():
    with pytest.raises(ValueError, match=r"takes rows of 30 features \(N, 30\), got shape \(2, 3, 30\)"):
        tab.rows(np.zeros((2, 3, 30)))
    with pytest.raises(ValueError, match="repeated mean radius"):
        tab.match_columns(["mean radius"] * 2 + tab.feature_names()[1:], tab.feature_names())


# --- the numbers docs/tabular.md states --------------------------------------------------------------

DOC = Path(__file__).resolve().parents[1] / "docs" / "tabular.md"


def _doc() -> str:
    return " ".join(DOC.read_text(encoding="utf-8").split())  # line breaks do not matter


def test_docs_state_the_measured_held_out_accuracy(fresh):
    assert f"It reaches **{100 * tab.tabular_accuracy(fresh):.1f} %** on the held-out rows" in _doc()


@pytest.mark.slow  # four more trainings
def test_docs_state_the_accuracy_range_over_seeds(fresh):
    accs = [tab.tabular_accuracy(fresh)] + [tab.tabular_accuracy(tab.train_mlp(seed=s)) for s in range(1, 5)]
    assert min(accs) >= 0.95
    assert f"({100 * min(accs):.1f}–{100 * max(accs):.1f} % over seeds 0–4)" in _doc()
