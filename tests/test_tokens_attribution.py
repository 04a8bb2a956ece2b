"""Token attributions (issue 18 item 2, issue 22): the gradient family on token ids through the embedding
layer of a tiny random transformer (tuple-returning blocks, attention_mask, a ModelOutput): per-token
scores are the sum over the embedding dimension, the full (N, L, D) is ``reduce="none"``; integrated
gradients is complete and equals Captum's LayerIntegratedGradients; every sample is batch-invariant;
the model is left as found."""
from __future__ import annotations

import pytest
import torch

import seethrough as see
from seethrough.testing import untouched
from tests.transformer_fixtures import DIM, LENGTH, tiny_encoder, token_batch

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
TOKEN_METHODS = ("saliency", "grad-x-input", "sensitivity", "smoothgrad", "integrated-gradients", "guided-backprop",
                 "deconvnet")
CHEAP = {"smoothgrad": {"n_samples": 4, "progress": False, "batch_size": 8},
         "integrated-gradients": {"steps": 8, "progress": False, "batch_size": 8}}


@pytest.fixture(scope="module")
def encoder():
    net = tiny_encoder().double()
    ids, mask = token_batch(4)
    return net, ids, mask, see.boundary(net, kind="tokens", extra={"attention_mask": mask}, pad_id=0)


def test_integrated_gradients_on_tokens_is_complete_and_equals_captum(encoder):
    from captum.attr import LayerIntegratedGradients

    net, ids, mask, b = encoder
    with untouched(net):
        r = see.integrated_gradients(b, ids, 1, steps=32, progress=False)
        full = see.attribute(b, ids, "integrated-gradients", target=1, steps=32, reduce="none")
    assert r.attribution.shape == (4, LENGTH) and full.shape == (4, LENGTH, DIM) and full.dtype == torch.float64
    torch.testing.assert_close(r.attribution, full.sum(-1), rtol=0, atol=1e-12)
    # Completeness through the attention mask: f(x) − f(pad baseline) is explained (a smooth model: tiny gap).
    with torch.no_grad():
        fx = net(ids, attention_mask=mask).logits[:, 1]
        fb = net(torch.zeros_like(ids), attention_mask=mask).logits[:, 1]
    torch.testing.assert_close(r.score - r.baseline_score, fx - fb, rtol=0, atol=1e-12)
    assert float(r.relative_gap.max()) < 1e-6
    # Padding carries no attribution (masked out of attention, pad embedding = the baseline).
    assert float(r.attribution[mask == 0].abs().max()) < 1e-12
    want = LayerIntegratedGradients(lambda i, m: net(i, attention_mask=m).logits, net.embeddings.word_embeddings).attribute(
        ids, baselines=torch.zeros_like(ids), target=1, additional_forward_args=(mask,), n_steps=32)
    torch.testing.assert_close(full, want, rtol=0, atol=1e-4)


def test_token_baselines_are_the_pad_or_mask_embedding_zeros_or_ids(encoder):
    net, ids, mask, _ = encoder
    b = see.boundary(net, kind="tokens", extra={"attention_mask": mask}, pad_id=0, mask_id=3)
    emb = net.embeddings.word_embeddings.weight.detach()
    mask_ids = torch.full_like(ids, 3)
    r_mask = see.integrated_gradients(b, ids, 1, baseline="mask", steps=16, progress=False)
    r_ids = see.integrated_gradients(b, ids, 1, baseline=mask_ids, steps=16, progress=False)
    r_emb = see.integrated_gradients(b, ids, 1, baseline=emb[3].expand(4, LENGTH, DIM), steps=16, progress=False)
    torch.testing.assert_close(r_mask.attribution, r_ids.attribution, rtol=0, atol=1e-12)
    torch.testing.assert_close(r_mask.attribution, r_emb.attribution, rtol=0, atol=1e-12)
    zeros = see.integrated_gradients(see.boundary(b, pad_id=None), ids, 1, steps=16, progress=False)  # no pad id: zeros
    with torch.no_grad():
        at_zero = net(inputs_embeds=torch.zeros(4, LENGTH, DIM, dtype=torch.float64), attention_mask=mask).logits[:, 1]
    torch.testing.assert_close(zeros.baseline_score, at_zero, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"^baseline='mask' needs the boundary's mask_id \(pass mask_id=\.\.\.\)$"):
        see.attribute(see.boundary(net, kind="tokens", extra={"attention_mask": mask}), ids, "integrated-gradients",
                      baseline="mask")


