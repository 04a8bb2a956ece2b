"""Probing: the generated sentences carry the labels they claim, one forward per batch, probes and control tasks."""
from __future__ import annotations

import math

import pytest
import torch

from seethrough.testing import untouched
from seethrough.text import probing as P
from seethrough.text.model import _tiny_bert
from seethrough.text.tokens import _toy_tokenizer


def test_sentences_are_seeded_and_their_labels_hold_by_construction():
    s = P.generate(400, seed=5)
    assert [x.text for x in s] == [x.text for x in P.generate(400, seed=5)]
    assert [x.text for x in s] != [x.text for x in P.generate(400, seed=6)]
    past = {v[2] for v in P._VERBS}
    present = {f for v in P._VERBS for f in v[:2]}
    plural_nouns = {n[1] for n in P._SUBJECTS}
    for x in s:
        verb = x.words[x.words.index(x.subject) + 1]
        assert verb == x.verb and (verb in past) == x.past and (x.past or verb in present)
        assert (x.subject in plural_nouns) == x.plural_subject
        assert x.object == P._OBJECTS[x.object_lemma][x.plural_object]
        if not x.past:  # subject-verb agreement in the present tense
            lemma = next(v for v in P._VERBS if verb in v[:2])
            assert verb == lemma[0 if x.plural_subject else 1]
    lengths, _ = P.task_labels(s, "length")
    assert lengths == [sum(len(x.words) > b for b in P.LENGTH_BINS) for x in s]
    assert set(lengths) == {0, 1, 2}


def test_bigram_shift_swaps_exactly_two_adjacent_words_in_half_the_sentences():
    s = P.generate(200, seed=1)
    texts, labels = P.bigram_shift(s, seed=0)
    assert sum(labels) == 100
    for x, t, flipped in zip(s, texts, labels):
        a, b = list(x.words), t[:-1].split()
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        assert sorted(a) == sorted(b)
        if flipped:
            assert len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]]
        else:
            assert diff == []


def test_control_labels_are_a_function_of_the_type_drawn_from_the_task_labels():
    s = P.generate(300, seed=2)
    labels, types = P.task_labels(s, "subject-number")
    ctl = P.control_labels(labels, types, seed=0)
    by_type = {}
    for t, c in zip(types, ctl):
        assert by_type.setdefault(t, c) == c
    assert set(ctl) <= set(labels)
    assert len(set(by_type.values())) == 2  # 24 subject forms: both labels occur
    assert ctl == P.control_labels(labels, types, seed=0)


def test_features_take_one_forward_per_batch_and_do_not_depend_on_the_batch():
    bert = _tiny_bert(vocab_size=20)
    texts = ["the cat sat", "a dog ran", "the dog sat", "a cat", "she ran", "he sat"]
    calls = []
    h = bert.register_forward_hook(lambda *a: calls.append(1))
    try:
        f = P.sentence_features(bert, _toy_tokenizer(), texts, batch_size=4)
    finally:
        h.remove()
    assert len(calls) == math.ceil(len(texts) / 4)
    assert f.shape == (3, 6, 16)
    alone = torch.cat([P.sentence_features(bert, _toy_tokenizer(), [t]) for t in texts], 1)
    assert torch.allclose(f, alone, atol=1e-5)
    with untouched(bert):
        P.sentence_features(bert, _toy_tokenizer(), texts)


def test_a_probe_finds_a_planted_direction_and_not_noise():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(3, 200, 8, generator=g, dtype=torch.float64)
    y = [int(v) for v in torch.randint(0, 3, (200,), generator=g)]
    f[2, :, 1] += 4 * torch.tensor(y, dtype=torch.float64)
    acc = P.probe_layers(f, y, seed=0)
    assert acc[2] > 0.95 and acc[0] < 0.6
    assert torch.equal(acc, P.probe_layers(f, y, seed=0))


def test_bad_tasks_and_sizes_are_refused():
    with pytest.raises(ValueError, match="unknown probing task"):
        P.probe(_tiny_bert(vocab_size=20), _toy_tokenizer(), tasks=["syntax"])
    with pytest.raises(ValueError, match="positive number"):
        P.generate(0)


@pytest.mark.slow
def test_minilm_layers_encode_the_properties_and_controls_are_lower():
    """300 sentences (the report runs thousands): tense and subject number are decodable at every layer, well
    above the majority class, and the probe is selective for them in the upper layers."""
    import seethrough as see

    model, _ = see.zoo.load("minilm-l6")
    with untouched(model):
        r = P.probe(model, see.zoo.tokenizer("minilm-l6"), n_samples=300, seed=0)
    assert set(r.accuracy) == set(P.TASKS) and all(len(v) == 7 for v in r.accuracy.values())
    for task in ("tense", "subject-number", "object-number", "word-content"):
        assert (r.accuracy[task] > r.majority[task] + 0.2).all(), task
    assert r.selectivity["tense"][6] > 0.1
    assert r.accuracy["bigram-shift"][1:].max() > r.accuracy["bigram-shift"][0] + 0.1  # order needs context
