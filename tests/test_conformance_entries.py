"""The conformance suite (issue 19 item 4): every registered entry of every data family, read from
:mod:`seethrough.catalog` at collection time, gets these checks for free, on lenet-digits and, for attribution,
on a small model of each input kind its spec lists:

* the model is left exactly as found (every call below runs inside ``untouched``);
* a fixed ``seed`` gives the same result twice, bit for bit (entries without randomness: equal too);
* N samples at once give what N calls give, on every sample and every per-sample tensor of the result
  (float64, so only summation order is left; :data:`NOT_PER_SAMPLE` lists, with reasons, what is defined
  over the batch);
* float64 in gives float64 out (every floating tensor of the result);
* ``progress=False`` writes nothing to stderr, where the entry takes ``progress``.

How an entry is called and the fast options are in ``tests/conformance_fixtures.py``; option errors and
spec sanity are in ``tests/test_conformance_specs.py``; when the model raises, ``test_conformance_raising.py``.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

from seethrough.testing import torch_threads, untouched
from tests import conformance_fixtures as cf
from tests.test_hygiene import _deterministic_batches  # noqa: F401 (autouse: no batch-size probing, fixed batches)

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::RuntimeWarning", "ignore::UserWarning")


def _attribution_cases() -> list[tuple[str, str]]:
    return [(f"attribution:{n}", k) for n, s in cf.catalog.entries("attribution").items() for k in s.kinds]


def _other_cases() -> list[tuple[str, str]]:
    return [(e, "image") for f in cf.FAMILIES if f != "attribution" for e in cf.entry_ids(f)]


CASES = _attribution_cases() + _other_cases()


def _params(pairs: list[tuple[str, str]]) -> list:
    """(entry, kind) pairs as pytest params, the SLOW entries marked slow."""
    return [pytest.param(e, k, id=f"{e}@{k}", marks=[pytest.mark.slow] if e in cf.SLOW else []) for e, k in pairs]


def _case(entry: str, kind: str) -> cf.Case:
    return cf.kind_case(kind, entry.split(":", 1)[1])


def _seeded(entry: str) -> dict:
    names = {o.name for o in cf.spec_of(entry).options}
    return {"seed": 3} if "seed" in names else {}


def _run(entry: str, case: cf.Case, **opts):
    """The entry's result on ``case``, the model checked untouched; objectives give their (N,) scores."""
    with untouched(case.model):
        if entry.startswith("objective:"):
            return cf.objective_scores(entry, case)
        return cf.call(entry, case, **opts)


def _same(a: dict, b: dict, entry: str) -> None:
    assert a.keys() == b.keys(), entry
    for k in a:
        if torch.is_tensor(a[k]):
            assert torch.equal(a[k], b[k]), f"{entry}: {k} differs between two calls with the same seed"
        else:
            assert a[k] == b[k], f"{entry}: {k} differs between two calls with the same seed"


@pytest.mark.parametrize("entry, kind", _params(CASES))
def test_a_fixed_seed_gives_the_same_result_twice(entry, kind):
    case = _case(entry, kind)
    first = cf.leaves(_run(entry, case, **_seeded(entry)))
    again = cf.leaves(_run(entry, case, **_seeded(entry)))
    assert first, f"{entry}: the result holds no tensor to compare"
    _same(first, again, entry)


def _stack(batch, singles: list, key: str, entry: str):
    """The singles' values of ``key`` put together as the batch's would be: along the axis where the batch
    has N and each single 1; a value that does not depend on the samples (same shape) must be the same."""
    n = len(singles)
    if not torch.is_tensor(batch):
        if len(batch) == n and all(len(s) == 1 for s in singles):
            return [s[0] for s in singles]
        assert all(s == batch for s in singles), f"{entry}: {key} is neither per sample nor shared"
        return batch
    one = singles[0]
    if one.shape == batch.shape:
        return None  # shared: compared to each single by the caller
    for d in range(batch.dim()):
        rest_equal = batch.shape[:d] + batch.shape[d + 1:] == one.shape[:d] + one.shape[d + 1:]
        if batch.shape[d] == n and one.shape[d] == 1 and rest_equal:
            return torch.cat(singles, d)
    raise AssertionError(f"{entry}: {key} has shape {tuple(batch.shape)} for {n} samples and {tuple(one.shape)} "
                         "for one")


