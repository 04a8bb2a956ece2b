"""The attribution registry on every input kind (issue 18 item 2, gradient and relevance part): the entry
refuses a kind a method does not serve in one line; saliency, grad×input, sensitivity, SmoothGrad,
integrated gradients, DeepLIFT and LRP on tabular rows and float tensors, checked against Captum, axioms
(completeness, summation-to-delta, conservation) and float64; batch invariance on every sample; the
model untouched, also when a call raises."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import seethrough as see
from seethrough.attribution import METHODS
from seethrough.testing import untouched

KINDS = ("image", "tabular", "tokens", "tensor")
GRADIENT = ("saliency", "grad-x-input", "sensitivity", "smoothgrad", "smoothgrad-sq", "vargrad", "integrated-gradients",
            "deconvnet", "guided-backprop")
ROWS_ONLY = ("deeplift", "lrp")  # any stack of Linear/conv and activation layers; not through an embedding
CHEAP = {"smoothgrad": {"n_samples": 4, "progress": False, "batch_size": 8},
         "smoothgrad-sq": {"n_samples": 4, "progress": False, "batch_size": 8},
         "vargrad": {"n_samples": 4, "progress": False, "batch_size": 8},
         "integrated-gradients": {"steps": 8, "progress": False, "batch_size": 8}}  # a fixed batch size: a fixed sum order


@pytest.fixture(scope="module")
def mlp():
    model, _ = see.zoo.load("mlp-breast-cancer")
    x, _, names = see.zoo.breast_cancer("test")
    return model, x[:6], names


def _train_mode_mlp() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 3)).train()
    net(torch.randn(16, 5)).sum().backward()  # grads set, BN statistics moved
    return net


def test_every_method_lists_its_kinds_honestly():
    for name, spec in METHODS.items():
        assert spec.kinds and set(spec.kinds) <= set(KINDS), name
    for name in GRADIENT:
        assert METHODS[name].kinds == KINDS, name
    for name in ROWS_ONLY:
        assert set(METHODS[name].kinds) == {"image", "tabular", "tensor"}, name
        assert METHODS[name].needs_hooks
    assert METHODS["gradcam"].needs_hooks and not METHODS["saliency"].needs_hooks


@pytest.mark.parametrize("name", [n for n, s in METHODS.items() if "tabular" not in s.kinds])
def test_a_method_asked_for_a_kind_it_does_not_serve_refuses_in_one_line(mlp, name):
    model, x, _ = mlp
    kinds = ", ".join(METHODS[name].kinds)
    with untouched(model):
        with pytest.raises(ValueError, match=rf"^{name} supports {kinds} inputs; this input is tabular "
                                             r"\(\(N, features\) rows\)$".replace("+", r"\+")):
            see.attribute(model, x, name)


def test_deeplift_refuses_token_ids_and_trust_refuses_rows(mlp):
    from tests.transformer_fixtures import tiny_encoder, token_batch

    ids, mask = token_batch(2)
    with pytest.raises(ValueError, match=r"^deeplift supports image, tabular, tensor inputs; this input is tokens"):
        see.attribute(tiny_encoder(), ids, "deeplift", extra={"attention_mask": mask})
    model, x, _ = mlp
    with untouched(model):
        with pytest.raises(ValueError, match=r"^trust=True .* is defined for image inputs; this input is tabular"):
            see.attribute(model, x, "saliency", trust=True)


def test_integrated_gradients_on_rows_equals_captum_and_is_complete(mlp):
    from captum.attr import IntegratedGradients

    model, x, _ = mlp
    m64, x64 = copy.deepcopy(model).double(), x.double()
    a = see.attribute(m64, x64, "integrated-gradients", target=1, steps=32)
    want = IntegratedGradients(m64).attribute(x64, target=1, n_steps=32, method="gausslegendre")
    assert a.dtype == torch.float64 and a.shape == x.shape
    torch.testing.assert_close(a, want, rtol=0, atol=1e-4)
    # Completeness: the gap is Σ a − (f(x) − f(x̄)), and it shrinks with the steps (a ReLU MLP: kinks).
    gaps = []
    for steps in (32, 512):
        r = see.integrated_gradients(m64, x64, 1, steps=steps, progress=False)
        delta = m64(x64)[:, 1] - m64(torch.zeros_like(x64))[:, 1]
        torch.testing.assert_close(r.gap, r.attribution.sum(1) - delta.detach(), rtol=0, atol=1e-10)
        gaps.append(float(r.relative_gap.max()))
    assert gaps[1] < 2e-3 and gaps[1] < gaps[0]


def test_the_background_is_the_rows_baseline_and_sets_the_smoothgrad_scale(mlp):
    model, x, names = mlp
    bg = see.zoo.breast_cancer("train")[0][:50]
    b = see.boundary(model, kind="tabular", feature_names=names, background=bg)
    r = see.integrated_gradients(b, x, 1, steps=16, progress=False)
    ref = bg.mean(0, keepdim=True)
    torch.testing.assert_close(r.baseline_score, model(ref)[:, 1].detach().expand(len(x)), rtol=1e-5, atol=1e-5)
    # SmoothGrad's σ per feature is noise × the background's std: with noise=0 it is the plain gradient,
    # and a σ that ignored the feature scales (the row's range, ~2500 for "worst area") would wash it out.
    sal = see.attribute(b, x, "saliency", target=1, abs=False)
    sg0 = see.attribute(b, x, "smoothgrad", target=1, relative_noise=0.0, n_samples=2, progress=False)
    torch.testing.assert_close(sg0, sal)
    sg = see.attribute(b, x, "smoothgrad", target=1, relative_noise=0.05, n_samples=64, progress=False)
    cos = torch.nn.functional.cosine_similarity(sg, sal, dim=1)
    assert float(cos.min()) > 0.5


def test_deeplift_sums_to_delta_and_lrp_conserves_relevance_on_the_mlp(mlp):
    model, x, _ = mlp
    m64, x64 = copy.deepcopy(model).double(), x.double()
    a = see.attribute(m64, x64, "deeplift", target=1)
    delta = (m64(x64)[:, 1] - m64(torch.zeros_like(x64))[:, 1]).detach()
    torch.testing.assert_close(a.sum(1), delta, rtol=0, atol=1e-10)
    # LRP-ε with a tiny ε on the bias-free copy: relevance is conserved from the logit down to the features.
    nobias = copy.deepcopy(m64)
    with torch.no_grad():
        for m in nobias.modules():
            if isinstance(m, nn.Linear):
                m.bias.zero_()
    r, sums = see.attribution.lrp.lrp_relevances(nobias, x64, 1, composite="epsilon", stabilizer=1e-12)
    logit = nobias(x64)[:, 1].detach()
    assert list(sums) == ["fc3", "fc2", "fc1"]
    for layer_sum in sums.values():
        torch.testing.assert_close(layer_sum, logit, rtol=1e-8, atol=1e-10)
    lr = see.attribute(nobias, x64, "lrp", target=1, composite="epsilon", stabilizer=1e-12)
    assert lr.shape == x.shape and lr.dtype == torch.float64
    torch.testing.assert_close(lr.sum(1), logit, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("name", [*GRADIENT, *ROWS_ONLY])
def test_rows_batch_invariance_float64_and_a_fixed_seed(mlp, name):
    """N rows at once give the same as N calls, float64 in gives float64 out, the same call twice the same."""
    model, x, _ = mlp
    m64, x64 = copy.deepcopy(model).double(), x[:4].double()
    opts = CHEAP.get(name, {})
    whole = see.attribute(m64, x64, name, target=1, **opts)
    assert whole.dtype == torch.float64 and whole.shape == x64.shape
    single = torch.cat([see.attribute(m64, x64[i:i + 1], name, target=1, **opts) for i in range(len(x64))])
    torch.testing.assert_close(whole, single, rtol=1e-9, atol=1e-12)
    assert torch.equal(whole, see.attribute(m64, x64, name, target=1, **opts))


def test_a_float_tensor_that_is_not_rows_or_images_is_served():
    """A 1-D signal (N, 1, 100) through a Conv1d: the gradient family and DeepLIFT run on kind 'tensor'."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv1d(1, 4, 5), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 96, 2)).double()  # smooth: IG converges fast
    x = torch.randn(3, 1, 100, dtype=torch.float64)
    ig = see.integrated_gradients(net, x, 0, steps=64, progress=False)
    assert ig.attribution.shape == x.shape and float(ig.relative_gap.max()) < 1e-8
    dl = see.attribute(net, x, "deeplift", target=0)
    torch.testing.assert_close(dl.flatten(1).sum(1), (net(x)[:, 0] - net(torch.zeros_like(x))[:, 0]).detach(),
                               rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", [*GRADIENT, *ROWS_ONLY])
def test_rows_leave_a_train_mode_model_as_found_also_when_the_call_raises(name):
    net = _train_mode_mlp()
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(2))
    want = copy.deepcopy(net).eval()(x).argmax(1)
    with untouched(net):
        a = see.attribute(net, x, name, **CHEAP.get(name, {}))
        b = see.attribute(net, x, name, target=want, **CHEAP.get(name, {}))
    assert torch.equal(a, b)  # target=None is the eval-mode prediction
    with untouched(net):
        with pytest.raises(ValueError, match="out of range"):
            see.attribute(net, x, name, target=7, **CHEAP.get(name, {}))
        with pytest.raises(ValueError, match=r"^x has 4 features per row but the model's first Linear layer takes 5"):
            see.attribute(net, x[:, :4], name)


