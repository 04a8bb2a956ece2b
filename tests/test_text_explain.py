"""Word-level explanations: rollout/flow per word, deletion/insertion over words against a hand-built reference."""
from __future__ import annotations

import pytest
import torch

from seethrough.testing import untouched
from seethrough.text import attention_maps, rollout, token_relevance
from seethrough.text.explain import explain_text, word_curves
from seethrough.text.model import _tiny_bert_classifier
from seethrough.text.tokens import _toy_tokenizer, encode


@pytest.fixture(scope="module")
def setup():
    model = _tiny_bert_classifier(vocab_size=20, labels=3).double()
    t = encode(_toy_tokenizer(), "the cat playing cards")
    return model, t


def test_rollout_per_word_sums_the_pieces(setup):
    model, t = setup
    with untouched(model):
        e = explain_text(model, t, "rollout")
    rel = token_relevance(rollout(attention_maps(model, t)))[0].double()
    assert e.words == ["the", "cat", "playing", "cards"]
    assert torch.allclose(e.word_scores, torch.stack([rel[1], rel[2], rel[3] + rel[4], rel[5]]))
    with torch.no_grad():
        assert e.target == int(model(t.ids, attention_mask=t.mask).logits.argmax())


def test_word_curves_follow_the_ranking_and_mask_whole_words(setup):
    model, t = setup
    scores = torch.tensor([0.1, 0.9, 0.5, -0.2])  # order: cat, playing, the, cards
    with untouched(model):
        c = word_curves(model, t, scores, target=2, n_random=3)
    mask_id = t.mask_id
    ids = t.ids[0]
    spans = [[1], [2], [3, 4], [5]]
    order = [1, 2, 0, 3]

    def prob(x):
        with torch.no_grad():
            return model(x[None], attention_mask=t.mask).logits.softmax(-1)[0, 2].item()

    cur = ids.clone()
    ref = [prob(cur)]
    for w in order:
        cur[spans[w]] = mask_id
        ref.append(prob(cur))
    assert c.deletion.tolist() == pytest.approx(ref, abs=1e-12)
    assert cur.tolist() == [2, 4, 4, 4, 4, 4, 3]  # every word masked, [CLS] and [SEP] kept
    assert c.insertion[0].item() == pytest.approx(ref[-1], abs=1e-12) and c.insertion[-1].item() == pytest.approx(ref[0], abs=1e-12)
    trapezoid = (sum(ref) - (ref[0] + ref[-1]) / 2) / (len(ref) - 1)
    assert c.deletion_auc == pytest.approx(trapezoid, abs=1e-12)
    with pytest.raises(ValueError, match="3 word scores for a sentence of 4 words"):
        word_curves(model, t, scores[:3])


def test_explanations_are_one_sentence_at_a_time(setup):
    model, _ = setup
    two = encode(_toy_tokenizer(), ["the cat", "a dog"])
    with pytest.raises(ValueError, match="one sentence at a time"):
        explain_text(model, two, "rollout")
    with pytest.raises(TypeError, match="Tokens batch"):
        explain_text(model, torch.tensor([[2, 7, 3]]), "rollout")
