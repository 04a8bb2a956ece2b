"""The device suite (issue 21 item 6): every registered entry of every data family on a CUDA device.

It runs where ``torch.cuda.is_available()`` and skips as a whole elsewhere (the reason says so). On a GPU, for
every entry of :mod:`seethrough.catalog` that the conformance suite runs (``tests/conformance_fixtures.py``:
attribution methods on each input kind they list; attacks, metrics, objectives, projections, influence solvers
and sanity checks on lenet-digits), with the model and the inputs moved to ``cuda``:

* the result is on the input's device (:data:`HOST` lists, with reasons, the fields the API computes on the
  CPU), finite where the CPU's is, and equal to the CPU's result within a float tolerance — the same seed
  gives the same masks and noise on both devices, because random draws are made on CPU generators
  (``seethrough.seeding``) and moved to the device once. Both sides run in float64, so what is left is
  summation order (and no TF32);
* no host <-> device copy and no host sync inside the loops: with :class:`tests.test_device_counting.HostSyncs`
  counting ``aten._to_copy``/``aten.copy_`` between devices, ``.item()``-like reads of device tensors, boolean
  indexing and mixed-device ops, n and 2n passes of a many-pass entry give the same counts;
* the memory budget of a batched run is read from the GPU for work on the GPU, and never from the GPU for
  work on the CPU.

The counter itself is checked on the CPU in every CI run (``tests/test_device_counting.py``); this file needs a
GPU::

    pytest tests/test_device.py -q          # on a machine with CUDA (a few minutes)
"""
from __future__ import annotations

import copy
import dataclasses
import functools
from typing import Any

import pytest
import torch
from torch import nn

import seethrough as see
from seethrough import batching
from seethrough.testing import untouched
from tests import conformance_fixtures as cf
from tests.test_conformance_entries import CASES, _params, _seeded
from tests.test_device_counting import GROWS, PASSES, HostSyncs, run_counted
from tests.test_hygiene import _deterministic_batches  # noqa: F401 (autouse: no batch-size probing)

pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason="no CUDA device: the device suite runs every catalog entry on cuda against the CPU; "
                              "run `pytest tests/test_device.py` on a machine with a GPU"),
    pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::RuntimeWarning", "ignore::UserWarning"),
]

CUDA = torch.device("cuda")
RTOL, ATOL = 1e-5, 1e-6  # float64 on both devices: summation order only (ATOL is relative to the leaf's scale)

# Result fields the API computes on the CPU whatever the input's device, by entry: (field prefixes, why).
HOST: dict[str, tuple[tuple[str, ...], str]] = {
    "sanity:model-randomization": (("scores", "edge"), "similarities come from scipy / scikit-image (Spearman, "
                                                       "SSIM, HOG) on the CPU"),
    "sanity:data-randomization": (("scores", "edge"), "similarities come from scipy / scikit-image on the CPU"),
    "sanity:trust-badge": (("randomized_top",), "similarities come from scipy / scikit-image on the CPU"),
}


def moved(v: Any, device: torch.device) -> Any:
    """``v`` on ``device``: tensors moved, modules copied and moved, containers walked, anything else as is."""
    if torch.is_tensor(v):
        return v.to(device)
    if isinstance(v, nn.Module):
        return copy.deepcopy(v).to(device)
    if isinstance(v, dict):
        return {k: moved(w, device) for k, w in v.items()}
    if isinstance(v, (tuple, list)):
        return type(v)(moved(w, device) for w in v)
    return v


def on(case: cf.Case, device: torch.device) -> cf.Case:
    """The case with its model, inputs, labels, attribution, training set and second model on ``device``."""
    return dataclasses.replace(case, model=moved(case.model, device), x=moved(case.x, device),
                               how=moved(case.how, device), y=moved(case.y, device),
                               attribution=moved(case.attribution, device), train=moved(case.train, device),
                               feats=moved(case.feats, device), other=moved(case.other, device))


@functools.lru_cache(maxsize=None)
def _cuda_case(kind: str, cam: bool, double: bool) -> cf.Case:
    name = "cam" if cam else ""
    return on(cf.double_case(kind, name) if double else cf.kind_case(kind, name), CUDA)


def cuda_case(kind: str, name: str = "", double: bool = True) -> cf.Case:
    return _cuda_case(kind, name == "cam", double)


def _run(entry: str, case: cf.Case) -> dict:
    with untouched(case.model):
        return cf.leaves(cf.call(entry, case, **_seeded(entry)))


