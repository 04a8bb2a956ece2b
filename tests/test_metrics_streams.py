"""Per-sample random streams in the metrics (seethrough.seeding): N samples at once give what N one-sample
calls give, on every sample, also for the options and input kinds the conformance suite's single case leaves
out (Gaussian infidelity, several random draws, ROAD's noise, features and tokens); and the draws of one
sample differ from each other (draw r uses seed + r)."""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import seethrough as see
from seethrough.metrics.curves import random_ranks, sample_ranks
from seethrough.seeding import per_sample
from seethrough.testing import torch_threads, untouched

sys.path.insert(0, str(Path(__file__).parent))
from transformer_fixtures import tiny_encoder, token_batch  # noqa: E402


@pytest.fixture(scope="module")
def digits64():
    model, _ = see.zoo.load("lenet-digits")
    x, y = see.zoo.digits("test")
    m = copy.deepcopy(model).double()
    x, y = x[:3].double(), y[:3]
    return m, x, y, see.attribute(m, x, "grad-x-input", target=y)


def _fields(r) -> dict[str, torch.Tensor]:
    names = ("curve", "random", "score", "random_score", "values")
    return {k: getattr(r, k) for k in names if isinstance(getattr(r, k, None), torch.Tensor)}


def _at_once_equals_one_by_one(call, n: int) -> None:
    """call(i) on sample i alone (None: all at once); every per-sample field equal on every sample."""
    with torch_threads(1):
        batch = _fields(call(None))
        singles = [_fields(call(i)) for i in range(n)]
    assert batch
    for k, v in batch.items():
        together = torch.cat([s[k] for s in singles])
        assert torch.allclose(v, together, rtol=1e-10, atol=1e-12, equal_nan=True), (k, v, together)


IMAGE_CALLS = {
    "deletion, 3 random draws": lambda m, x, a, y: see.metrics.deletion(m, x, a, y, steps=4, n_random=3, seed=5,
                                                                         progress=False),
    "insertion, 2 draws": lambda m, x, a, y: see.metrics.insertion(m, x, a, y, steps=4, n_random=2, seed=5,
                                                                    progress=False),
    "region perturbation, 2 draws": lambda m, x, a, y: see.metrics.region_perturbation(
        m, x, a, y, steps=4, patch=4, n_random=2, seed=5, progress=False),
    "road, 2 draws": lambda m, x, a, y: see.metrics.road(m, x, a, y, fractions=(0.25, 0.5), n_random=2, seed=5,
                                                          progress=False),
    "infidelity, gaussian": lambda m, x, a, y: see.metrics.infidelity(m, x, a, y, perturbation="gaussian",
                                                                       n_samples=4, seed=5, progress=False),
    "infidelity, square": lambda m, x, a, y: see.metrics.infidelity(m, x, a, y, n_samples=4, patch=5, seed=5,
                                                                     progress=False),
    "max-sensitivity": lambda m, x, a, y: see.metrics.max_sensitivity(m, x, "saliency", y, n_samples=3, seed=5,
                                                                       progress=False),
}


@pytest.mark.parametrize("name", sorted(IMAGE_CALLS))
def test_image_metrics_draw_per_sample_streams(digits64, name):
    m, x, y, a = digits64

    def call(i):
        s = slice(None) if i is None else slice(i, i + 1)
        with untouched(m):
            return IMAGE_CALLS[name](m, x[s], a[s], y[s])

    _at_once_equals_one_by_one(call, len(x))


def test_feature_deletion_random_baseline_is_per_sample():
    torch.manual_seed(0)
    net = nn.Linear(5, 2).double().eval()
    bg = torch.randn(20, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    b = see.boundary(net, kind="tabular", background=bg)
    x = torch.randn(3, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    a = torch.randn(3, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)

    def call(i):
        s = slice(None) if i is None else slice(i, i + 1)
        with untouched(net):
            return see.metrics.deletion(b, x[s], a[s], 1, score="logit", n_random=3, seed=2, progress=False)

    _at_once_equals_one_by_one(call, 3)


def test_token_deletion_random_baseline_is_per_sample():
    net = tiny_encoder().double()
    ids, mask = token_batch(3)
    a = torch.randn(ids.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)

    def call(i):
        s = slice(None) if i is None else slice(i, i + 1)
        b = see.boundary(net, kind="tokens", extra={"attention_mask": mask[s]}, pad_id=0, mask_id=1)
        with untouched(net):
            return see.metrics.deletion(b, ids[s], a[s], 0, n_random=2, seed=1, progress=False)

    _at_once_equals_one_by_one(call, 3)


def test_random_draw_r_uses_seed_plus_r_and_the_draws_differ(digits64):
    """The baseline of n_random draws is the mean of the one-draw baselines seeded seed, seed + 1, ...; two
    draws of one sample are different rankings, so the curves differ."""
    m, x, y, a = digits64
    with torch_threads(1), untouched(m):
        two = see.metrics.deletion(m, x, a, y, steps=4, n_random=2, seed=7, progress=False)
        ones = [see.metrics.deletion(m, x, a, y, steps=4, n_random=1, seed=s, progress=False) for s in (7, 8)]
    assert torch.allclose(two.random, (ones[0].random + ones[1].random) / 2, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(ones[0].random, ones[1].random)
    assert not torch.equal(sample_ranks(1, 64, 7, x.device), sample_ranks(1, 64, 8, x.device))


def test_every_sample_gets_the_ranking_it_gets_alone_and_text_rows_stay_different():
    r = sample_ranks(4, 10, 3, torch.device("cpu"))
    alone = sample_ranks(1, 10, 3, torch.device("cpu"))[0]
    assert all(torch.equal(row, alone) for row in r)
    assert torch.equal(alone.sort().values, torch.arange(10))  # a permutation
    # the first draw of a sample is the first row of the text curves' stream with the same seed
    assert torch.equal(alone, random_ranks(1, 10, 3, torch.device("cpu"))[0])
    rows = random_ranks(8, 10, 3, torch.device("cpu"))  # text/explain.py: n_random different rankings
    assert len({tuple(row.tolist()) for row in rows}) == 8
    noise = per_sample(2, lambda g: torch.rand(3, generator=g, dtype=torch.float64), 0)
    assert noise.dtype == torch.float64 and torch.equal(noise[0], noise[1])
