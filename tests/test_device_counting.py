"""Counting host syncs and host <-> device copies (issue 21 item 6): the counter tests/test_device.py uses on a
GPU, exercised here on the CPU so it is checked in CI on every run.

:class:`HostSyncs` is a ``TorchDispatchMode``: it sees every aten op under autograd, so it counts

* ``aten._local_scalar_dense`` — ``.item()``, ``int(t)``, ``float(t)``, ``bool(t)``: a host sync on a GPU;
* ``aten._to_copy`` / ``aten.copy_`` whose source and destination devices differ — a host <-> device copy
  (never on a CPU: there they are recorded only to prove the device test would see them);
* ``aten.nonzero`` / ``aten.masked_select`` on a non-CPU tensor — boolean indexing, a sync on a GPU;
* any other op mixing a non-CPU tensor with a CPU tensor of more than one element (indexing a GPU tensor with
  CPU indices, say) — an implicit host -> device copy inside the op.

The CPU check below: a many-pass entry's number of ``.item()`` calls does not grow with its number of passes
(n and 2n passes at a fixed batch size give the same count): a per-batch ``.item()`` would be a host sync per
batch on a GPU.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from seethrough.testing import untouched
from tests import conformance_fixtures as cf
from tests.test_hygiene import _deterministic_batches  # noqa: F401 (autouse: no batch-size probing)

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::RuntimeWarning", "ignore::UserWarning")

_aten = torch.ops.aten
_ITEM = {_aten._local_scalar_dense.default}
_MASKED = {_aten.nonzero.default, _aten.masked_select.default}


def _dev(v: Any) -> torch.device | None:
    return v.device if isinstance(v, torch.Tensor) else None


@dataclass
class HostSyncs(TorchDispatchMode):
    """Counts host syncs and cross-device copies in its block (see the module's docstring).

    ``copies``: one ``(op, source device, destination device, numel)`` per cross-device copy;
    ``items``: the number of ``.item()``-like reads (any device); ``device_items``: those of non-CPU tensors;
    ``masked``: boolean-indexing syncs on non-CPU tensors; ``mixed``: one ``(op, shapes)`` per other op that
    mixes a non-CPU tensor with a CPU tensor of more than one element.
    """

    copies: list = field(default_factory=list)
    items: int = 0
    device_items: int = 0
    masked: int = 0
    mixed: list = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _ITEM:
            self.items += 1
            self.device_items += args[0].device.type != "cpu"
        elif func is _aten._to_copy.default:
            src = args[0].device
            dst = torch.device(kwargs["device"]) if kwargs.get("device") is not None else src
            if dst != src:
                self.copies.append(("_to_copy", str(src), str(dst), args[0].numel()))
        elif func is _aten.copy_.default:
            dst, src = _dev(args[0]), _dev(args[1])
            if dst is not None and src is not None and dst != src:
                self.copies.append(("copy_", str(src), str(dst), args[1].numel()))
        elif func in _MASKED and args[0].device.type != "cpu":
            self.masked += 1
        else:
            ts = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
            if any(t.device.type != "cpu" for t in ts) and any(t.device.type == "cpu" and t.numel() > 1 for t in ts):
                self.mixed.append((str(func), [tuple(t.shape) for t in ts]))
        return func(*args, **kwargs)

    @property
    def syncs(self) -> int:
        """Everything that stalls the host on a GPU: device scalar reads, boolean indexing, copies."""
        return self.device_items + self.masked + len(self.copies) + len(self.mixed)


# How many passes an entry makes, and what doubles them: {entry: (option, n passes' value, 2n passes' value)} with
# a batch size (where the entry takes one) small enough that twice the passes are twice the batches.
PASSES: dict[str, tuple[str, Any, Any]] = {
    "attribution:smoothgrad": ("n_samples", 4, 8), "attribution:smoothgrad-sq": ("n_samples", 4, 8),
    "attribution:vargrad": ("n_samples", 4, 8), "attribution:integrated-gradients": ("steps", 4, 8),
    "attribution:rise": ("n_samples", 24, 48), "attribution:lime": ("n_samples", 24, 48),
    "attribution:kernel-shap": ("n_samples", 24, 48), "attribution:occlusion": ("stride", 8, 4),
    "attack:ascent": ("steps", 2, 4), "attack:bim": ("steps", 2, 4), "attack:pgd": ("steps", 2, 4),
    "metric:deletion": ("steps", 4, 8), "metric:insertion": ("steps", 4, 8), "metric:pixel-flipping": ("steps", 4, 8),
    "metric:region-perturbation": ("steps", 4, 8), "metric:road": ("fractions", (0.25, 0.5), (0.125, 0.25, 0.375, 0.5)),
    "metric:infidelity": ("n_samples", 4, 8), "metric:max-sensitivity": ("n_samples", 2, 4),
    "influence:lissa": ("lissa_depth", 5, 10),
    # every objective runs the same optimisation loop (seethrough.optimize.engine): steps are its passes
    **{f"objective:{name}": ("steps", 2, 4) for name in cf.catalog.entries("objective")},
}
# Entries whose scalar reads do grow with the passes, and why (each is checked to still need it).
GROWS: dict[str, str] = {
    "metric:max-sensitivity": "it calls the explanation method once per batch of perturbed inputs, and each call of "
                              "seethrough.attribute range-checks its target (one host read per call)",
}
# Entries whose per-step reads are of CPU tensors that stay on the CPU on every device (no sync on a GPU, where
# tests/test_device.py checks their device reads do not grow); each is checked to still read them.
CPU_READS: dict[str, str] = {
    f"objective:{name}": "the transforms draw each step's jitter, scale and angle as ints from a CPU generator "
                         "(the same on every device): a read of a CPU tensor, not a device sync"
    for name in cf.catalog.entries("objective")
}
BATCH = {"attribution:occlusion": 4, "attribution:rise": 8, "attribution:lime": 8, "attribution:kernel-shap": 8}
EXTRA = {"attribution:occlusion": {"window": 8}}


def run_counted(entry: str, case: cf.Case, value: Any) -> HostSyncs:
    """``entry`` on ``case`` with its pass option at ``value``, under a fresh :class:`HostSyncs` (model untouched)."""
    option = PASSES[entry][0]
    if entry.startswith("objective:"):
        import seethrough as see

        spec = cf.spec_of(entry)
        objective = spec.fn(**cf.required_values(spec, case))
        with untouched(case.model), HostSyncs() as counted:
            see.visualize(case.model, objective, n_samples=len(case.x), size=case.x.shape[-1],
                          channels=case.x.shape[1], steps=value, seed=3, batch_size=len(case.x), progress=False)
        return counted
    opts = {option: value, **EXTRA.get(entry, {})}
    if "batch_size" in {o.name for o in cf.spec_of(entry).options}:
        opts["batch_size"] = BATCH.get(entry, 2)
    if "seed" in {o.name for o in cf.spec_of(entry).options}:
        opts["seed"] = 3
    with untouched(case.model), HostSyncs() as counted:
        cf.call(entry, case, **opts)
    return counted


def test_the_counter_sees_items_and_cross_device_copies():
    """The counter has teeth: it counts each ``.item()``-like read and each copy between two devices (the meta
    device stands in for a GPU here: a CPU -> meta copy is a real cross-device ``_to_copy``)."""
    x = torch.arange(6.0)
    with HostSyncs() as c:
        for v in x:
            float(v)
        x.sum().item()
        int(x.argmax())
        y = x.to("meta")
        x.to(torch.float64)  # same device: not a copy between devices
    assert c.items == 8 and c.device_items == 0
    assert c.copies == [("_to_copy", "cpu", "meta", 6)] and y.device.type == "meta"
    with HostSyncs() as c:
        torch.empty(3, device="meta").copy_(torch.ones(3))
    assert c.copies == [("copy_", "cpu", "meta", 3)]
    with HostSyncs() as c:
        on_meta = torch.ones(3, device="meta")
        on_meta * torch.tensor(2.0)  # a CPU scalar: no copy of data
        on_meta[torch.tensor([0, 2])]  # CPU indices into a device tensor: copied inside the op
    assert [op for op, _ in c.mixed] == ["aten.index.Tensor"] and c.syncs == 1


def test_a_per_batch_item_grows_with_the_passes():
    """What the entry check below would catch: a loop reading one scalar per batch counts twice for twice the
    batches (the same ``run_batched`` the methods use)."""
    from seethrough.batching import run_batched

    def counted(n: int) -> int:
        def fn(a: int, b: int) -> torch.Tensor:
            t = torch.arange(a, b, dtype=torch.float64)
            assert float(t.sum()) >= 0  # one host read per batch
            return t

        with HostSyncs() as c:
            run_batched(fn, n, batch_size=2, progress=False)
        return c.items

    assert (counted(8), counted(16)) == (4, 8)


@pytest.mark.parametrize("entry", sorted(PASSES))
def test_a_many_pass_entry_reads_no_scalar_per_batch_on_cpu(entry):
    case = cf.kind_case("image", entry.split(":", 1)[1])
    _, once, twice = PASSES[entry]
    n, n2 = run_counted(entry, case, once).items, run_counted(entry, case, twice).items
    if entry in GROWS or entry in CPU_READS:
        assert n2 > n, f"{entry} no longer reads the host per batch: drop it from GROWS / CPU_READS"
    else:
        assert n2 == n, f"{entry}: {n} scalar reads at {once}, {n2} at {twice}: the loop reads the host per batch"


def test_every_batched_run_names_the_device_its_budget_is_read_for(monkeypatch):
    """A batched run that caps its batch by memory reads the budget of the input's device, never of the machine's
    default (``device=None`` picks the GPU wherever one exists, even for work on the CPU). Checked here on the CPU
    for every many-pass entry; on a GPU, tests/test_device.py checks the budget is read from cuda."""
    from seethrough import batching

    seen: list = []
    real = batching.default_memory_budget
    monkeypatch.setattr(batching, "default_memory_budget", lambda device=None: seen.append((entry, device)) or real(device))
    for entry in sorted(PASSES):
        run_counted(entry, cf.kind_case("image", entry.split(":", 1)[1]), PASSES[entry][1])
    unnamed = sorted({e for e, d in seen if d is None or torch.device(d).type != "cpu"})
    assert seen and unnamed == [], f"batched runs without the input's device: {unnamed}"