def test_grad_x_input_and_saliency_are_per_token_sums_of_the_embedding_gradient(encoder):
    net, ids, mask, b = encoder
    emb = net.embeddings.word_embeddings(ids).detach().requires_grad_()
    out = net(inputs_embeds=emb, attention_mask=mask).logits[:, 2]
    (g,) = torch.autograd.grad(out.sum(), emb)
    torch.testing.assert_close(see.attribute(b, ids, "grad-x-input", target=2), (g * emb).sum(-1).detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(see.attribute(b, ids, "saliency", target=2), g.abs().sum(-1), rtol=1e-10, atol=1e-12)
    # unit= on a tuple-returning block: hidden feature 5 of blocks.0, its mean over the real tokens.
    a = see.attribute(b, ids, "saliency", unit=("blocks.0", 5), abs=False, reduce="none")
    emb2 = net.embeddings.word_embeddings(ids).detach().requires_grad_()
    with see.hooks(net, capture="blocks.0") as rec:
        net(inputs_embeds=emb2, attention_mask=mask)
    m = mask.double()
    unit = (rec["blocks.0"][..., 5] * m).sum(1) / m.sum(1)
    (g2,) = torch.autograd.grad(unit.sum(), emb2)
    torch.testing.assert_close(a, g2, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", TOKEN_METHODS)
def test_tokens_are_batch_invariant_float64_and_leave_the_model_as_found(encoder, name):
    net, ids, mask, b = encoder
    opts = CHEAP.get(name, {})
    trained = tiny_encoder().double().train()  # Dropout active in train mode: the methods must run in eval mode
    tb = see.boundary(trained, kind="tokens", extra={"attention_mask": mask}, pad_id=0)
    with untouched(trained):
        whole = see.attribute(tb, ids, name, target=1, **opts)
        with pytest.raises(ValueError, match=r"^x has token ids in \[\d+, 50\] but the vocabulary has 50 ids"):
            see.attribute(tb, ids.clone().fill_(50), name, target=1, **opts)
    assert whole.shape == ids.shape and whole.dtype == torch.float64
    single = torch.cat([see.attribute(see.boundary(trained, kind="tokens", extra={"attention_mask": mask[i:i + 1]}, pad_id=0),
                                      ids[i:i + 1], name, target=1, **opts) for i in range(len(ids))])
    torch.testing.assert_close(whole, single, rtol=1e-9, atol=1e-12)
    assert torch.equal(whole, see.attribute(b, ids, name, target=1, **opts))  # the same weights in eval mode


def test_explain_text_takes_integrated_gradients_on_tokens():
    from seethrough.text.explain import explain_text
    from seethrough.text.model import _tiny_bert_classifier
    from seethrough.text.tokens import _toy_tokenizer, encode

    model = _tiny_bert_classifier(vocab_size=20)
    t = encode(_toy_tokenizer(), "the cat sat")
    e = explain_text(model, t, "integrated-gradients", steps=32)
    assert e.words == ["the", "cat", "sat"] and e.scores.shape == (len(e.tokens),)
    r = see.integrated_gradients(t.boundary(model), t.ids, e.target, steps=32, progress=False)
    torch.testing.assert_close(e.scores, r.attribution[0].double())
    assert float(r.relative_gap.max()) < 1e-3
