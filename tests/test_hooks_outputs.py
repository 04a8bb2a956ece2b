"""hooks() on layers whose output is a tuple or a dict (issue 18, item 4) and ``replace=`` (the mechanism
of attribution in a layer's output space), on the tiny transformer of tests/transformer_fixtures.py."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import seethrough as see
from seethrough.boundary import boundary, space_forward, space_values
from seethrough.testing import untouched
from tests.transformer_fixtures import CLASSES, token_batch, tiny_encoder


def _split_forward(model, ids, mask, upto: int):
    """The hand-written split: everything before ``blocks.<upto>``'s output, and the rest from a given state."""
    def head(h):
        for block in model.blocks[upto + 1:]:
            h = block(h, mask)[0]
        return model.classifier(model.pooler(h[:, 0]))

    h = model.embeddings(ids)
    for block in model.blocks[:upto + 1]:
        h = block(h, mask)[0]
    return h, head


def test_capture_every_block_hidden_state_of_tuple_outputs():
    model = tiny_encoder().train()  # hooks() runs it in eval mode and restores train
    ids, mask = token_batch(5)
    with untouched(model):
        with torch.no_grad(), see.hooks(model, capture=["blocks.0", "blocks.1"]) as rec:
            out = model(ids, attention_mask=mask)
        model.eval()
        with torch.no_grad():
            want0, _ = _split_forward(model, ids, mask, 0)
            want1, _ = _split_forward(model, ids, mask, 1)
            plain = model(ids, attention_mask=mask)
        model.train()
    assert rec["blocks.0"].shape == (5, ids.shape[1], 16)
    assert torch.equal(rec["blocks.0"], want0) and torch.equal(rec["blocks.1"], want1)
    assert torch.equal(out["logits"], plain["logits"])  # the capture changes nothing downstream
    assert isinstance(out["attentions"][0], torch.Tensor)  # the rest of the tuple passed through


def test_the_selector_reads_another_element_of_the_tuple():
    model = tiny_encoder()
    ids, mask = token_batch(4)
    with torch.no_grad(), see.hooks(model, capture="blocks.1", output={"blocks.1": 1}) as rec:
        model(ids, attention_mask=mask)
    w = rec["blocks.1"]  # the attention weights (N, heads, L, L)
    assert w.shape == (4, 2, ids.shape[1], ids.shape[1])
    torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))
    assert float(w[1, :, :, -1].abs().max()) == 0.0  # sample 1 has one pad token: no attention reaches it
    assert float(w[0, :, :, -1].abs().min()) > 0  # sample 0 has none
    with pytest.raises(ValueError, match=r"output=5 needs a tuple output with that index; layer 'blocks.1''s output is a tuple of 2"):
        with see.hooks(model, capture="blocks.1", output=5):
            model(ids, attention_mask=mask)


def test_layer_gradients_with_respect_to_a_captured_tuple_element():
    model = tiny_encoder()
    ids, mask = token_batch(4)
    for upto in (0, 1):
        with untouched(model):
            with see.hooks(model, capture=f"blocks.{upto}") as rec:
                score = model(ids, attention_mask=mask)["logits"][:, 2].sum()
                (g,) = torch.autograd.grad(score, rec[f"blocks.{upto}"])
        h, head = _split_forward(model, ids, mask, upto)
        h = h.detach().requires_grad_()
        (want,) = torch.autograd.grad(head(h)[:, 2].sum(), h)
        torch.testing.assert_close(g, want, rtol=0, atol=1e-6)
        assert float(want.abs().max()) > 0
    assert float(g[:, 1:].abs().max()) == 0.0  # after the last block only the first token reaches the pooler


class _Split(nn.Module):
    """One input, a tuple out: ``(relu(x), x)``."""

    def forward(self, x):
        return torch.relu(x), x


class _TwoWay(nn.Module):
    def __init__(self):
        super().__init__()
        self.split = _Split()

    def forward(self, x):
        a, b = self.split(x)
        return a.sum(1) + 2 * b.sum(1)


@pytest.mark.parametrize("which, want", [(0, lambda x: torch.full_like(x, 2.0)), (1, lambda x: (x > 0).to(x.dtype))])
def test_a_backward_rule_applies_to_the_selected_element_only(which, want):
    net = _TwoWay()
    x = torch.tensor([[-1.0, 0.5, 2.0]], requires_grad=True)
    zero = lambda m, x, y, g: torch.zeros_like(x)  # noqa: E731
    with untouched(net):
        with see.hooks(net, rules={_Split: zero}, output={"split": which}):
            (g,) = torch.autograd.grad(net(x).sum(), x)
    assert torch.equal(g, want(x.detach()))  # the ruled element passes nothing; the other its own gradient


class _DictLayer(nn.Module):
    def forward(self, x):
        return {"a": x * 2, "b": x - 1}


