"""WEAT against closed forms and enumeration, the gender direction against an SVD, neutralise, word lists."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from seethrough.text import bias as B
from seethrough.text.tokens import _toy_tokenizer


def _on_circle(angles):
    return torch.tensor([[math.cos(t), math.sin(t)] for t in angles], dtype=torch.float64)


def test_weat_effect_size_and_exact_p_value_in_closed_form():
    # A = {e1}, B = {e2}: a unit vector at angle θ has s = cos θ − sin θ
    ax, ay = [0.0, math.pi / 12, math.pi / 6], [math.pi / 2, 5 * math.pi / 12, math.pi / 3]
    sx = np.array([math.cos(t) - math.sin(t) for t in ax])
    sy = np.array([math.cos(t) - math.sin(t) for t in ay])
    expected = (sx.mean() - sy.mean()) / np.concatenate([sx, sy]).std(ddof=1)
    r = B.weat(_on_circle(ax), _on_circle(ay), torch.eye(2)[[0]], torch.eye(2)[[1]])
    assert r.effect_size == pytest.approx(expected, rel=1e-12)
    assert r.exact and r.n_partitions == 20
    assert r.p_value == pytest.approx(1 / 20)  # X holds the three largest s: only the observed partition ties it
    assert r.statistic == pytest.approx(sx.sum() - sy.sum(), rel=1e-12)


def test_weat_p_value_counts_partitions_like_an_enumeration():
    g = torch.Generator().manual_seed(0)
    x, y, a, b = (torch.randn(n, 5, generator=g, dtype=torch.float64) for n in (4, 5, 3, 3))
    s = B.association(torch.cat([x, y]), a, b).numpy()
    stat = s[:4].sum() - s[4:].sum()
    count = sum(2 * s[list(c)].sum() - s.sum() >= stat - 1e-12 for c in itertools.combinations(range(9), 4))
    exact = B.weat(x, y, a, b)
    assert exact.exact and exact.p_value == pytest.approx(count / math.comb(9, 4))
    sampled = B.weat(x, y, a, b, n_permutations=100, seed=1)
    assert not sampled.exact and abs(sampled.p_value - exact.p_value) < 0.15
    assert sampled.p_value == B.weat(x, y, a, b, n_permutations=100, seed=1).p_value
    assert sampled.effect_size == exact.effect_size


def test_gender_direction_is_the_first_component_of_the_centred_pairs():
    g = torch.Generator().manual_seed(0)
    pairs = torch.randn(6, 2, 7, generator=g, dtype=torch.float64)
    d, share = B.gender_direction(pairs, "pca")
    centred = (pairs - pairs.mean(1, keepdim=True)).reshape(-1, 7).numpy()
    evals, evecs = np.linalg.eigh(centred.T @ centred)
    ref = evecs[:, -1] * np.sign(evecs[:, -1] @ (pairs[0, 0] - pairs[0, 1]).numpy())
    assert np.allclose(d.numpy(), ref, atol=1e-10)
    assert share == pytest.approx(evals[-1] / evals.sum(), rel=1e-10)
    diff, one = B.gender_direction(pairs, "difference")
    assert one == 1.0 and torch.allclose(diff, (pairs[0, 0] - pairs[0, 1]) / (pairs[0, 0] - pairs[0, 1]).norm())


def test_neutralise_removes_the_projection_and_keeps_the_rest():
    g = torch.Generator().manual_seed(1)
    v, d = torch.randn(5, 4, generator=g, dtype=torch.float64), torch.randn(4, generator=g, dtype=torch.float64)
    n = B.neutralise(v, d)
    assert B.projections(n, d).abs().max() < 1e-12
    assert torch.allclose(n.norm(dim=1), torch.ones(5, dtype=torch.float64))
    assert torch.allclose(B.neutralise(n, d), n, atol=1e-12)  # idempotent
    rest = v - (v @ d / d.dot(d)).unsqueeze(1) * d
    assert torch.allclose(n, rest / rest.norm(dim=1, keepdim=True), atol=1e-12)


def test_a_word_of_several_pieces_is_refused_in_one_line_or_averaged():
    tok = _toy_tokenizer()
    emb = torch.nn.Embedding(20, 3)
    with pytest.raises(ValueError, match=r"'playing' in the word list is not one token .*'play', '##ing'") as e:
        B.word_vectors(emb, tok, ["cat", "playing"])
    assert "\n" not in str(e.value)
    v = B.word_vectors(emb, tok, ["cat", "playing"], pieces="mean")
    assert torch.allclose(v[1], emb.weight[[11, 12]].mean(0).detach())
    with pytest.raises(ValueError, match="not in the vocabulary"):
        B.word_vectors(emb, tok, ["zebra"], pieces="mean")
    with pytest.raises(ValueError, match="pieces must be"):
        B.word_vectors(emb, tok, ["cat"], pieces="sum")


@pytest.fixture(scope="module")
def minilm():
    import seethrough as see

    model, _ = see.zoo.load("minilm-l6")
    return model, see.zoo.tokenizer("minilm-l6")


def test_minilm_word_lists_are_single_tokens_and_occupations_split_by_gender(minilm):
    from seethrough.testing import untouched

    model, tok = minilm
    with untouched(model):
        pairs = torch.stack([B.word_vectors(model, tok, list(p)) for p in B.DEFINITIONAL_PAIRS])
        occ = B.word_vectors(model, tok, list(B.OCCUPATIONS)).double()
    g, _ = B.gender_direction(pairs, "pca")
    p = dict(zip(B.OCCUPATIONS, B.projections(occ, g).tolist()))
    assert p["nurse"] < 0 < p["carpenter"] and p["maid"] < 0 < p["architect"]
    assert B.projections(B.neutralise(occ, g), g).abs().max() < 1e-12
    for words in (B.WEAT_CAREER, B.WEAT_FAMILY, B.WEAT_MALE_NAMES, B.WEAT_FEMALE_NAMES, B.WEAT_SCIENCE, B.WEAT_ARTS,
                  B.WEAT_MALE, B.WEAT_FEMALE):
        B.word_ids(tok, list(words))  # every default list is one token per word: no averaging rule needed


def test_contextual_vectors_read_the_word_pieces_at_every_layer(minilm):
    model, tok = minilm
    v = B.contextual_vectors(model, tok, ["nurse", "hairdresser"], "the {} arrived.")
    assert v.shape == (7, 2, 384)
    emb = B.embedding_matrix(model)
    # layer 0 is the embedding output: word + position + type, layer-normed; the single-piece word's row
    # must be the embedding layer's output at position 2 ("the" is position 1 after [CLS])
    from seethrough.text.model import run_backbone

    t = tok(["the nurse arrived."], return_tensors="pt")
    hs = run_backbone(model, t["input_ids"], t["attention_mask"], output_hidden_states=True).hidden_states
    assert torch.allclose(v[:, 0], torch.stack([h[0, 2] for h in hs]), atol=1e-6)
    assert emb.shape == (30522, 384)


def test_docs_state_the_measured_weat_numbers(minilm):
    from pathlib import Path

    model, tok = minilm
    doc = " ".join((Path(__file__).resolve().parents[1] / "docs" / "text.md").read_text(encoding="utf-8").split())
    v = lambda words: B.word_vectors(model, tok, list(words)).double()  # noqa: E731
    g, _ = B.gender_direction(torch.stack([B.word_vectors(model, tok, list(p)) for p in B.DEFINITIONAL_PAIRS]), "pca")
    x, y, a, b = v(B.WEAT_CAREER), v(B.WEAT_FAMILY), v(B.WEAT_MALE_NAMES), v(B.WEAT_FEMALE_NAMES)
    r0, r1 = B.weat(x, y, a, b), B.weat(B.neutralise(x, g), B.neutralise(y, g), a, b)
    assert r0.n_partitions == 12870 and r0.exact
    assert f"effect size **{r0.effect_size:+.2f}** (p = {r0.p_value:.3f})" in doc
    assert f"leaves **{r1.effect_size:+.2f}** (p = {r1.p_value:.3f})" in doc
