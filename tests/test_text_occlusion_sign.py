"""docs/text.md: on minilm-l6-topics, replacing any one word of "The chef baked fresh bread." by [MASK]
raises the food topic's logit (occlusion scores every word negative), while integrated gradients
scores every word positive. The occlusion map is checked against a forward per masked token."""
from __future__ import annotations

import torch

import seethrough as see
from seethrough.hooks import hooks
from seethrough.testing import untouched
from seethrough.text.explain import explain_text


def test_masking_a_word_raises_the_topic_so_occlusion_and_ig_disagree_in_sign():
    model, prep = see.zoo.load("minilm-l6-topics")
    t = prep("The chef baked fresh bread.")
    b = t.boundary(model)
    with untouched(model):
        occ = explain_text(model, t, "occlusion")
        ig = explain_text(model, t, "integrated-gradients")
        with torch.no_grad(), hooks(model):
            logits = b.forward(t.ids)[0]
            by_hand = []
            for p in range(1, int(t.mask.sum()) - 1):  # the words' tokens, [CLS] and [SEP] left out
                ids = t.ids.clone()
                ids[0, p] = t.mask_id
                by_hand.append(float(logits[occ.target] - b.forward(ids)[0, occ.target]))
    assert occ.target == ig.target == int(logits.argmax())
    assert occ.words == ["the", "chef", "baked", "fresh", "bread", "."]  # one token per word here
    torch.testing.assert_close(occ.word_scores, torch.tensor(by_hand, dtype=torch.float64), atol=1e-5, rtol=1e-5)
    assert bool((occ.word_scores < 0).all()) and bool((ig.word_scores > 0).all())