def test_dict_outputs_first_tensor_by_default_a_key_on_request_and_missing_keys_listed():
    net = nn.Sequential(nn.Linear(3, 3))
    net.add_module("d", _DictLayer())
    x = torch.randn(2, 3)
    with torch.no_grad(), see.hooks(net, capture="d") as rec:
        out = net(x)
    assert torch.equal(rec["d"], out["a"])
    with torch.no_grad(), see.hooks(net, capture="d", output={"d": "b"}) as rec:
        out = net(x)
    assert torch.equal(rec["d"], out["b"])
    with untouched(net):
        with pytest.raises(ValueError, match=r"^layer 'd''s output has no 'c'; its keys are: a, b$"):
            with see.hooks(net, capture="d", output="c"):
                net(x)
    with pytest.raises(ValueError, match="unknown layer 'e'"):
        with see.hooks(net, capture="d", output={"e": 0}):
            pass


# ---------------------------------------------------------------------------------- replace=
def test_replacing_the_embedding_output_by_itself_is_exact_and_by_zeros_is_not():
    model = tiny_encoder()
    ids, mask = token_batch(4)
    emb = model.embeddings.word_embeddings
    with untouched(model):
        with torch.no_grad():
            plain = model(ids, attention_mask=mask)["logits"]
            with see.hooks(model, replace={"embeddings.word_embeddings": emb.weight[ids]}):
                same = model(ids, attention_mask=mask)["logits"]
            with see.hooks(model, replace={"embeddings.word_embeddings": torch.zeros(*ids.shape, 16)}):
                zero = model(ids, attention_mask=mask)["logits"]
            with see.hooks(model, replace={"embeddings.word_embeddings": lambda e: 0 * e}):
                fn_zero = model(ids, attention_mask=mask)["logits"]
    assert torch.equal(same, plain)
    assert float((zero - plain).abs().max()) > 1e-3
    assert torch.equal(fn_zero, zero)


def test_gradients_wrt_the_replacement_equal_the_split_model_and_captum():
    from captum.attr import LayerGradientXActivation

    model = tiny_encoder()
    ids, mask = token_batch(4)
    b = boundary(model, kind="tokens", extra={"attention_mask": mask}, pad_id=0)
    target = torch.tensor([0, 1, 2, 1])
    with untouched(model):
        values = space_values(b, ids).requires_grad_()
        score = space_forward(b, None, values, ids).gather(1, target[:, None]).sum()
        (g,) = torch.autograd.grad(score, values)
    # The hand-written split: the same model run from its inputs_embeds argument.
    e = model.embeddings.word_embeddings(ids).detach().requires_grad_()
    logits = model(attention_mask=mask, inputs_embeds=e)["logits"]
    (want,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), e)
    torch.testing.assert_close(g, want, rtol=0, atol=1e-7)
    lga = LayerGradientXActivation(lambda i, m: model(i, attention_mask=m)["logits"], model.embeddings.word_embeddings)
    captum = lga.attribute(ids, target=target, additional_forward_args=(mask,))
    torch.testing.assert_close(g * values.detach(), captum, rtol=1e-5, atol=1e-7)
    assert float(captum.detach().abs().max()) > 0


def test_a_replacement_of_another_shape_or_kind_is_one_line_and_the_model_untouched():
    model = tiny_encoder().train()
    ids, mask = token_batch(3)
    with untouched(model, allow_raise=ValueError):
        with see.hooks(model, replace={"embeddings.word_embeddings": torch.zeros(2, 7, 16)}):
            model(ids, attention_mask=mask)
    with pytest.raises(ValueError, match=r"^replace\['blocks.0'\] has shape \(2, 7, 16\) but the layer's output is "
                                         r"\(3, 7, 16\); give one value per sample of the batch being run$"):
        with see.hooks(model, replace={"blocks.0": torch.zeros(2, 7, 16)}):
            model(ids, attention_mask=mask)
    with pytest.raises(TypeError, match=r"replace\['blocks.0'\] must be a tensor or fn\(output\) -> tensor, got int"):
        with see.hooks(model, replace={"blocks.0": lambda t: 3}):
            model(ids, attention_mask=mask)
    assert model.training and not model.blocks[0]._forward_hooks


def test_replacing_a_tuple_element_sets_the_downstream_state_and_captures_record_the_replacement():
    model = tiny_encoder()
    ids, mask = token_batch(2)
    h0, head = _split_forward(model, ids, mask, 0)
    new = torch.randn_like(h0)
    with torch.no_grad(), see.hooks(model, replace={"blocks.0": new}, capture=["blocks.0"]) as rec:
        got = model(ids, attention_mask=mask)["logits"]
    assert rec["blocks.0"] is not None and torch.equal(rec["blocks.0"], new)
    torch.testing.assert_close(got, head(new).detach(), rtol=0, atol=1e-6)
    assert got.shape == (2, CLASSES)