def _host_field(entry: str, key: str) -> bool:
    prefixes = HOST.get(entry, ((), ""))[0]
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def mismatches(entry: str, cpu: dict, gpu: dict) -> list[str]:
    """What differs between the CPU's and the GPU's leaves of one result (empty: they agree)."""
    if cpu.keys() != gpu.keys():
        return [f"fields differ: {sorted(set(cpu) ^ set(gpu))}"]
    out = []
    for key, c in cpu.items():
        g = gpu[key]
        if not torch.is_tensor(c):
            if c != g:
                out.append(f"{key}: {c!r} on the CPU, {g!r} on cuda")
            continue
        want = "cpu" if _host_field(entry, key) else "cuda"
        if g.device.type != want:
            out.append(f"{key} is on {g.device}, expected {want}")
        g = g.detach().cpu()
        c = c.detach()
        if c.shape != g.shape or c.dtype != g.dtype:
            out.append(f"{key}: {tuple(c.shape)} {c.dtype} on the CPU, {tuple(g.shape)} {g.dtype} on cuda")
            continue
        if not c.is_floating_point():
            if not torch.equal(c, g):
                out.append(f"{key}: {int((c != g).sum())} of {c.numel()} values differ")
            continue
        if not torch.equal(torch.isfinite(c), torch.isfinite(g)):
            out.append(f"{key}: finite on one device, not on the other ({int(torch.isfinite(g).sum())} finite on "
                       f"cuda, {int(torch.isfinite(c).sum())} on the CPU)")
            continue
        finite = c[torch.isfinite(c)]
        scale = float(finite.abs().max()) if finite.numel() else 1.0
        close = torch.isclose(g, c, rtol=RTOL, atol=ATOL * max(scale, 1e-30), equal_nan=True)
        if not close.all():
            worst = float((g - c).abs().nan_to_num().max())
            out.append(f"{key}: {int((~close).sum())} of {c.numel()} values differ, largest by {worst:.3g} "
                       f"(scale {scale:.3g})")
    return out


@pytest.mark.parametrize("entry, kind", _params(CASES))
def test_every_entry_on_cuda_equals_the_cpu(entry, kind):
    name = entry.split(":", 1)[1]
    cpu = _run(entry, cf.double_case(kind, name))
    gpu = _run(entry, cuda_case(kind, name))
    assert cpu, f"{entry}: the result holds no tensor to compare"
    assert mismatches(entry, cpu, gpu) == []


def _counts(entry: str, value: Any) -> HostSyncs:
    return run_counted(entry, cuda_case("image", entry.split(":", 1)[1], double=False), value)


@pytest.mark.parametrize("entry", sorted(PASSES))
def test_no_copy_or_sync_grows_with_the_passes_on_cuda(entry):
    _, once, twice = PASSES[entry]
    _counts(entry, once)  # warm-up: one-time work (caches, lazy CUDA init) is not the loop's
    n, n2 = _counts(entry, once), _counts(entry, twice)
    got = {"copies": (len(n.copies), len(n2.copies)), "device scalar reads": (n.device_items, n2.device_items),
           "boolean indexing": (n.masked, n2.masked), "mixed-device ops": (len(n.mixed), len(n2.mixed))}
    if entry in GROWS:  # its per-call scalar read is known (and checked on the CPU): the copies are still checked
        del got["device scalar reads"]
    grown = {k: v for k, v in got.items() if v[1] > v[0]}
    extra = n2.copies[len(n.copies):][:5] + n2.mixed[len(n.mixed):][:5]
    assert not grown, f"{entry}: {grown} at {once} → {twice} passes; e.g. {extra}"


def _budget_devices(monkeypatch) -> list:
    seen: list = []
    real = batching.default_memory_budget

    def recording(device=None):
        seen.append(None if device is None else torch.device(device))
        return real(device)

    monkeypatch.setattr(batching, "default_memory_budget", recording)
    return seen


@pytest.mark.parametrize("entry", sorted(PASSES))
def test_the_memory_budget_of_cuda_work_is_read_from_cuda(entry, monkeypatch):
    seen = _budget_devices(monkeypatch)
    _counts(entry, PASSES[entry][1])
    assert seen, f"{entry}: no batched run read a memory budget"
    assert all(d is not None and d.type == "cuda" for d in seen), f"{entry}: budgets read for {seen}"


@pytest.mark.parametrize("entry", sorted(PASSES))
def test_cpu_work_never_queries_cuda_memory(entry, monkeypatch):
    calls: list = []
    real = torch.cuda.mem_get_info
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a, **k: calls.append(a) or real(*a, **k))
    run_counted(entry, cf.kind_case("image", entry.split(":", 1)[1]), PASSES[entry][1])
    assert calls == [], f"{entry} on the CPU read the GPU's free memory {len(calls)} times"


