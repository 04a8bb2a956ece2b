"""The scan accumulators: exact against brute force, and independent of how the data is split and merged."""
from __future__ import annotations

import io
import random

import numpy as np
import pytest
import torch

import seethrough as see
from seethrough.inspect.stats import batch_stats
from seethrough.scan.accumulators import example_keys, from_state, make

NAMES = ("topk", "moments", "hist", "dead", "reservoir")
OPTS = {"topk": {"k": 5}, "reservoir": {"size": 7, "seed": 3}, "dead": {"threshold": 0.5}}


def _acts(shape, seed=0, ties=True):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(*shape, generator=g)
    return (a * 2).round() / 2 if ties else a  # many exact ties: tie-breaking is exercised


def _one_pass(name, acts, ids, labels):
    acc = make(name, **OPTS.get(name, {}))
    acc.add(acts, ids, labels=labels)
    return acc


def _split_merge(name, acts, ids, labels, rng):
    """Random partition of the examples (not contiguous), random batch sizes, random merge tree."""
    perm = rng.sample(range(len(ids)), len(ids))
    cuts = sorted(rng.sample(range(1, len(ids)), rng.randint(1, 6)))
    parts = []
    for a, b in zip([0, *cuts], [*cuts, len(ids)]):
        idx = torch.tensor(perm[a:b])
        acc = make(name, **OPTS.get(name, {}))
        s = 0
        while s < len(idx):
            step = rng.randint(1, 4)
            j = idx[s:s + step]
            acc.add(acts[j], ids[j], labels=labels[j])
            s += step
        parts.append(acc)
    while len(parts) > 1:  # merge two random parts, in a random order
        i, j = rng.sample(range(len(parts)), 2)
        merged = parts[i].merge(parts[j])
        parts = [p for k, p in enumerate(parts) if k not in (i, j)] + [merged]
    return parts[0]


def _same(a, b, name):
    sa, sb = a.state(), b.state()
    assert sa.keys() == sb.keys()
    for f in sa:
        x, y = np.asarray(sa[f]), np.asarray(sb[f])
        if name == "moments" and f in ("mean", "m2"):
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12)  # Chan's update: associative to round-off
        else:
            assert np.array_equal(x, y), (name, f)


@pytest.mark.parametrize("shape", [(40, 3, 4, 5), (40, 6), (40, 7, 3)])
@pytest.mark.parametrize("name", NAMES)
def test_random_splits_give_the_one_pass_result(name, shape):
    acts = _acts(shape)
    ids = torch.arange(100, 140)
    labels = ids % 3
    ref = _one_pass(name, acts, ids, labels)
    for trial in range(5):
        _same(ref, _split_merge(name, acts, ids, labels, random.Random(trial)), name)


def test_merge_is_commutative_exactly_also_for_moments():
    acts, ids = _acts((30, 4, 3, 3), ties=False), torch.arange(30)
    for name in NAMES:
        a1, b1, a2, b2 = (make(name, **OPTS.get(name, {})) for _ in range(4))
        for acc, sl in ((a1, slice(0, 11)), (a2, slice(0, 11)), (b1, slice(11, 30)), (b2, slice(11, 30))):
            acc.add(acts[sl], ids[sl], labels=ids[sl])
        x, y = a1.merge(b1).state(), b2.merge(a2).state()
        for f in x:
            assert np.array_equal(np.asarray(x[f]), np.asarray(y[f])), (name, f)


