"""predict, activations, layer_stats, top-k, summary and embed through the boundary (issue 18, item 6):
token ids with an attention mask on a tiny transformer returning a dict, tabular rows on an MLP; every
result compared with a hand-written computation, the model left as found (here in train mode)."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import seethrough as see
from seethrough.embed import collect
from seethrough.inspect import topk_table
from seethrough.inspect.stats import batch_stats
from seethrough.testing import untouched
from tests.transformer_fixtures import DIM, LENGTH, token_batch, tiny_encoder

NAMES = ["radius", "texture", "perimeter", "area", "smooth", "compact"]


@pytest.fixture()
def text():
    model = tiny_encoder().train()  # every call must run it in eval mode and leave it in train mode
    ids, mask = token_batch(8)
    return model, ids, mask


def _hidden(model, ids, mask, upto: int) -> torch.Tensor:
    model.eval()
    try:
        with torch.no_grad():
            h = model.embeddings(ids)
            for block in model.blocks[:upto + 1]:
                h = block(h, mask)[0]
        return h
    finally:
        model.train()


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 2)).train()


ROWS = torch.randn(12, 6, generator=torch.Generator().manual_seed(1))


# ---------------------------------------------------------------------------------- predict
def test_predict_on_a_dict_output_model_reads_the_logits(text):
    model, ids, mask = text
    with untouched(model):
        got = see.predict(model, ids, k=2, extra={"attention_mask": mask})
        named = see.predict(model, ids, k=2, output="logits", extra={"attention_mask": mask})
        b = see.boundary(model, kind="tokens", extra={"attention_mask": mask})
        via_b = see.predict(b, ids, k=2)
    model.eval()
    with torch.no_grad():
        probs = model(ids, attention_mask=mask)["logits"].softmax(1)
    model.train()
    top = probs.topk(2, dim=1)
    for preds in (got, named, via_b):
        assert [[p.index for p in row] for row in preds] == top.indices.tolist()
        torch.testing.assert_close(torch.tensor([[p.probability for p in row] for row in preds]), top.values)
    unmasked = see.predict(model, ids, k=1)  # without the mask the padded samples are other inputs
    assert [r[0].probability for r in unmasked] != [r[0].probability for r in got]


class _TupleOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = _mlp()

    def forward(self, x):
        z = self.net(x)
        return z.sum(1), z  # the scores are NOT first: a guessed position would be wrong


def test_a_tuple_output_needs_a_selector_and_gets_the_right_one():
    model = _TupleOut()
    with untouched(model, allow_raise=TypeError):
        see.predict(model, ROWS)
    with pytest.raises(TypeError, match=r"^the model returns a tuple of 2 \(shapes \(12,\), \(12, 2\)\), not a tensor of class "
                                        r"scores: pass output=0 \(a key, an index or a callable output -> tensor\) to say "
                                        r"which entry is the score$"):
        see.predict(model, ROWS)
    with untouched(model):
        got = see.predict(model, ROWS, k=1, output=1)
    model.eval()
    with torch.no_grad():
        want = model(ROWS)[1].argmax(1)
    assert [r[0].index for r in got] == want.tolist()


# ---------------------------------------------------------------------------------- activations, summary
def test_activations_of_the_transformer_blocks(text):
    model, ids, mask = text
    with untouched(model):
        a = see.activations(model, ids, ["blocks.0", "blocks.1"], extra={"attention_mask": mask})
        attn = see.activations(model, ids, "blocks.1", layer_output=1, extra={"attention_mask": mask})["blocks.1"]
    assert torch.equal(a["blocks.0"], _hidden(model, ids, mask, 0))
    assert torch.equal(a["blocks.1"], _hidden(model, ids, mask, 1))
    assert attn.shape == (8, 2, LENGTH, LENGTH)
    torch.testing.assert_close(attn.sum(-1), torch.ones(8, 2, LENGTH))


def test_summary_lists_the_blocks_with_their_first_tensor(text):
    model, ids, mask = text
    with untouched(model):
        infos = {i.name: i for i in see.inspect.summary(model, ids, containers=True, extra={"attention_mask": mask})}
    assert infos["blocks.0"].output_shape == (LENGTH, DIM) and infos["blocks.1"].calls == 1
    assert infos["embeddings.word_embeddings"].params == 50 * DIM


# ---------------------------------------------------------------------------------- layer statistics
def test_layer_stats_over_tabular_rows_equal_the_direct_statistics():
    model = _mlp()
    with untouched(model):
        whole = see.layer_stats(model, ROWS, ["1"], kind="tabular", feature_names=NAMES, progress=False)["1"]
        batched = see.layer_stats(model, TensorDataset(ROWS), "1", kind="tabular", batch_size=5, progress=False)["1"]
        streamed = see.layer_stats(model, iter([ROWS[:7], ROWS[7:]]), "1", progress=False)["1"]  # batches, kind inferred
    model.eval()
    with torch.no_grad():
        want = batch_stats(model[1](model[0](ROWS)))
    model.train()
    for s in (whole, batched, streamed):
        assert s.count == 12 and torch.equal(s.hist, want.hist) and torch.equal(s.active, want.active)
        assert s.sparsity == want.sparsity


def test_layer_stats_of_token_states_count_hidden_features_and_slice_the_mask(text):
    model, ids, mask = text
    with untouched(model):
        s = see.layer_stats(model, ids, "blocks.0", extra={"attention_mask": mask}, batch_size=3, progress=False)["blocks.0"]
    h = _hidden(model, ids, mask, 0)
    want = batch_stats(h.transpose(1, 2))  # units = the hidden features
    assert s.active.shape == (DIM,) and torch.equal(s.hist, want.hist) and torch.equal(s.active, want.active)


# ---------------------------------------------------------------------------------- embed
def test_embed_pools_token_states_over_the_real_tokens(text):
    model, ids, mask = text
    real = mask.unsqueeze(-1).float()
    with untouched(model):
        got = collect(model, ids, ["input", "blocks.1", "output"], extra={"attention_mask": mask}, batch_size=3,
                      progress=False)
        whole = collect(model, ids, ["blocks.1"], extra={"attention_mask": mask}, batch_size=8, progress=False)
    h = _hidden(model, ids, mask, 1)
    torch.testing.assert_close(got["blocks.1"], (h * real).sum(1) / real.sum(1), rtol=0, atol=1e-6)
    emb = model.embeddings.word_embeddings.weight.detach()[ids]
    torch.testing.assert_close(got["input"], (emb * real).sum(1) / real.sum(1), rtol=0, atol=1e-6)
    assert got["output"].shape == (8, 3)
    torch.testing.assert_close(whole["blocks.1"], got["blocks.1"], rtol=0, atol=1e-6)  # batches slice the mask rows
    with untouched(model):
        e = see.embed(model, (ids, torch.arange(8) % 2), ["blocks.0", "blocks.1"], "pca", extra={"attention_mask": mask},
                      progress=False)
    assert e["blocks.1"].shape == (8, 2) and e.dims == {"blocks.0": DIM, "blocks.1": DIM}


# ---------------------------------------------------------------------------------- top-k
def _brute_topk(acts: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, U) scores → stable brute-force top-k per unit: (U, k) values and indices (ties: smaller index)."""
    order = torch.sort(acts.T, dim=1, descending=True, stable=True)
    return order.values[:, :k], order.indices[:, :k]