class Planted(RuntimeError):
    """The failure planted in the k-th forward pass."""


class Counting(nn.Module):
    """Wraps a model: counts its forwards (also of deep copies: the counter is on the class) and raises
    :class:`Planted` at the ``fail_at``-th."""

    state = {"calls": 0, "fail_at": None}

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, *args, **kwargs):
        Counting.state["calls"] += 1
        if Counting.state["calls"] == Counting.state["fail_at"]:
            raise Planted(f"planted failure in forward {Counting.state['calls']}")
        return self.inner(*args, **kwargs)


def _families(kind: str) -> list[str]:
    """This module's families (gradient, rules, relevance) on ``kind``, from the registry."""
    return [n for n, s in METHODS.items() if kind in s.kinds and s.family in ("gradient", "rule", "relevance")]


def _token_case():
    from tests.transformer_fixtures import tiny_encoder, token_batch

    ids, mask = token_batch(3)
    return Counting(tiny_encoder().train()), ids, dict(kind="tokens", extra={"attention_mask": mask}, pad_id=0,
                                                       embedding="inner.embeddings.word_embeddings")


def _rows_case():
    return Counting(_train_mode_mlp()), torch.randn(4, 5, generator=torch.Generator().manual_seed(2)), {}


@pytest.mark.parametrize("kind, name", [(k, n) for k in ("tabular", "tokens") for n in _families(k)])
def test_a_forward_that_raises_mid_call_leaves_the_model_as_found(kind, name):
    """At the first forward and at the last one of a full run, on rows and on token ids."""
    model, x, how = _rows_case() if kind == "tabular" else _token_case()
    opts = CHEAP.get(name, {})
    Counting.state.update(calls=0, fail_at=None)
    with untouched(model):
        see.attribute(model, x, name, **how, **opts)
    n = Counting.state["calls"]
    assert n >= 1
    for fail_at in sorted({1, n}):
        Counting.state.update(calls=0, fail_at=fail_at)
        with untouched(model):
            with pytest.raises(Planted):
                see.attribute(model, x, name, **how, **opts)
    Counting.state.update(calls=0, fail_at=None)


def test_an_image_model_with_a_dict_output_is_read_through_the_output_selector():
    """A callable target gets the raw output (what it was written for); a class target reads ``output=``."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6 * 6, 4)).double()

    class Dict(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            return {"features": x.mean((1, 2, 3)), "scores": self.net(x)}

    x = torch.rand(3, 1, 8, 8, dtype=torch.float64)
    want = see.attribute(net, x, "integrated-gradients", target=2, steps=8)
    got = see.attribute(Dict(), x, "integrated-gradients", target=2, steps=8, output="scores")
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
    raw = see.attribute(Dict(), x, "saliency", target=lambda out: out["scores"][:, 2])
    torch.testing.assert_close(raw, see.attribute(net, x, "saliency", target=2), rtol=1e-12, atol=1e-14)
    with pytest.raises(TypeError, match=r"^the model returns a dict with keys \['features', 'scores'\] .*pass output="):
        see.attribute(Dict(), x, "saliency", target=2)
