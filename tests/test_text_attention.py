"""Attention maps, rollout and flow against hand computations and an LP max-flow, head masking against zeroed weights."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import seethrough as see
from seethrough.testing import untouched
from seethrough.text import attention_maps, flow, head_importance, mixed, rollout, token_relevance
from seethrough.text.model import _tiny_bert, _tiny_bert_classifier


def _random_attention(layers: int, heads: int, length: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, layers, heads, length, length, generator=g, dtype=torch.float64).softmax(-1)


def test_rollout_and_flow_of_a_hand_computed_two_layer_example():
    # layer 1: both tokens attend to token 0; layer 2: the tokens swap. With r = 0.5:
    # Â1 = [[1, 0], [.5, .5]], Â2 = [[.5, .5], [.5, .5]]
    a = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]], [[[0.0, 1.0], [1.0, 0.0]]]], dtype=torch.float64)
    assert mixed(a)[0].tolist() == [[[1.0, 0.0], [0.5, 0.5]], [[0.5, 0.5], [0.5, 0.5]]]
    assert rollout(a)[0].tolist() == [[0.75, 0.25], [0.75, 0.25]]  # Â2 @ Â1
    # two layers: flow(i, j) = sum_k min(Â2[i, k], Â1[k, j]) = [[.5 + .5, 0 + .5], ...]
    assert flow(a, normalize=False)[0].tolist() == [[1.0, 0.5], [1.0, 0.5]]
    assert torch.allclose(flow(a)[0], torch.tensor([[2 / 3, 1 / 3], [2 / 3, 1 / 3]], dtype=torch.float64), atol=1e-7)


def test_two_layer_flow_is_the_sum_of_path_minima():
    a = _random_attention(2, 3, 4, seed=1)
    m = mixed(a)[0]
    ref = torch.minimum(m[1].unsqueeze(-1), m[0].unsqueeze(0)).sum(1)  # [i, k, j] → sum over k
    assert torch.allclose(flow(a, normalize=False)[0], ref, atol=1e-6)


def _lp_max_flow(m: np.ndarray, src: int, dst: int) -> float:
    """Max flow by linear programming (scipy's HiGHS): an independent reference for networkx."""
    from scipy.optimize import linprog

    layers, n, _ = m.shape
    edges = [((lay + 1, i), (lay, j), m[lay, i, j]) for lay in range(layers) for i in range(n) for j in range(n)]
    nodes = sorted({e[0] for e in edges} | {e[1] for e in edges})
    s, t = (layers, src), (0, dst)
    a_eq, b_eq = [], []
    for v in nodes:
        if v in (s, t):
            continue
        a_eq.append([(1.0 if e[1] == v else 0.0) - (1.0 if e[0] == v else 0.0) for e in edges])
        b_eq.append(0.0)
    c = [-(1.0 if e[0] == s else 0.0) + (1.0 if e[1] == s else 0.0) for e in edges]
    r = linprog(c, A_eq=a_eq, b_eq=b_eq, bounds=[(0, e[2]) for e in edges], method="highs")
    return -r.fun


def test_three_layer_flow_equals_a_linear_programme():
    a = _random_attention(3, 2, 3, seed=2)
    m = mixed(a)[0].numpy()
    ours = flow(a, normalize=False)[0]
    for i in range(3):
        for j in range(3):
            assert ours[i, j].item() == pytest.approx(_lp_max_flow(m, i, j), abs=1e-6)


def test_rollout_rows_sum_to_one_and_padding_is_left_out_of_flow():
    a = _random_attention(3, 2, 5, seed=3)
    assert torch.allclose(rollout(a).sum(-1), torch.ones(1, 5, dtype=torch.float64))
    mask = torch.tensor([[1, 1, 1, 0, 0]])
    f = flow(a, attention_mask=mask)
    assert torch.equal(f[0, 3:], torch.zeros(2, 5, dtype=torch.float64)) and torch.equal(f[0, :, 3:], torch.zeros(5, 2, dtype=torch.float64))
    assert torch.allclose(f[0, :3].sum(-1), torch.ones(3, dtype=torch.float64))
    assert token_relevance(rollout(a), mask)[0, 3:].abs().sum() == 0


def test_attention_maps_are_one_forward_equal_to_plain_transformers():
    bert = _tiny_bert()
    ids = torch.tensor([[2, 7, 9, 3, 0], [2, 5, 3, 0, 0]])
    mask = (ids != 0).long()
    calls = []
    handle = bert.register_forward_hook(lambda *a: calls.append(1))
    try:
        ours = attention_maps(bert, ids, mask)
    finally:
        handle.remove()
    with torch.no_grad():
        ref = torch.stack(bert(ids, attention_mask=mask, output_attentions=True).attentions, 1)
    assert len(calls) == 1
    assert torch.equal(ours, ref)
    assert ours.shape == (2, 2, 2, 5, 5)
    assert ours[1, :, :, :, 3:].abs().max() == 0  # no attention to padding
    with untouched(bert):
        attention_maps(bert, ids, mask)


def test_attention_maps_are_the_same_in_a_batch_and_alone():
    bert = _tiny_bert()
    ids = torch.tensor([[2, 7, 9, 3], [2, 5, 3, 0]])
    mask = (ids != 0).long()
    both = attention_maps(bert, ids, mask)
    alone = attention_maps(bert, ids[1:, :3], mask[1:, :3])
    assert torch.allclose(both[1, :, :, :3, :3], alone[0], atol=1e-6)


def test_an_image_model_and_sdpa_attention_are_refused_in_one_line():
    model, _ = see.zoo.load("lenet-digits")
    with untouched(model), pytest.raises(ValueError, match="is not a transformer text model"):
        attention_maps(model, torch.tensor([[1, 2]]))
    from transformers import BertModel

    from seethrough.text.model import _tiny_config

    cfg = _tiny_config()
    cfg._attn_implementation = "sdpa"
    sdpa = BertModel(cfg)
    with pytest.raises(ValueError, match="attn_implementation='eager'"):
        attention_maps(sdpa, torch.tensor([[1, 2]]))
    with pytest.raises(TypeError, match="token ids"):
        attention_maps(_tiny_bert(), torch.zeros(1, 3))


@pytest.fixture(scope="module")
def classifier():
    return _tiny_bert_classifier(labels=3, num_hidden_layers=3, num_attention_heads=4).double()


IDS = torch.randint(4, 30, (5, 7), generator=torch.Generator().manual_seed(0))


def test_masking_a_head_equals_zeroing_its_value_weights(classifier):
    with untouched(classifier):
        imp = head_importance(classifier, IDS, target=1)
    d = 16 // 4
    for layer, head in [(0, 0), (1, 2), (2, 3)]:
        c = copy.deepcopy(classifier)
        v = c.bert.encoder.layer[layer].attention.self.value
        with torch.no_grad():
            v.weight[head * d:(head + 1) * d] = 0
            v.bias[head * d:(head + 1) * d] = 0
            ref = (c(IDS).logits[:, 1] - classifier(IDS).logits[:, 1]).mean()
        assert imp.masked[layer, head].item() == pytest.approx(ref.item(), rel=1e-9, abs=1e-15)


def test_gate_gradient_is_the_finite_difference_and_predicts_masking(classifier):
    from scipy.stats import spearmanr

    from seethrough.boundary import as_boundary
    from seethrough.text.attention import gated_scores

    imp = head_importance(classifier, IDS, target=1)
    b = as_boundary(classifier, IDS, kind="tokens", extra={"attention_mask": torch.ones_like(IDS)})
    rows, cls = torch.arange(len(IDS)), torch.full((len(IDS),), 1)
    eps = 1e-5
    for layer, head in [(0, 1), (2, 2)]:
        up, down = torch.ones(len(IDS), 3, 4, dtype=torch.float64), torch.ones(len(IDS), 3, 4, dtype=torch.float64)
        up[:, layer, head] += eps
        down[:, layer, head] -= eps
        fd = (gated_scores(b, IDS, rows, up, cls, 1, "logit") - gated_scores(b, IDS, rows, down, cls, 1, "logit")) / (2 * eps)
        assert fd.mean().item() == pytest.approx(imp.signed[layer, head].item(), rel=1e-5, abs=1e-12)
        assert fd.abs().mean().item() == pytest.approx(imp.gradient[layer, head].item(), rel=1e-5, abs=1e-12)
    # first order: S(ξ_h = 0) − S ≈ −∂S/∂ξ_h, so the ranking of the masked changes follows the gradient's
    rho = spearmanr(-imp.signed.flatten().numpy(), imp.masked.flatten().numpy()).statistic
    assert rho > 0.9


def test_head_importance_is_the_same_in_a_batch_and_alone(classifier):
    both = head_importance(classifier, IDS[:2], target=1, batch_size=7)
    alone = [head_importance(classifier, IDS[i:i + 1], target=1) for i in range(2)]
    assert torch.allclose(both.masked, (alone[0].masked + alone[1].masked) / 2, atol=1e-12)
    assert torch.allclose(both.gradient, (alone[0].gradient + alone[1].gradient) / 2, atol=1e-12)


def test_head_importance_leaves_a_train_mode_model_as_found_also_when_it_raises():
    m = _tiny_bert_classifier().train()
    with untouched(m):
        head_importance(m, IDS[:1, :4], target=0)
    with untouched(m, allow_raise=ValueError):
        head_importance(m, IDS[:1, :4], target=7)  # out of range: one line
    assert m.training