def test_seeded_draws_are_the_same_on_both_devices():
    """The premise of the equality check, on its own: a seeded method's random draws (SmoothGrad's noise, RISE's
    masks) do not depend on the device. A linear model's SmoothGrad is its weight whatever the noise, so a
    ReLU network is used: its gradient moves with the noise."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)).double().eval()
    x = torch.rand(2, 1, 4, 4, dtype=torch.float64)
    for method, opts in (("smoothgrad", {"n_samples": 8}), ("rise", {"n_samples": 32, "cells": 2})):
        cpu = see.attribute(net, x, method, target=1, seed=5, progress=False, **opts)
        gpu = see.attribute(moved(net, CUDA), x.to(CUDA), method, target=1, seed=5, progress=False, **opts)
        other = see.attribute(net, x, method, target=1, seed=6, progress=False, **opts)
        assert gpu.device.type == "cuda"
        assert torch.allclose(gpu.cpu(), cpu, rtol=1e-9, atol=1e-12), method
        assert not torch.allclose(other, cpu, rtol=1e-9, atol=1e-12), f"{method}: the seed changes nothing"


def _tcav(model, x, y, train):
    xt, _ = train
    r = see.concepts.tcav(model, xt[:8], xt[8:16], "relu2", int(y[0]), random_sets=3, random_x=xt[8:], seed=1)
    return cf.leaves(r.layers)


def _distill(model, x, y, train, **options):
    s = see.distill(model, train, progress=False, **options)
    return {"fidelity, accuracy": torch.tensor([s.fidelity, s.accuracy], dtype=torch.float64)}


def _scan(model, x, y, train):
    r = see.scan(model, train[0], "relu2", ("moments", "dead"), progress=False)
    return {k: torch.as_tensor(v) for k, v in vars(r["relu2", "moments"]).items()}  # numpy on the host by design


# The families outside the catalog's data families, each on lenet-digits (float64): name -> call(model, x, y, train)
# giving the result's tensors by name.
OTHERS: dict[str, Any] = {
    "tcav": _tcav,
    "distill": lambda model, x, y, train: _distill(model, x, y, train, depth=3, n_samples=0),
    "distill.soft-tree": lambda model, x, y, train: _distill(model, x, y, train, method="soft-tree", depth=2, epochs=3),
    "embed": lambda model, x, y, train: cf.leaves(see.embed(model, train[0], "relu3", "pca", progress=False)),
    "inspect.activations": lambda model, x, y, train: cf.leaves(see.inspect.activations(model, x, ["relu1", "relu2"])),
    "inspect.layer_stats": lambda model, x, y, train: cf.leaves(see.inspect.layer_stats(model, train[0], "relu2",
                                                                                         progress=False)),
    "scan": _scan,
}
# Results of these families that are host values by design (the scan's accumulators are numpy, merged on the host;
# a distilled tree's scores are Python floats from scikit-learn).
HOST.update({"scan": (("count", "mean", "m2", "min", "max"), "scan accumulators are numpy arrays on the host"),
             "distill": (("fidelity, accuracy",), "scikit-learn's tree scores, Python floats"),
             "distill.soft-tree": (("fidelity, accuracy",), "the surrogate's scores are Python floats"),
             "inspect.layer_stats": (("relu2.edges", "relu2.hist", "relu2.active"),
                                     "histograms and counts are merged on the host (seethrough.inspect.stats)")})


@pytest.mark.parametrize("name", sorted(OTHERS))
def test_the_other_families_on_cuda_equal_the_cpu(name):
    cpu_case, gpu_case = cf.double_case("image"), cuda_case("image")
    results = []
    for case in (cpu_case, gpu_case):
        with untouched(case.model):
            results.append(OTHERS[name](case.model, case.x, case.y, case.train))
    assert results[0], f"{name}: the result holds no tensor to compare"
    assert mismatches(name, *results) == []


# Options that switch an entry to another code path, each checked on cuda like the defaults.
VARIANTS = [
    ("attribution:occlusion", {"incremental": True, "window": 8, "stride": 4}),
    ("attribution:occlusion", {"layer": "relu1"}),
    ("attribution:integrated-gradients", {"layer": "relu1"}),
    ("attribution:smoothgrad", {"unit": ("relu2", 3)}),
    ("attribution:rise", {"unit": ("relu2", 3)}),
]


@pytest.mark.parametrize("entry, options", VARIANTS, ids=[f"{e}-{'-'.join(o)}" for e, o in VARIANTS])
def test_option_variants_on_cuda_equal_the_cpu(entry, options):
    def run(case):
        with untouched(case.model):
            return cf.leaves(cf.call(entry, case, **{**_seeded(entry), **options}))

    assert mismatches(entry, run(cf.double_case("image")), run(cuda_case("image"))) == []
