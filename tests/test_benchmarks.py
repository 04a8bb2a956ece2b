"""The benchmarks' measuring helpers compute what they claim, and each benchmark's --quick mode runs end
to end (no timing is asserted: speed lives in benchmarks/, these check the arithmetic and the plumbing)."""
from __future__ import annotations

import doctest
import importlib.util
import json
import pathlib
import sys

import pytest
import torch
from torch import nn

import seethrough as see
from seethrough.testing import untouched

BENCH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
import _bench  # noqa: E402


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU6(), nn.Conv2d(4, 4, 3), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))


def test_doctests_of_the_helpers():
    result = doctest.testmod(_bench, extraglobs={"torch": torch})
    assert result.attempted >= 8 and result.failed == 0


def test_the_limit_is_the_minimum_of_the_grid_over_sizes_and_layouts():
    model = tiny_cnn()
    x = torch.rand(1, 3, 8, 8)
    with untouched(model):
        grid = _bench.per_image_grid(model, x, "grad", sizes=(1, 2, 4), images=4, repeats=1)
    assert set(grid) == {(l, b) for l in _bench.LAYOUTS for b in (1, 2, 4)}
    assert all(v > 0 for v in grid.values())
    cost, layout, batch = _bench.best_cell(grid)
    assert cost == min(grid.values()) and grid[(layout, batch)] == cost
    cost1, layout1, batch1 = _bench.best_cell(grid, batch=1)
    assert batch1 == 1 and cost1 == min(grid[(l, 1)] for l in _bench.LAYOUTS)
    with pytest.raises(ValueError, match="no cell at batch 3"):
        _bench.best_cell(grid, batch=3)
    with pytest.raises(ValueError, match="mode must be 'forward' or 'grad'"):
        _bench.per_image_grid(model, x, "backward")
    later = {k: v / 2 if k[1] == 2 else v * 2 for k, v in grid.items()}
    merged = _bench.merge_min(grid, later)
    assert all(merged[k] == min(grid[k], later[k]) for k in grid)


def test_the_linear_fit_recovers_a_known_slope_and_flags_a_curve():
    passes = [10, 20, 40, 80]
    a, b, resid = _bench.linear_fit(passes, [0.25 + 0.0125 * p for p in passes])
    assert a == pytest.approx(0.25, abs=1e-12) and b == pytest.approx(0.0125, abs=1e-12) and resid < 1e-12
    gen = torch.Generator().manual_seed(0)
    noisy = [0.25 + 0.0125 * p + 1e-3 * float(torch.randn((), generator=gen)) for p in passes]
    assert _bench.linear_fit(passes, noisy)[1] == pytest.approx(0.0125, rel=0.05)
    assert _bench.linear_fit(passes, [1e-4 * p * p for p in passes])[2] > 0.2  # quadratic growth: a large residual


def test_peak_memory_growth_sees_a_fresh_allocation():
    # a fresh mapping, touched: the allocator cannot serve it from pages the process already holds
    grew, total = _bench.peak_rss_growth(lambda: _bench.touch_fresh(64 * 2**20))
    assert total == 64 * 2**20 and grew >= 48 * 2**20


def test_a_first_call_runs_in_a_fresh_process_and_a_failure_is_one_line():
    assert _bench.first_call("import sys; sys.modules.pop('json', None)", "sum(range(10))") >= 0
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        _bench.first_call("import math", "1 / 0")


def test_relu6_as_relu_computes_the_same_function_on_a_copy():
    model = tiny_cnn().double()
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64) * 8  # inputs beyond 6: the clamp matters
    with untouched(model):
        copy = _bench.relu6_as_relu(model)
        assert torch.equal(copy(x), model(x))
    assert not any(type(m) is nn.ReLU6 for m in copy.modules()) and any(type(m) is nn.ReLU6 for m in model.modules())
    assert any(isinstance(m, nn.ReLU) and type(m) is not nn.ReLU for m in copy.modules())


def test_scaling_calls_count_their_passes():
    scaling = load("scaling")
    code, passes, mode = scaling.call_of("occlusion", 16, 64)
    assert passes == len(see.attribution.perturbation.occlusion_windows((64, 64), 32, 16)[1]) + 1 == 10
    assert "window=32, stride=16" in code and mode == "forward"
    assert scaling.call_of("rise", 50, 64, budget=2**20)[1:] == (51, "forward")
    assert "memory_budget=1048576" in scaling.call_of("rise", 50, 64, budget=2**20)[0]
    assert scaling.call_of("integrated-gradients", 8, 64)[1:] == (8, "grad")
    with pytest.raises(ValueError, match="unknown method"):
        scaling.call_of("nope", 1, 64)


@pytest.mark.slow
def test_run_quick_end_to_end_and_its_ratios(tmp_path):
    out = tmp_path / "run.json"
    load("run").main(["--quick", "--only", "occlusion,saliency,deletion", "--repeats", "1", "--first-call", "saliency",
                      "--json", str(out)])
    data = json.loads(out.read_text())
    rows = {r["method"]: r for r in data["rows"]}
    assert set(rows) == {"occlusion", "saliency", "deletion"}
    grid = {m: {tuple(k.split("/b")): v for k, v in g.items()} for m, g in data["limit"].items()}
    start = data["start"]
    assert all(v <= start[m][k] for m, g in data["limit"].items() for k, v in g.items())  # the kept limit is the lower
    occ = rows["occlusion"]
    assert occ["limit"] == pytest.approx(occ["passes"] * min(grid["forward"].values()))
    assert occ["ours_over_limit"] == pytest.approx(occ["ours"]["median"] / occ["limit"])
    sal = rows["saliency"]
    assert sal["limit"] == pytest.approx(min(v for (l, b), v in grid["grad"].items() if b == "1"))
    assert sal["first_call"] > 0 and rows["occlusion"]["first_call"] is None
    assert "limit ≤ 1.1" in sal["targets"] and "| saliency |" in data["table"]
    peers = [p for p in occ["peers"] if p["library"] == "Captum"]
    assert {p["setting"] for p in peers} == {"default", "perturbations_per_eval=8"}
    best = min(p["timing"]["median"] for p in occ["peers"])
    assert occ["best_peer_over_ours"] == pytest.approx(best / occ["ours"]["median"])


@pytest.mark.slow
def test_scaling_quick_end_to_end_and_its_fits(tmp_path):
    out = tmp_path / "scaling.json"
    load("scaling").main(["--quick", "--methods", "rise,integrated-gradients", "--json", str(out)])
    data = json.loads(out.read_text())
    assert [r["method"] for r in data["passes"]] == ["rise", "integrated-gradients"]
    for r in data["passes"]:
        p, t = zip(*r["points"])
        assert max(p) / min(p) >= 6  # the passes span about 8x
        a, b, resid = _bench.linear_fit(p, t)
        assert (r["a"], r["b"], r["max_residual"]) == pytest.approx((a, b, resid))
    for r in data["size"]:
        assert [s for s, _, _ in r["points"]] == [64, 96, 128]
    mem = {r["default_budget"]: r for r in data["memory"]}
    assert mem[False]["budget"] == 64 * 2**20 and mem[True]["budget"] > mem[False]["budget"]
    assert 0 < mem[False]["peak_growth"] <= 1.5 * mem[False]["budget"]  # a small budget bounds the peak
