"""The trust family's fast paths: Spearman on average ranks without scipy (equal to scipy's, ties
included), the cascade's single cumulative twin, and the metric loops run channels-last in place
(seethrough.runner.fast) give the scores of plain one-at-a-time forwards and leave the model as found."""
import numpy as np
import pytest
import torch
from scipy.stats import rankdata, spearmanr
from torch import nn

import seethrough as see
from seethrough.sanity.similarity import average_ranks, spearman
from seethrough.testing import torch_threads, untouched


def test_average_ranks_and_spearman_equal_scipy_with_and_without_ties():
    g = torch.Generator().manual_seed(0)
    for trial in range(30):
        ties = trial % 2 == 0
        a = torch.randint(0, 4, (3, 40), generator=g).double() if ties else torch.rand(3, 40, generator=g, dtype=torch.float64)
        b = torch.rand(3, 40, generator=g, dtype=torch.float64).round(decimals=1)
        assert torch.equal(average_ranks(a), torch.from_numpy(np.stack([rankdata(r) for r in a.numpy()])))
        ref = [spearmanr(a[i].numpy(), b[i].numpy()).statistic for i in range(3)]
        assert np.allclose(spearman(a, b).numpy(), ref, atol=1e-12, rtol=0)


def test_similarity_of_clipped_maps_equals_scipy_on_the_normalised_maps():
    """The 99th-percentile clipping makes ties (all the clipped pixels): the case that needs average ranks."""
    from seethrough.sanity.similarity import normalize_map

    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(4, 3, 16, 16, generator=g), torch.randn(4, 3, 16, 16, generator=g)
    b[0] = a[0] * 2 + 0.1 * b[0]
    for metric, absolute in (("spearman", False), ("spearman_abs", True)):
        ours = see.sanity.similarity(a, b, metric)
        for i in range(4):
            na, nb = normalize_map(a[i], absolute), normalize_map(b[i], absolute)
            assert (np.abs(na) == 1).sum() > 1  # ties indeed (the clipped pixels)
            assert ours[i].item() == pytest.approx(spearmanr(na.ravel(), nb.ravel()).statistic, abs=1e-12)


def test_cascading_randomization_equals_a_fresh_copy_randomised_layer_by_layer():
    """One twin re-randomised cumulatively (no trained copy kept) gives, at step k, the explanation of a
    fresh copy of the model with the first k layers of the cascade randomised with their seeds."""
    import copy

    from seethrough.layers import resolve_layer
    from seethrough.sanity.randomization import layer_seed, parameterised_layers, randomize_layer

    model, _ = see.zoo.load("lenet-digits")
    x, y = see.zoo.digits("test")
    x, y = x[:3].double(), y[:3]
    model = copy.deepcopy(model).double()
    model.train()
    with untouched(model):
        r = see.sanity.randomization(model, x, "saliency", y, metrics=("spearman_abs",), seed=3, progress=False)
    order = parameterised_layers(model, x)
    index = {n: i for i, n in enumerate(order)}
    for k in (1, 3, len(r.layers)):
        fresh = copy.deepcopy(model)
        for name in r.layers[:k]:
            randomize_layer(resolve_layer(fresh, name), layer_seed(3, index[name]))
        ref = see.attribute(fresh, x, "saliency", target=y)
        assert r.maps[k - 1].dtype == torch.float64
        assert torch.allclose(r.maps[k - 1], ref, atol=1e-12, rtol=0)


def _plain_scores(model, imgs, target):
    with torch.no_grad():
        return torch.cat([model(imgs[j:j + 1]).softmax(1)[:, target[j]] for j in range(len(imgs))])


def test_deletion_channels_last_equals_plain_forwards_and_restores_the_layout():
    model, _ = see.zoo.load("lenet-digits")
    x, y = see.zoo.digits("test")
    x, y = x[:3], y[:3]
    a = torch.rand(x.shape, generator=torch.Generator().manual_seed(0))
    w = model.conv1.weight
    ptr, stride = w.data_ptr(), w.stride()
    with untouched(model), torch_threads(1):
        d = see.metrics.deletion(model, x, a, y, steps=4, n_random=0, batch_size=5, progress=False)
    assert w.data_ptr() == ptr and w.stride() == stride  # the very tensor, contiguous as found
    ranks = torch.sort(a.sum(1).flatten(1), dim=1, descending=True, stable=True).indices
    for i in range(3):
        imgs = []
        for k in range(5):
            m = torch.zeros(32 * 32, dtype=torch.bool); m[ranks[i, :-(-k * 1024 // 4)]] = True
            imgs.append(torch.where(m.view(1, 32, 32), torch.zeros_like(x[i]), x[i]))
        with torch_threads(1):
            ref = _plain_scores(model, torch.stack(imgs), y[i].repeat(5))
        assert torch.allclose(d.curve[i], ref, atol=1e-5)


def test_infidelity_channels_last_equals_plain_forwards_float64():
    """Gaussian infidelity on a float64 conv net equals the formula evaluated with plain forwards of the
    same seeded perturbations (equal up to float64 rounding: the layout changes only summation order)."""
    from seethrough.metrics.infidelity import seeded_blocks

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 36, 2)).double().eval()
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    phi = torch.randn(2, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([1, 0])
    k = 6
    with untouched(model):
        r = see.metrics.infidelity(model, x, phi, t, perturbation="gaussian", n_samples=k, noise_std=0.1,
                                   optimal_scaling=False, batch_size=4, progress=False)
    noise = seeded_blocks(torch.arange(k), k, x.shape[1:], 0, torch.randn, x.dtype) * 0.1
    with torch.no_grad():
        ref = []
        for i in range(2):
            fx = model(x[i:i + 1])[0, t[i]]
            errs = [((noise[j] * phi[i]).sum() - (fx - model((x[i] - noise[j])[None])[0, t[i]])) ** 2 for j in range(k)]
            ref.append(torch.stack(errs).mean())
    assert r.values.dtype == torch.float64
    assert torch.allclose(r.values, torch.stack(ref), atol=1e-12, rtol=1e-9)