def per_sample_mismatch(entry: str, kind: str = "image") -> str:
    """'' when N samples at once give what N calls give, on every sample; else what differs."""
    case = cf.double_case(kind, entry.split(":", 1)[1])
    if entry.startswith("projection:"):  # the samples are the projected points themselves
        feats = cf.features(case)
        case = dataclasses.replace(case, x=feats, feats=feats, y=None, attribution=None)
    with torch_threads(1):
        batch = cf.leaves(_run(entry, case, **_seeded(entry)))
        singles = [cf.leaves(_run(entry, case.take(i), **_seeded(entry))) for i in range(len(case.x))]
    for key, value in batch.items():
        parts = [s[key] for s in singles]
        together = _stack(value, parts, key, entry)
        if together is None:
            for i, p in enumerate(parts):
                if not torch.allclose(p, value, rtol=1e-7, atol=1e-9, equal_nan=True):
                    return f"{key} (shared by the batch) differs for sample {i} alone"
            continue
        if not torch.is_tensor(value):
            if together != value:
                return f"{key}: {value} at once, {together} one by one"
            continue
        if value.is_floating_point():
            scale = float(value.abs().nan_to_num().max().clamp_min(1e-30))
            bad = ~torch.isclose(value, together, rtol=0, atol=max(1e-7 * scale, 1e-12), equal_nan=True)
        else:
            bad = value != together
        if bad.any():
            largest = float((value - together).abs().nan_to_num().max())
            return f"{key}: {int(bad.sum())} of {bad.numel()} values differ, largest {largest:.3g}"
    return ""


PER_SAMPLE = [(e, k) for e, k in CASES if e not in cf.NOT_PER_SAMPLE]


@pytest.mark.parametrize("entry, kind", _params(PER_SAMPLE))
def test_n_samples_at_once_equal_n_calls_on_every_sample(entry, kind):
    assert per_sample_mismatch(entry, kind) == ""


@pytest.mark.parametrize("entry", [pytest.param(e, marks=[pytest.mark.slow] if e in cf.SLOW else [])
                                   for e in sorted(cf.NOT_PER_SAMPLE)])
def test_every_not_per_sample_exemption_names_a_real_entry_that_needs_it(entry):
    """The exemption is still needed: the per-sample check fails on it (or one sample alone is refused)."""
    assert entry in cf.every_entry(), f"{entry} is exempt but not registered"
    try:
        why = per_sample_mismatch(entry)
    except (ValueError, TypeError) as e:  # one sample alone cannot be laid out / scored
        why = str(e)
    assert why, f"{entry} is batch-invariant after all: drop it from NOT_PER_SAMPLE"


@pytest.mark.parametrize("entry, kind", _params(CASES))
def test_float64_in_gives_float64_out(entry, kind):
    case = cf.double_case(kind, entry.split(":", 1)[1])
    out = cf.leaves(_run(entry, case, **_seeded(entry)))
    floats = {k: v.dtype for k, v in out.items() if torch.is_tensor(v) and v.is_floating_point()}
    assert floats, f"{entry}: no floating tensor in the result"
    assert all(d == torch.float64 for d in floats.values()), f"{entry}: {floats}"


PROGRESS = [e for e in cf.every_entry() if not e.startswith("objective:") and cf.takes_progress(e)]


@pytest.mark.parametrize("entry", [pytest.param(e, marks=[pytest.mark.slow] if e in cf.SLOW else []) for e in PROGRESS])
def test_progress_false_writes_nothing(entry, capfd):
    case = cf.kind_case("image", entry.split(":", 1)[1])
    capfd.readouterr()
    _run(entry, case, progress=False)
    out, err = capfd.readouterr()
    assert err == "" and out == "", f"{entry} with progress=False wrote {err[-200:]!r}{out[-200:]!r}"
