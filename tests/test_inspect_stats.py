"""Layer statistics: map + associative merge, exact counts, dead units, hygiene."""
import pytest
import torch
from torch import nn

import seethrough as see
from seethrough.inspect import batch_stats, layer_stats, merge_stats
from seethrough.testing import untouched
from tests.inspect_fixtures import digits, lenet  # noqa: F401 - fixtures

RELUS = ["relu1", "relu2", "relu3"]


def _same(a, b):
    assert a.count == b.count and a.values == b.values and a.above == b.above
    assert torch.equal(a.hist, b.hist) and torch.equal(a.active, b.active)
    assert a.low == b.low and a.high == b.high
    assert a.total == pytest.approx(b.total, rel=1e-12) and a.total_sq == pytest.approx(b.total_sq, rel=1e-12)


def test_merging_two_halves_equals_one_full_pass(lenet, digits):
    full = layer_stats(lenet, digits, RELUS, batch_size=360, progress=False)
    first = layer_stats(lenet, digits[:123], RELUS, batch_size=17, progress=False)
    second = layer_stats(lenet, digits[123:], RELUS, batch_size=50, progress=False)
    for n in RELUS:
        _same(merge_stats(first[n], second[n]), full[n])


def test_merge_is_associative_and_commutative():
    x = torch.randn(30, 5, 3, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64).relu()
    a, b, c = batch_stats(x[:7]), batch_stats(x[7:19]), batch_stats(x[19:])
    _same(merge_stats(merge_stats(a, b), c), merge_stats(a, merge_stats(b, c)))
    _same(merge_stats(merge_stats(c, a), b), batch_stats(x))


def test_counts_match_a_float64_reference():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 4, 5, 5, generator=g, dtype=torch.float64)
    x[:, 2] = -x[:, 2].abs()  # channel 2 never positive: dead
    s = batch_stats(x)
    assert s.dead.tolist() == [False, False, True, False]
    assert s.sparsity == pytest.approx((x <= 0).double().mean().item(), abs=0)
    assert s.mean == pytest.approx(x.mean().item(), rel=1e-12)
    assert s.std == pytest.approx(x.std(unbiased=False).item(), rel=1e-9)
    edges = s.edges
    ref = torch.tensor([((x >= lo) & (x < hi)).sum().item() for lo, hi in zip(edges[:-1], edges[1:])])
    assert torch.equal(s.hist, ref)


def test_dead_unit_of_a_hand_made_net_is_found():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    with torch.no_grad():
        net[0].bias.copy_(torch.tensor([0.0, -100.0, 0.0, 0.0]))
    s = layer_stats(net, torch.rand(50, 3, generator=torch.Generator().manual_seed(0)), "1", progress=False)["1"]
    assert s.active[1].item() == 0 and s.dead_fraction >= 0.25


def test_batch_size_dataset_and_iterable_give_identical_stats(lenet, digits):
    x = digits[:100]
    ref = layer_stats(lenet, x, "relu2", batch_size=100, progress=False)["relu2"]
    ds = torch.utils.data.TensorDataset(x, torch.zeros(100))
    batches = ((x[i:i + 30], None) for i in range(0, 100, 30))  # (x, y) pairs of an iterable
    for data, bs in ((x, 7), (ds, 33), (batches, "auto")):
        _same(layer_stats(lenet, data, "relu2", batch_size=bs, progress=False)["relu2"], ref)


def test_hygiene(lenet, digits):
    with untouched(lenet):
        layer_stats(lenet, digits[:20], RELUS, progress=False)
    with untouched(lenet, allow_raise=ValueError):
        layer_stats(lenet, digits[:20], ["relu1", "nope"], progress=False)
    with untouched(lenet, allow_raise=RuntimeError):
        layer_stats(lenet, torch.full((20, 1, 31, 31), 0.5), "relu1", progress=False)  # bad size fails mid-forward


@pytest.mark.parametrize("data, match", [(torch.zeros(0, 1, 32, 32), "empty"), (iter([]), "empty")])
def test_empty_data_is_a_clear_error(lenet, data, match):
    with pytest.raises(ValueError, match=match):
        layer_stats(lenet, data, "relu1", progress=False)


def test_merging_different_layers_or_edges_fails():
    with pytest.raises(ValueError, match="same layer"):
        merge_stats(batch_stats(torch.zeros(2, 3)), batch_stats(torch.zeros(2, 4)))
    with pytest.raises(ValueError, match="same edges"):
        merge_stats(batch_stats(torch.zeros(2, 3)), batch_stats(torch.zeros(2, 3), edges=torch.tensor([0.0, 1.0])))
