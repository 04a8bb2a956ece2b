"""ROAD's faster imputation (nested-dissection order, symmetric factorisation, solves over threads) gives
what the equations say: against a dense float64 solve written out pixel by pixel, against the previous
formulation (SuperLU's default ordering with pivoting), with the noise drawn as before, and the same
whatever the number of threads."""
import numpy as np
import pytest
import torch
from torch import nn

import seethrough as see
from seethrough.metrics.road import _dissection_rank, impute, impute_many
from seethrough.testing import untouched

WEIGHTS = {(-1, 0): 1 / 6, (1, 0): 1 / 6, (0, -1): 1 / 6, (0, 1): 1 / 6,
           (-1, -1): 1 / 12, (-1, 1): 1 / 12, (1, -1): 1 / 12, (1, 1): 1 / 12}


def dense_reference(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The imputation as its equations read, one pixel at a time, solved densely in float64."""
    c, h, w = x.shape
    removed = [(r, q) for r in range(h) for q in range(w) if mask[r, q]]
    at = {p: k for k, p in enumerate(removed)}
    a = np.zeros((len(removed), len(removed)))
    b = np.zeros((len(removed), c))
    for k, (r, q) in enumerate(removed):
        for (dy, dx), wt in WEIGHTS.items():
            rr, qq = r + dy, q + dx
            if 0 <= rr < h and 0 <= qq < w:
                a[k, k] += wt
                if (rr, qq) in at:
                    a[k, at[(rr, qq)]] -= wt
                else:
                    b[k] += wt * x[:, rr, qq]
    out = x.copy()
    sol = np.linalg.solve(a, b)
    for k, (r, q) in enumerate(removed):
        out[:, r, q] = sol[k]
    return out


def masks(h: int, w: int, seed: int):
    """Scattered pixels, one big hole, and a hole touching the border, at several fractions."""
    g = np.random.default_rng(seed)
    for f in (0.05, 0.5, 0.95):
        yield g.random((h, w)) < f
    blob = np.zeros((h, w), bool); blob[2:h - 3, 3:w - 2] = True
    yield blob
    edge = np.zeros((h, w), bool); edge[: h // 2] = True
    yield edge


def test_the_dissection_order_is_a_permutation_for_any_size():
    for h, w in [(1, 1), (3, 7), (32, 32), (65, 17)]:
        r = _dissection_rank(h, w)
        assert sorted(r.tolist()) == list(range(h * w))


@pytest.mark.parametrize("hw", [(9, 11), (16, 16)])
def test_imputation_equals_a_dense_float64_solve(hw):
    h, w = hw
    x = torch.rand(3, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for m in masks(h, w, 1):
        got = impute(x, torch.from_numpy(m))
        ref = dense_reference(x.numpy(), m)
        assert np.abs(got.numpy() - ref).max() < 1e-12
        assert torch.equal(got[:, ~torch.from_numpy(m)], x[:, ~torch.from_numpy(m)])


def test_imputation_equals_the_previous_formulation_with_its_noise():
    """The previous code: the same matrix in raster order, scipy's spsolve (COLAMD, partial pivoting),
    noise N(0, σ²) from default_rng(seed) in the removed pixels' raster order."""
    from scipy.sparse import lil_matrix
    from scipy.sparse.linalg import spsolve

    h, w = 32, 32
    x = torch.rand(3, h, w, generator=torch.Generator().manual_seed(2))
    img = x.double().numpy().reshape(3, -1)
    for m in masks(h, w, 3):
        removed = np.flatnonzero(m.ravel())
        at = {p: k for k, p in enumerate(removed)}
        a, b = lil_matrix((len(removed), len(removed))), np.zeros((len(removed), 3))
        for k, p in enumerate(removed):
            r, q = divmod(p, w)
            for (dy, dx), wt in WEIGHTS.items():
                rr, qq = r + dy, q + dx
                if 0 <= rr < h and 0 <= qq < w:
                    a[k, k] += wt
                    nb = rr * w + qq
                    if nb in at:
                        a[k, at[nb]] -= wt
                    else:
                        b[k] += wt * img[:, nb]
        sol = spsolve(a.tocsc(), b).reshape(len(removed), 3) + np.random.default_rng(5).normal(0.0, 0.01, (len(removed), 3))
        ref = img.copy(); ref[:, removed] = sol.T
        got = impute(x, torch.from_numpy(m), 0.01, 5)
        assert got.dtype == torch.float32
        assert np.abs(got.double().numpy().reshape(3, -1) - ref).max() < 1e-6  # float32 rounding of the result


def test_solves_over_threads_equal_one_at_a_time_and_keep_dtype():
    h, w = 24, 20
    g = torch.Generator().manual_seed(4)
    xs = [torch.rand(2, h, w, dtype=torch.float64, generator=g) for _ in range(5)]
    ms = [torch.from_numpy(m) for m in masks(h, w, 6)]
    alone = [impute(x, m, 0.02, s) for s, (x, m) in enumerate(zip(xs, ms))]
    for workers in (1, 3):
        many = impute_many(xs, ms, 0.02, list(range(5)), workers=workers)
        assert all(torch.equal(a, b) and b.dtype == torch.float64 for a, b in zip(alone, many))


def test_nothing_removed_is_the_image_and_everything_removed_is_refused():
    x = torch.rand(1, 5, 5)
    assert torch.equal(impute(x, torch.zeros(5, 5, dtype=torch.bool), 0.1), x)
    with pytest.raises(ValueError, match="every pixel removed"):
        impute(x, torch.ones(5, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="one mask"):
        impute_many([x, x], [torch.zeros(5, 5, dtype=torch.bool)])


def test_road_scores_the_images_the_dense_solve_makes():
    """The whole metric on a float64 model: each curve point is the class probability of the image the
    dense reference imputes (no noise), for the attribution's top pixels; the model is left as found."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 100, 3)).double()
    model.train()  # left as found, also in train mode
    x = torch.rand(2, 1, 10, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    a = torch.rand(2, 1, 10, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([0, 2])
    fr = (0.2, 0.5, 0.9)
    with untouched(model):
        r = see.metrics.road(model, x, a, t, fractions=fr, noise_std=0.0, n_random=0, progress=False)
    model.eval()
    ranks = torch.sort(a.flatten(1), dim=1, descending=True, stable=True).indices
    for i in range(2):
        imgs = [x[i]]
        for f in fr:
            m = torch.zeros(100, dtype=torch.bool); m[ranks[i, :round(f * 100)]] = True
            imgs.append(torch.from_numpy(dense_reference(x[i].numpy(), m.view(10, 10).numpy())))
        with torch.no_grad():
            ref = model(torch.stack(imgs)).softmax(1)[:, t[i]]
        assert torch.allclose(r.curve[i], ref, atol=1e-12)
    assert r.curve.dtype == torch.float64
