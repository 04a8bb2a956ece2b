"""Occlusion, LIME, KernelSHAP and RISE on tabular rows (background set) and token ids (mask/pad id).

References are hand-written in float64: the exact Shapley values by enumeration over all 2^d
coalitions of v(S) = mean_b f(x_S, b_~S), the closed form w·(x − mean(bg)) of a linear model, and
the occlusion / RISE formulas evaluated one copy at a time.
"""
from __future__ import annotations

import copy
import itertools
import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import seethrough as see
from seethrough.attribution.occlusion import occlusion
from seethrough.attribution.rise import rise
from seethrough.attribution.surrogate import kernel_shap, lime
from seethrough.testing import untouched

sys.path.insert(0, str(Path(__file__).parent))
from transformer_fixtures import VOCAB, tiny_encoder, token_batch  # noqa: E402

D = 6


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(D, 8), nn.Tanh(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)).double().eval()


def linear(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Linear(D, 2).double().eval()


def rows(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


X, BG = rows(4, 1), rows(12, 2)


def value(net: nn.Module, x: torch.Tensor, kept: tuple[int, ...], target: int = 1) -> float:
    """v(S) = mean over the background of f(x on S, background elsewhere), float64."""
    z = BG.clone()
    z[:, list(kept)] = x[list(kept)]
    with torch.no_grad():
        return float(net(z)[:, target].mean())


def exact_shapley(net: nn.Module, x: torch.Tensor, target: int = 1) -> torch.Tensor:
    phi = []
    for j in range(D):
        others = [k for k in range(D) if k != j]
        total = 0.0
        for size in range(D):
            for s in itertools.combinations(others, size):
                w = math.factorial(size) * math.factorial(D - size - 1) / math.factorial(D)
                total += w * (value(net, x, s + (j,), target) - value(net, x, s, target))
        phi.append(total)
    return torch.tensor(phi, dtype=torch.float64)


def tab(net: nn.Module) -> see.Boundary:
    return see.boundary(net, kind="tabular", background=BG)


# --- KernelSHAP with a background = the exact Shapley values ---------------------------------------------


@pytest.mark.parametrize("make", [linear, mlp], ids=["linear", "mlp"])
def test_kernel_shap_with_a_background_is_the_exact_shapley_value(make):
    net = make()
    # 2^6 = 64 coalitions <= n_samples: the enumeration path (every coalition with its exact kernel weight)
    with untouched(net):
        e = see.attribute(net, X, "kernel-shap", target=1, kind="tabular", background=BG, n_samples=64, progress=False)
    assert e.dtype == torch.float64 and e.shape == (4, D)
    for i in range(len(X)):
        assert torch.allclose(e[i], exact_shapley(net, X[i]), atol=1e-12, rtol=0)
    if make is linear:  # the closed form: φ_j = w_j (x_j − mean(bg)_j)
        assert torch.allclose(e, net.weight[1].detach() * (X - BG.mean(0)), atol=1e-12, rtol=0)


def test_sampled_kernel_shap_keeps_efficiency_and_approaches_the_exact_values():
    net = mlp()
    # 40 < 64 coalitions: the sampled path (paired draws, least squares under Σφ = f(x) − E f(bg))
    e = kernel_shap(tab(net), X, 1, n_samples=40, progress=False)
    with torch.no_grad():
        gap = net(X)[:, 1] - net(BG)[:, 1].mean()
    assert torch.allclose(e.map.sum(1), gap, atol=1e-12)
    assert torch.allclose(e.intercept, net(BG)[:, 1].mean().detach().expand(4), atol=1e-12)
    exact = torch.stack([exact_shapley(net, x) for x in X])
    err = (e.map - exact).abs().max() / exact.abs().max()
    assert err < 0.5, err  # noisy with 40 draws, but of the right size and sign pattern
    assert float(torch.corrcoef(torch.stack([e.map.flatten(), exact.flatten()]))[0, 1]) > 0.9


# --- occlusion, LIME, RISE on rows ------------------------------------------------------------------------


def test_tabular_occlusion_is_the_mean_drop_over_the_background():
    net = mlp()
    with untouched(net):
        a = occlusion(tab(net), X, 1, progress=False)
    with torch.no_grad():
        clean = net(X)[:, 1]
    ref = torch.tensor([[float(clean[i]) - value(net, X[i], tuple(k for k in range(D) if k != j)) for j in range(D)]
                        for i in range(len(X))], dtype=torch.float64)
    assert a.dtype == torch.float64 and torch.allclose(a, ref, atol=1e-12)
    # window=2, stride=1: each feature's mean drop over the (one or two) windows covering it
    a2 = occlusion(tab(net), X[:1], 1, window=2, stride=1, progress=False)
    drops = [float(clean[0]) - value(net, X[0], tuple(k for k in range(D) if k not in (s, s + 1))) for s in range(D - 1)]
    ref2 = [drops[0]] + [(drops[j - 1] + drops[j]) / 2 for j in range(1, D - 1)] + [drops[-1]]
    assert torch.allclose(a2[0], torch.tensor(ref2, dtype=torch.float64), atol=1e-12)
    lin = linear()
    assert torch.allclose(occlusion(tab(lin), X, 0, progress=False), lin.weight[0].detach() * (X - BG.mean(0)), atol=1e-12)


def test_tabular_lime_recovers_a_linear_model_exactly():
    # v(z) = f(mean bg) + Σ_j z_j w_j (x_j − mean bg_j) is linear in the bits: the unpenalised fit is exact
    lin = linear()
    e = lime(tab(lin), X, 1, n_samples=50, alpha=0.0, score="logit", progress=False)
    assert torch.allclose(e.map, lin.weight[1].detach() * (X - BG.mean(0)), atol=1e-10)


def test_tabular_rise_is_its_formula_over_seeded_masks():
    net = mlp()
    n, p = 30, 0.5
    a = rise(tab(net), X[:2], 1, n_samples=n, p=p, seed=3, score="logit", progress=False)
    masks = torch.rand(n, D, generator=torch.Generator().manual_seed(3)) < p
    for i in range(2):
        ref = sum(value(net, X[i], tuple(torch.nonzero(m).flatten().tolist())) * m.double() for m in masks) / (n * p)
        assert torch.allclose(a[i], ref, atol=1e-12)


# --- tokens: the mask/pad id replaces a token, padding never switched ----------------------------------------


@pytest.fixture(scope="module")
def encoder():
    return tiny_encoder().double()


def token_boundary(net, mask, **how):
    return see.boundary(net, kind="tokens", extra={"attention_mask": mask}, pad_id=0, **how)


def logits(net, ids, mask):
    with see.hooks(net), torch.no_grad():
        return net(ids, attention_mask=mask)["logits"]


def test_token_occlusion_replaces_each_real_token_by_the_mask_id(encoder):
    ids, mask = token_batch(4)
    with untouched(encoder):
        a = see.attribute(encoder, ids, "occlusion", target=2, kind="tokens", extra={"attention_mask": mask}, pad_id=0,
                          mask_id=3, progress=False)
    assert a.shape == ids.shape and a.dtype == torch.float64
    clean = logits(encoder, ids, mask)[:, 2]
    for i in range(4):
        for j in range(ids.shape[1]):
            if mask[i, j] == 0:
                assert a[i, j] == 0  # padding is never hidden
                continue
            hidden = ids[i : i + 1].clone()
            hidden[0, j] = 3
            ref = clean[i] - logits(encoder, hidden, mask[i : i + 1])[0, 2]
            assert float(a[i, j]) == pytest.approx(float(ref), abs=1e-12)


def test_token_kernel_shap_is_exact_over_tokens_and_words(encoder):
    ids, mask = token_batch(3)
    b = token_boundary(encoder, mask)
    e = kernel_shap(b, ids, 1, n_samples=200, progress=False)  # at most 7 tokens: 128 coalitions, enumerated
    for i in range(3):
        real = [j for j in range(ids.shape[1]) if mask[i, j]]

        # v of every coalition of real tokens, in one batch (pad id: the boundary's baseline without mask_id)
        subsets = [s for size in range(len(real) + 1) for s in itertools.combinations(real, size)]
        z = ids[i : i + 1].repeat(len(subsets), 1)
        for r, s in enumerate(subsets):
            z[r, [j for j in real if j not in s]] = 0
        values = dict(zip(subsets, logits(encoder, z, mask[i : i + 1].expand(len(subsets), -1))[:, 1].tolist()))

        def v(kept):
            return values[tuple(sorted(kept))]

        k = len(real)
        for j in real:
            others = [r for r in real if r != j]
            phi = sum(math.factorial(len(s)) * math.factorial(k - len(s) - 1) / math.factorial(k) * (v(s + (j,)) - v(s))
                      for size in range(k) for s in itertools.combinations(others, size))
            assert float(e.map[i, j]) == pytest.approx(phi, abs=1e-10)
        assert all(float(e.map[i, j]) == 0 for j in range(ids.shape[1]) if not mask[i, j])
    # words as segments: tokens (0, 1), (2, 3), (4, 5), (6) — one value per word, spread on its tokens
    words = torch.tensor([0, 0, 1, 1, 2, 2, 3])
    w = kernel_shap(b, ids, 1, segments=words, n_samples=64, progress=False)
    assert w.n_features == [4, 3, 3]  # sample 1 ends in one pad token, sample 2 in two (the last word is gone)
    assert torch.equal(w.map[:, 0], w.map[:, 1]) and torch.equal(w.map[:, 2], w.map[:, 3])
    with torch.no_grad():
        gap = logits(encoder, ids, mask)[:, 1] - logits(encoder, torch.where(mask.bool(), 0, ids), mask)[:, 1]
    per_word = w.weights.sum(1)
    assert torch.allclose(per_word, gap, atol=1e-10)  # efficiency over the words


# --- invariances on every sample ------------------------------------------------------------------------------


CASES = [("occlusion", {}), ("lime", {"n_samples": 40}), ("kernel-shap", {"n_samples": 40}), ("rise", {"n_samples": 40})]


@pytest.mark.parametrize("method,opts", CASES, ids=[c[0] for c in CASES])
def test_rows_batch_invariant_float64_and_seeded(method, opts):
    net = mlp()
    b = tab(net)
    together = see.attribute(b, X, method, target=1, progress=False, **opts)
    alone = torch.cat([see.attribute(b, X[i : i + 1], method, target=1, progress=False, **opts) for i in range(len(X))])
    assert together.dtype == torch.float64 and torch.allclose(together, alone, atol=1e-12, rtol=0)
    assert torch.equal(together, see.attribute(b, X, method, target=1, progress=False, **opts))
    reversed_ = see.attribute(b, X.flip(0), method, target=1, progress=False, **opts).flip(0)
    assert torch.allclose(together, reversed_, atol=1e-12, rtol=0)
    if method != "occlusion":
        other = see.attribute(b, X, method, target=1, progress=False, seed=1, **opts)
        assert not torch.allclose(together, other)  # the seed is used


@pytest.mark.parametrize("method,opts", CASES, ids=[c[0] for c in CASES])
def test_tokens_batch_invariant_and_float64(encoder, method, opts):
    ids, mask = token_batch(4)
    b = token_boundary(encoder, mask)
    together = see.attribute(b, ids, method, target=0, progress=False, **opts)
    alone = torch.cat([see.attribute(token_boundary(encoder, mask[i : i + 1]), ids[i : i + 1], method, target=0,
                                     progress=False, **opts) for i in range(4)])
    assert together.shape == ids.shape and together.dtype == torch.float64
    assert torch.allclose(together, alone, atol=1e-10, rtol=0)
    assert bool((together[mask == 0] == 0).all())


# --- bad input: one clear line, the model untouched --------------------------------------------------------------


def one_line(excinfo, *fragments):
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    for f in fragments:
        assert f in msg, (f, msg)


def test_bad_rows_tokens_and_options_are_one_line_each(encoder):
    net = mlp().train()
    with untouched(net, allow_raise=(ValueError, TypeError)):
        with pytest.raises(ValueError) as e:
            see.attribute(net, X[:, :5], "kernel-shap", kind="tabular", background=BG)
        one_line(e, "5 features per row", "background has 6")
        with pytest.raises(ValueError) as e:
            see.attribute(net, X, "lime", kind="tabular", feature_names=list("abcdef"), background=BG[:, :4])
        one_line(e, "background has 4 columns", "feature_names has 6")
        with pytest.raises(ValueError) as e:
            see.attribute(net, X, "occlusion", kind="tabular")
        one_line(e, "background=(M, features)")
        with pytest.raises(ValueError) as e:
            see.attribute(net, X, "rise", kind="tabular", background=BG, baseline=torch.zeros(4))
        one_line(e, "baseline on tabular rows")
        with pytest.raises(ValueError) as e:
            see.attribute(net, X, "occlusion", kind="tabular", background=BG, window=9)
        one_line(e, "window on tabular input", "from 1 to 6")
        with pytest.raises(ValueError) as e:
            see.attribute(net, X, "kernel-shap", kind="tabular", background=BG, segments="slic")
        one_line(e, "segments on tabular input")
    ids, mask = token_batch(2)
    enc = tiny_encoder().train()
    with untouched(enc, allow_raise=(ValueError, TypeError)):
        with pytest.raises(ValueError) as e:
            see.attribute(enc, ids + VOCAB, "occlusion", kind="tokens", extra={"attention_mask": mask}, pad_id=0)
        one_line(e, "token ids in [", f"the vocabulary has {VOCAB} ids")
        with pytest.raises(ValueError) as e:
            see.attribute(enc, ids, "kernel-shap", kind="tokens", extra={"attention_mask": mask[:, :5]}, pad_id=0)
        one_line(e, "'attention_mask' has length 5", "7 tokens")
        with pytest.raises(ValueError) as e:
            see.attribute(enc, ids, "lime", kind="tokens", extra={"attention_mask": mask})
        one_line(e, "mask_id= or pad_id=")
        with pytest.raises(ValueError) as e:
            see.attribute(enc, ids, "rise", kind="tokens", extra={"attention_mask": mask}, pad_id=0, baseline=VOCAB)
        one_line(e, f"baseline id {VOCAB} is outside the vocabulary")
        with pytest.raises(ValueError) as e:
            see.attribute(enc, torch.rand(2, 3, 5), "occlusion")
        one_line(e, "occlusion supports image, tabular, tokens inputs; this input is tensor")


def test_train_mode_models_are_untouched_on_every_new_path():
    net = mlp().train()
    with untouched(net):
        for method in ("occlusion", "lime", "kernel-shap", "rise"):
            see.attribute(net, X, method, target=1, kind="tabular", background=BG, n_samples=8, progress=False) \
                if method != "occlusion" else see.attribute(net, X, method, kind="tabular", background=BG, progress=False)
    enc = tiny_encoder().train()
    ids, mask = token_batch(2)
    with untouched(enc):
        for method in ("occlusion", "lime", "kernel-shap", "rise"):
            opts = {} if method == "occlusion" else {"n_samples": 8}
            see.attribute(enc, ids, method, kind="tokens", extra={"attention_mask": mask}, pad_id=0, progress=False, **opts)


# --- unit=: explain an internal unit's activation instead of a class score --------------------------------------


def test_unit_scores_on_rows_are_exact_for_a_linear_unit():
    # fc1 follows the standardisation: unit 3 of fc1 is linear in the raw row, u = Σ_j w_j (x_j − μ_j) / σ_j + b,
    # so its Shapley values with a background are w_j / σ_j · (x_j − mean(bg)_j), and occlusion gives the same
    model, _ = see.zoo.load("mlp-breast-cancer")
    net = copy.deepcopy(model).double()
    x, _, _ = see.zoo.breast_cancer("test")
    bg = see.zoo.tabular.background(20).double()
    rows = x[:3].double()
    w = net.fc1.weight[3].detach() / net.standardize.std.double()
    closed = w * (rows - bg.mean(0))
    with untouched(net):
        shap = see.attribute(net, rows, "kernel-shap", kind="tabular", background=bg, unit=("fc1", 3), n_samples=200,
                             progress=False)
        occ = see.attribute(net, rows, "occlusion", kind="tabular", background=bg, unit=("fc1", 3), progress=False)
    assert torch.allclose(shap, closed, atol=1e-9) and torch.allclose(occ, closed, atol=1e-9)
    with pytest.raises(ValueError, match="^unit= explains that unit's activation, not a class: leave target=None"):
        see.attribute(net, rows, "lime", target=1, kind="tabular", background=bg, unit=("fc1", 3))
    with pytest.raises(ValueError, match=r"^unit 40 is outside layer 'fc1', which has 32 units"):
        see.attribute(net, rows, "occlusion", kind="tabular", background=bg, unit=("fc1", 40), progress=False)


def test_unit_scores_on_tokens_follow_the_hidden_feature_over_the_real_tokens(encoder):
    ids, mask = token_batch(2)
    b = token_boundary(encoder, mask, mask_id=3)
    a = see.attribute(b, ids, "occlusion", unit=("blocks.1", 5), progress=False)

    def unit(z, m):  # feature 5 of blocks.1's hidden states, mean over the real tokens (written out by hand)
        with torch.no_grad():
            h = encoder.embeddings(z)
            for block in encoder.blocks:
                h = block(h, m)[0]
        return float((h[..., 5] * m).sum() / m.sum())

    for i in range(2):
        clean = unit(ids[i : i + 1], mask[i : i + 1])
        for j in range(ids.shape[1]):
            if not mask[i, j]:
                assert a[i, j] == 0
                continue
            z = ids[i : i + 1].clone()
            z[0, j] = 3
            assert float(a[i, j]) == pytest.approx(clean - unit(z, mask[i : i + 1]), abs=1e-12)
