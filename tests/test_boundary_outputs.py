"""Reading outputs (seethrough.outputs, the one implementation behind the boundary's ``output=`` and the
hooks' layer selectors): every structure a model or a layer may return, selected and put back."""
from __future__ import annotations

from collections import OrderedDict, namedtuple
from dataclasses import dataclass

import pytest
import torch

from seethrough.boundary import boundary
from seethrough.outputs import class_output, pick, put, select_output
from tests.transformer_fixtures import ModelOutput

A, B = torch.ones(2, 3), torch.zeros(2)
Pair = namedtuple("Pair", "hidden attn")


@dataclass
class Out:
    hidden: torch.Tensor
    logits: torch.Tensor


def test_the_score_default_reads_a_tensor_or_the_logits_by_name_and_nothing_by_position():
    assert select_output(A) is A
    assert select_output({"logits": A, "x": B}) is A
    assert select_output(ModelOutput(attentions=(B,), logits=A)) is A
    assert select_output(Out(B, A)) is A  # a dataclass's attribute
    for structure, line in [((B, A), r"a tuple of 2 .*pass output=0"), ({"scores": A}, r"a dict with keys \['scores'\].*pass output='scores'"),
                            (Pair(A, B), r"a Pair of 2.*pass output=0")]:
        with pytest.raises(TypeError, match=line):
            select_output(structure)
    assert select_output((B, A), 1) is A and select_output(Out(B, A), "hidden") is B
    assert select_output({"x": B}, lambda o: o["x"] + 1).eq(1).all()


def test_class_output_stays_strict_for_the_callers_that_use_the_raw_output():
    with pytest.raises(TypeError, match=r"^the model returns a dict with keys \['logits'\] \(shapes \(2, 3\)\), not a tensor of "
                                        r"class scores: pass target=callable\(output\)"):
        class_output({"logits": A})
    assert class_output(A) is A


def test_selected_entries_that_are_not_tensors_and_missing_names_are_one_line():
    with pytest.raises(TypeError, match=r"^the selected output is a tuple, not a tensor; the model returns a ModelOutput"):
        select_output(ModelOutput(logits=A, attentions=(B,)), "attentions")
    with pytest.raises(ValueError, match=r"^the model's output has no 'logit'; its keys are: logits, attentions$"):
        select_output(ModelOutput(logits=A, attentions=(B,)), "logit")
    with pytest.raises(ValueError, match=r"^the model's output has no 'scores'; it is a Out$"):
        select_output(Out(B, A), "scores")
    with pytest.raises(TypeError, match="output must be None, a key name, an index or a callable, got float"):
        select_output(A, 1.5)


@pytest.mark.parametrize("structure, path", [
    ((A, B), (0,)), ([B, A], (0,)), (Pair(A, B), (0,)), ({"h": A, "a": B}, ("h",)), (OrderedDict(h=A), ("h",)),
    (ModelOutput(last_hidden_state=A, attentions=(B,)), ("last_hidden_state",)), (Out(A, B), ("hidden",)),
    ((None, (A, B)), (1, 0)), (A, ()),
])
def test_pick_takes_the_first_tensor_and_put_rebuilds_the_same_structure(structure, path):
    t, where = pick(structure)
    assert where == path
    new = torch.full_like(t, 7.0)
    rebuilt = put(structure, where, new)
    assert type(rebuilt) is type(structure)
    got, again = pick(rebuilt, None)
    assert got is new and again == path
    assert pick(structure)[0] is t  # the original is left as it was


def test_put_keeps_the_attributes_of_a_model_output_in_step():
    out = ModelOutput(logits=A, attentions=(B,))
    new = put(out, ("logits",), B)
    assert new.logits is B and new["logits"] is B and out.logits is A


def test_pick_with_a_computed_tensor_has_no_path():
    t, where = pick((A, B), lambda o: o[0] * 2)
    assert where is None and torch.equal(t, 2 * A)
    with pytest.raises(TypeError, match=r"^the output is a tuple of 2 \(shapes NoneType, str\), which holds no tensor"):
        pick((None, "x"))


def test_the_boundary_selects_and_calls_with_extra_rows():
    class Net(torch.nn.Module):
        def forward(self, x, attention_mask=None):
            return ModelOutput(logits=x * attention_mask, hidden=x)

    x, mask = torch.arange(6.0).view(3, 2), torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    b = boundary(Net(), kind="tensor", extra={"attention_mask": mask})
    assert torch.equal(b.forward(x), x * mask)
    rows = torch.tensor([2, 2, 0])  # copies of samples 2, 2, 0 get those samples' mask rows
    assert torch.equal(b.forward(x[rows], rows), x[rows] * mask[rows])
    assert torch.equal(boundary(b, output="hidden").forward(x), x)
    assert isinstance(b.call(x), ModelOutput)
    with pytest.raises(ValueError, match=r"^x has 2 rows but the extra forward arguments have 3; pass rows="):
        b.forward(x[:2])
