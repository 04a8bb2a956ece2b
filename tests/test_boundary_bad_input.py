"""Bad input at the boundary (issue 18): one clear line each, saying what was wrong and what would be
right, and the model untouched (train mode, hooks, gradients) also when the call raises."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import seethrough as see
from seethrough.testing import untouched
from tests.transformer_fixtures import token_batch, tiny_encoder

NAMES = ["radius", "texture", "perimeter", "area", "smooth", "compact"]


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 2)).train()


ROWS = torch.randn(5, 6, generator=torch.Generator().manual_seed(1))
IDS, MASK = token_batch(4)

def _named(line: str, entry: str) -> str:
    """The data scans (layer statistics, top-k) call their input ``data``, the others ``x``."""
    if entry not in ("layer_stats", "topk"):
        return line
    return line.replace("^x ", "^data ").replace("x\\.float", "data\\.float")


TEXT_CALLS = {
    "predict": lambda m, ids, **how: see.predict(m, ids, **how),
    "activations": lambda m, ids, **how: see.activations(m, ids, "blocks.0", **how),
    "layer_stats": lambda m, ids, **how: see.layer_stats(m, ids, "blocks.0", progress=False, **how),
    "topk": lambda m, ids, **how: see.topk(m, ids, "blocks.0", k=2, progress=False, **how),
    "embed": lambda m, ids, **how: see.embed(m, ids, ["blocks.0"], "pca", progress=False, **how),
}
TEXT_CASES = {
    "an output key that does not exist": (
        dict(ids=IDS, extra={"attention_mask": MASK}, output="score"),
        ValueError, r"^the model's output has no 'score'; its keys are: logits, attentions$", ("predict",)),
    "a mask of another length": (
        dict(ids=IDS, extra={"attention_mask": MASK[:, :5]}),
        ValueError, r"^extra argument 'attention_mask' has length 5 but the sequences have 7 tokens$", tuple(TEXT_CALLS)),
    "a mask of other samples": (
        dict(ids=IDS, extra={"attention_mask": MASK[:3]}),
        ValueError, r"^extra argument 'attention_mask' has 3 rows but x has 4 samples$", tuple(TEXT_CALLS)),
    "token ids outside the vocabulary": (
        dict(ids=IDS.clone().index_fill_(1, torch.tensor([2]), 50), extra={"attention_mask": MASK}),
        ValueError, r"^x has token ids in \[\d+, 50\] but the vocabulary has 50 ids \(0\.\.49\)$", tuple(TEXT_CALLS)),
    "negative token ids": (
        dict(ids=IDS - 1),
        ValueError, r"^x has token ids in \[-1, \d+\] but the vocabulary has 50 ids", tuple(TEXT_CALLS)),
    "float ids": (
        dict(ids=IDS.float(), kind="tokens"),
        TypeError, r"^x must hold integer token ids \(torch.long\), got dtype torch.float32$", tuple(TEXT_CALLS)),
}


@pytest.mark.parametrize("case, entry", [(c, e) for c, spec in TEXT_CASES.items() for e in spec[3]])
def test_bad_token_input_is_one_line_and_the_model_untouched(case, entry):
    """(The output key matters to the entry points that read the model's score: predict.)"""
    how, error, line, _ = TEXT_CASES[case]
    line = _named(line, entry)
    how = dict(how)
    ids = how.pop("ids")
    model = tiny_encoder().train()
    with untouched(model):
        with pytest.raises(error, match=line) as e:
            TEXT_CALLS[entry](model, ids, **how)
    assert "\n" not in str(e.value)


ROW_CALLS = {
    "predict": lambda m, x, **how: see.predict(m, x, **how),
    "activations": lambda m, x, **how: see.activations(m, x, "1", **how),
    "layer_stats": lambda m, x, **how: see.layer_stats(m, x, "1", progress=False, **how),
    "topk": lambda m, x, **how: see.topk(m, x, "1", k=2, progress=False, **how),
}
ROW_CASES = {
    "a row with the wrong number of features": (
        dict(x=ROWS[:, :5], kind="tabular", feature_names=NAMES),
        ValueError, r"^x has 5 features per row but the boundary names 6 \(radius, texture, perimeter, area, smooth, "
                    r"compact\); give rows of shape \(N, 6\)$"),
    "rows a model's first Linear does not take": (
        dict(x=ROWS[:, :4]),
        ValueError, r"^x has 4 features per row but the model's first Linear layer takes 6; give rows of shape \(N, 6\)$"),
    "rows unlike the background": (
        dict(x=ROWS, kind="tabular", background=torch.zeros(10, 5)),
        ValueError, r"^x has 6 features per row but the background has 5; give rows of shape \(N, 5\)$"),
    "a background with other columns": (
        dict(x=ROWS, kind="tabular", feature_names=NAMES, background=torch.zeros(10, 5)),
        ValueError, r"^background has 5 columns but feature_names has 6$"),
    "rows with NaN": (
        dict(x=ROWS.clone().fill_(float("nan"))),
        ValueError, r"^x contains 30 NaN or infinite values; clean the input first$"),
    "float64 rows for a float32 model": (
        dict(x=ROWS.double()),
        ValueError, r"^x is float64 but the model's parameters are float32: pass x\.float\(\) or model\.double\(\)$"),
    "an unknown kind": (
        dict(x=ROWS, kind="table"),
        ValueError, r"^kind must be one of 'image', 'tabular', 'tokens', 'tensor', got 'table'$"),
    "a misspelt keyword": (
        dict(x=ROWS, kind="tabular", feature_name=NAMES),
        TypeError, r"^unknown keyword\(s\) feature_name: neither an option of this call nor a boundary field \(kind, output, "),
}


@pytest.mark.parametrize("entry", list(ROW_CALLS))
@pytest.mark.parametrize("case", list(ROW_CASES))
def test_bad_rows_are_one_line_and_the_model_untouched(case, entry):
    how, error, line = ROW_CASES[case]
    line = _named(line, entry)
    how = dict(how)
    x = how.pop("x")
    model = _mlp()
    with untouched(model):
        with pytest.raises(error, match=line) as e:
            ROW_CALLS[entry](model, x, **how)
    assert "\n" not in str(e.value)


def test_a_dataset_longer_than_its_extra_rows_is_one_line():
    from torch.utils.data import TensorDataset

    model = tiny_encoder().train()
    with untouched(model):
        with pytest.raises(ValueError, match=r"^extra argument 'attention_mask' has 3 rows but the data has more samples "
                                             r"\(sample 3\); give one row per sample$"):
            see.layer_stats(model, TensorDataset(IDS), "blocks.0", extra={"attention_mask": MASK[:3]}, batch_size=4,
                            progress=False)