def test_topk_matches_a_stable_brute_force_sort():
    acts, ids = _acts((50, 3, 4, 4)), torch.arange(50) * 2 + 1
    acc = _split_merge("topk", acts, ids, ids, random.Random(7))
    flat = acts.flatten(2)
    best = flat.amax(2)  # (N, U)
    for u in range(3):
        order = sorted(range(50), key=lambda i: (-best[i, u].item(), ids[i].item()))[:5]
        assert acc.ids[u].tolist() == ids[order].tolist()
        assert acc.values[u].tolist() == best[order, u].double().tolist()
        # the position is the first maximum of that example's map
        assert acc.positions[u].tolist() == [int((flat[i, u] == best[i, u]).nonzero()[0]) for i in order]
    assert acc.rows_cols()[0, 0].tolist() == [acc.positions[0, 0] // 4, acc.positions[0, 0] % 4]


def test_moments_match_float64_numpy():
    acts = _acts((33, 5, 2, 3), ties=False)
    acc = _split_merge("moments", acts, torch.arange(33), torch.arange(33), random.Random(1))
    v = acts.double().transpose(0, 1).reshape(5, -1).numpy()
    np.testing.assert_allclose(acc.mean, v.mean(1), rtol=1e-13)
    np.testing.assert_allclose(acc.var, v.var(1), rtol=1e-12)
    assert acc.count.tolist() == [33 * 6] * 5 and np.array_equal(acc.min, v.min(1)) and np.array_equal(acc.max, v.max(1))


def test_hist_and_dead_agree_with_layer_stats():
    acts = _acts((25, 4, 3, 3)).relu()
    hist = _split_merge("hist", acts, torch.arange(25), torch.arange(25), random.Random(2))
    dead = make("dead")
    dead.add(acts, torch.arange(25))
    ref = batch_stats(acts)
    assert np.array_equal(hist.total, ref.hist.numpy()) and hist.counts.sum() == acts.numel()
    assert np.array_equal(dead.active, ref.active.numpy()) and dead.above.sum() == ref.above
    assert dead.sparsity == pytest.approx(ref.sparsity, abs=0) and int(dead.n) == 25


def test_hist_quantile_is_exact_to_a_bin():
    acts = torch.linspace(0.01, 100, 1000).view(1000, 1)
    h = make("hist")
    h.add(acts, torch.arange(1000))
    med = h.quantile(0.5)[0]
    lo = h.edges[np.searchsorted(h.edges, np.median(acts.numpy()), "right") - 1]
    hi = h.edges[np.searchsorted(h.edges, np.median(acts.numpy()), "right")]
    assert lo <= med <= hi


def test_reservoir_keeps_the_smallest_seeded_keys():
    acts, ids = _acts((60, 2, 2, 2), ties=False), torch.arange(60) + 1000
    acc = _split_merge("reservoir", acts, ids, ids % 5, random.Random(4))
    keys = example_keys(ids.numpy(), 3)
    want = np.sort(ids.numpy()[np.argsort(keys, kind="stable")[:7]])
    assert acc.ids.tolist() == want.tolist() and acc.labels.tolist() == (want % 5).tolist()
    assert np.array_equal(acc.acts, acts[torch.from_numpy(want - 1000)].flatten(1).numpy())
    other = make("reservoir", size=7, seed=4)
    other.add(acts, ids)
    assert other.ids.tolist() != acc.ids.tolist()  # another seed samples other examples
    mean = make("reservoir", size=7, seed=3, reduce="mean")
    mean.add(acts, ids)
    assert mean.acts.shape == (7, 2)


@pytest.mark.parametrize("name", NAMES)
def test_state_round_trips_through_npz(name):
    acc = _one_pass(name, _acts((12, 3, 2, 2)), torch.arange(12), torch.arange(12))
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in acc.state().items()})
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as z:
        back = from_state({k: z[k] for k in z.files})
    _same(acc, back, "exact")
    # an empty accumulator round-trips too, and merging into it copies the other
    empty = from_state(make(name, **OPTS.get(name, {})).state())
    _same(empty.merge(back), acc, "exact")


def test_bad_uses_are_one_clear_line():
    with pytest.raises(ValueError, match="unknown accumulator 'nope'; registered: .*topk"):
        make("nope")
    with pytest.raises(ValueError, match="bad options for accumulator 'moments'"):
        make("moments", k=3)
    with pytest.raises(ValueError, match="cannot merge topk"):
        make("topk", k=2).merge(make("topk", k=3))
    with pytest.raises(ValueError, match=r"must output \(B, U\)"):
        make("topk").add(torch.zeros(2, 1, 1, 1, 1), torch.arange(2))
    with pytest.raises(ValueError, match="k must be a positive int"):
        make("topk", k=0)


def test_register_adds_an_accumulator_the_engine_can_run():
    from seethrough.scan.accumulators import ACCUMULATORS, _Base, register

    @register("test-count")
    class Count(_Base):
        _arrays = ("n",)

        def __init__(self):
            self.n = 0

        def add(self, acts, ids, **extra):
            self.n += len(ids)

        def merge(self, other):
            self.n += other.n
            return self

    try:
        model, _ = see.zoo.load("lenet-digits")
        res = see.scan(model, see.zoo.digits("test"), "fc3", ["test-count"], batch_size=50, progress=False)
        assert res["fc3", "test-count"].n == 360
    finally:
        ACCUMULATORS.pop("test-count")