def test_topk_over_token_states_scores_the_real_tokens_and_shows_the_strings(text):
    model, ids, mask = text
    with untouched(model):
        r = see.topk(model, ids, "blocks.1", k=3, extra={"attention_mask": mask}, batch_size=3, progress=False)
    h = _hidden(model, ids, mask, 1).transpose(1, 2).masked_fill(mask[:, None, :] == 0, float("-inf"))  # (N, D, L)
    best, where = h.max(2)
    values, indices = _brute_topk(best, 3)
    assert torch.equal(r.indices, indices) and torch.equal(r.values, values)
    assert r.positions.shape == (DIM, 3, 1) and r.boxes is None
    assert torch.equal(r.positions[..., 0], where.T.gather(1, indices))
    assert bool(mask[r.indices, r.positions[..., 0]].all())  # every maximum sits on a real token
    decode = lambda toks: " ".join(f"w{t}" for t in toks)  # noqa: E731 - a tokenizer's decode(list of ids)
    lines = topk_table(r, ids, decode=decode)
    i, at = int(r.indices[5, 0]), int(r.positions[5, 0, 0])
    assert lines[5][0].startswith(f"#{i} (") and f"[w{int(ids[i, at])}]" in lines[5][0]
    assert topk_table(r, ids)[5][0].split(": ")[1].split()[at] == f"[{int(ids[i, at])}]"


def test_topk_over_tabular_rows_shows_the_rows():
    model = _mlp()
    with untouched(model):
        r = see.topk(model, ROWS, "1", unit=2, k=3, kind="tabular", batch_size=4, progress=False)
    model.eval()
    with torch.no_grad():
        values, indices = _brute_topk(model[1](model[0](ROWS))[:, [2]], 3)
    model.train()
    assert torch.equal(r.indices, indices) and torch.equal(r.values, values)
    lines = topk_table(r, ROWS, feature_names=NAMES)
    i = int(indices[0, 0])
    assert lines[0][0] == f"#{i} ({float(values[0, 0]):.4g}): " + ", ".join(
        f"{n}={v:.4g}" for n, v in zip(NAMES, ROWS[i].tolist()))


# ---------------------------------------------------------------------------------- image-only functions
def test_image_only_functions_refuse_other_inputs_in_one_line(text):
    model, ids, _ = text
    tab = see.boundary(_mlp(), kind="tabular")
    with pytest.raises(ValueError, match=r"^receptive fields are defined for image inputs \(N, C, H, W\); this boundary's "
                                         r"input is 'tabular' \(\(N, features\) rows\)$"):
        see.inspect.receptive_field(tab, ROWS, "0", torch.zeros(1, 2))
    with pytest.raises(ValueError, match=r"^filters as images are defined for image inputs.*'tokens'"):
        see.filters(see.boundary(model, kind="tokens"), "blocks.0.query")
    with pytest.raises(ValueError, match=r"^crops cut receptive-field boxes out of images.*has no boxes"):
        see.inspect.crops(ids, None)
    r = see.topk(nn.Sequential(nn.Conv2d(1, 2, 1)), torch.rand(2, 1, 4, 4), "0", k=1, progress=False)
    with pytest.raises(ValueError, match=r"^topk_table shows tabular rows \(N, F\) or token ids \(N, L\), got \(2, 1, 4, 4\)"):
        topk_table(r, torch.rand(2, 1, 4, 4))


def test_n_samples_at_once_equal_n_calls_and_float64_stays_float64(text):
    model, ids, mask = text
    with untouched(model):
        together = see.activations(model, ids, "blocks.1", extra={"attention_mask": mask})["blocks.1"]
        alone = torch.cat([see.activations(model, ids[i:i + 1], "blocks.1", extra={"attention_mask": mask[i:i + 1]})["blocks.1"]
                           for i in range(len(ids))])
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-6)
    mlp = _mlp().double()
    with untouched(mlp):
        a = see.activations(mlp, ROWS.double(), "1", kind="tabular")["1"]
        s = see.layer_stats(mlp, ROWS.double(), "1", progress=False)["1"]
    assert a.dtype == torch.float64 and s.count == len(ROWS)
