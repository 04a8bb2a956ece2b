"""The conformance suite, failure half (issue 19 item 4): a model in train mode (BatchNorm, Dropout, ``.grad``s)
whose first or last forward raises is left exactly as found, for every registered entry and input kind that
the existing hygiene tests do not already cover.

Already covered, and so not generated again here (the covered sets are read from those modules, so they stay
in sync): ``tests/test_hygiene.py`` runs every attribution method on images, every attack, every metric and the
model/data randomization tests; ``tests/test_attribution_kinds.py`` runs the gradient, rule and relevance
families on tabular rows and token ids. Projections take features, not a model: nothing to leave untouched.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from seethrough.testing import untouched
from tests import conformance_fixtures as cf
from tests import test_attribution_kinds as kinds_tests
from tests import test_hygiene as hygiene
from tests.test_cam_tokens import TokenGap
from tests.test_hygiene import _deterministic_batches  # noqa: F401 (autouse: the same forwards every run)

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::RuntimeWarning", "ignore::UserWarning")

_KINDS_COVERED = {(f"attribution:{n}", k) for k in ("tabular", "tokens") for n in kinds_tests._families(k)}


def _covered(entry: str, kind: str) -> bool:
    family, name = entry.split(":", 1)
    fn = getattr(cf.spec_of(entry).fn, "__name__", "")
    if kind == "image":
        return {"attribution": f"attribute:{name}", "attack": f"attack:{name}", "metric": f"metrics:{fn}",
                "sanity": f"sanity:{fn}"}.get(family, "") in hygiene.ENTRIES
    return (entry, kind) in _KINDS_COVERED


def _cases() -> list[tuple[str, str]]:
    out = [(f"attribution:{n}", k) for n, s in cf.catalog.entries("attribution").items() for k in s.kinds]
    out += [(e, "image") for f in cf.FAMILIES if f not in ("attribution", "projection") for e in cf.entry_ids(f)]
    return [(e, k) for e, k in out if not _covered(e, k)]


CASES = _cases()


def _tensor_case() -> tuple[nn.Module, torch.Tensor, dict]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv1d(1, 4, 5), nn.BatchNorm1d(4), nn.ReLU(), nn.Dropout(0.3), nn.Flatten(),
                        nn.Linear(4 * 16, 2)).train()
    net(torch.randn(8, 1, 20)).sum().backward()  # grads set, BN statistics moved
    return kinds_tests.Counting(net), torch.randn(3, 1, 20, generator=torch.Generator().manual_seed(1)), {}


def _raising_case(entry: str, kind: str) -> cf.Case:
    """A fresh train-mode model of ``kind`` that counts its forwards (the counter is shared by deep copies)."""
    if kind == "image":  # the hygiene suite's BN + Dropout + inplace-ReLU net on 3×16×16 images, 4 classes
        model = hygiene.trained()
        if entry.startswith("influence:"):  # influence refuses active Dropout in one line (a random loss): eval mode
            model.eval()
        other = hygiene.trained(5)
        x = hygiene.X.repeat(2, 1, 1, 1)[:3]
        return cf.Case("image", model, x, y=torch.tensor([0, 1, 2]),
                       attribution=hygiene.ATTRIBUTION.repeat(2, 1, 1, 1)[:3],
                       train=(torch.rand(12, 3, hygiene.SIDE, hygiene.SIDE, generator=torch.Generator().manual_seed(3)),
                              torch.arange(12) % hygiene.CLASSES), other=other)
    if kind == "tabular":
        model, x, how = kinds_tests._rows_case()
        how = {**how, "kind": "tabular", "background": torch.randn(8, 5, generator=torch.Generator().manual_seed(4))}
    elif kind == "tokens" and entry == "attribution:cam":  # CAM's structure on tokens, wrapped to count
        base = cf.kind_case("tokens", "cam")
        return cf.Case(kind, kinds_tests.Counting(TokenGap().train()), base.x, how=base.how,
                       options={"layer": "inner.act"})
    elif kind == "tokens":
        model, x, how = kinds_tests._token_case()
        return cf.Case(kind, model, x, how=how, options={"layer": "inner." + cf.TOKEN_CAM_LAYER})
    else:
        model, x, how = _tensor_case()
    return cf.Case(kind, model, x, how=how)


def _state(kind: str) -> dict:
    return (hygiene.TrainNet if kind == "image" else kinds_tests.Counting).state


def _planted(kind: str) -> type:
    return hygiene.Planted if kind == "image" else kinds_tests.Planted


def _run(entry: str, case: cf.Case):
    if entry.startswith("objective:"):  # an objective runs in activation maximization on the model
        return cf.call(entry, case)
    return cf.call(entry, case)


@pytest.mark.parametrize("entry, kind", CASES, ids=[f"{e}@{k}" for e, k in CASES])
def test_a_forward_that_raises_first_or_last_leaves_the_model_as_found(entry, kind):
    state = _state(kind)
    case = _raising_case(entry, kind)
    state.update(calls=0, fail_at=None)
    with untouched(case.model):
        _run(entry, case)
    n = state["calls"]
    assert n >= 1, f"{entry} ran no forward"
    for fail_at in sorted({1, n}):
        case = _raising_case(entry, kind)
        state.update(calls=0, fail_at=fail_at)
        try:
            with untouched(case.model):
                with pytest.raises((_planted(kind), ValueError, RuntimeError)):
                    _run(entry, case)
            assert state["calls"] >= fail_at, f"{entry}: the planted failure at forward {fail_at} was not reached"
        finally:
            state.update(calls=0, fail_at=None)


def test_the_generated_cases_skip_only_what_the_hygiene_tests_run():
    """Every skipped (entry, kind) is one the hygiene suites really run, and every family has a case here."""
    hygiene_keys = set(hygiene.ENTRIES)
    for entry in cf.every_entry():
        if entry.startswith("projection:"):
            continue
        spec = cf.spec_of(entry)
        kinds = spec.kinds if entry.startswith("attribution:") else ("image",)
        for kind in kinds:
            assert (entry, kind) in CASES or _covered(entry, kind), (entry, kind)
    assert {e.split(":")[0] for e, _ in CASES} >= {"attribution", "objective", "influence", "sanity"}
    assert "attribute:saliency" in hygiene_keys and "attack:pgd" in hygiene_keys
