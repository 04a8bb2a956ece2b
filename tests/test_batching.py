"""The batching engine: sizes chosen by measuring, memory cap, OOM halving, explicit sizes win."""
import pytest
import torch

from seethrough import batching
from seethrough.batching import chosen_batch_size, run_batched


def _recording(limit=None):
    """fn(start, stop) -> squares, recording batch sizes; OOM above ``limit`` items."""
    sizes = []

    def fn(start, stop):
        if limit is not None and stop - start > limit:
            raise torch.OutOfMemoryError(f"CUDA out of memory (fake: {stop - start} > {limit})")
        sizes.append(stop - start)
        return torch.arange(start, stop, dtype=torch.float64) ** 2

    return fn, sizes


def test_explicit_batch_size_wins_and_results_are_in_order():
    fn, sizes = _recording()
    out = run_batched(fn, 23, batch_size=5, progress=False)
    assert torch.equal(out, torch.arange(23, dtype=torch.float64) ** 2)
    assert sizes == [5, 5, 5, 5, 3]


def test_auto_probes_growing_sizes_then_keeps_the_cheapest(monkeypatch):
    # A fake clock: 1 + 0.1·size seconds per batch, so the per-item cost falls with the size
    # up to the largest probe below the cap (16 here, the cap is 20 items). Probing starts at 8, never 1 or 4,
    # and only for more than PROBE_FROM items.
    fn, sizes = _recording()
    n = batching.PROBE_FROM + 44
    clock = {"t": 0.0}

    def timed(start, stop):
        clock["t"] += 1 + 0.1 * (stop - start)
        return fn(start, stop)

    monkeypatch.setattr(batching.time, "perf_counter", lambda: clock["t"])
    out = run_batched(timed, n, item_bytes=100, memory_budget=2000, key="probe-test", progress=False)
    assert torch.equal(out, torch.arange(n, dtype=torch.float64) ** 2)
    assert sizes[:3] == [8, 16, 20]
    assert set(sizes[3:-1]) == {20} and chosen_batch_size("probe-test") == 20
    # The choice is remembered: the next call with the same key does not probe.
    fn2, sizes2 = _recording()
    run_batched(fn2, 40, key="probe-test", progress=False)
    assert sizes2 == [20, 20]


def test_auto_stops_probing_past_the_bottom_of_the_u(monkeypatch):
    # Per-item cost lowest at 16: probing stops at the first size 15 % worse and keeps 16.
    fn, sizes = _recording()
    per_item = {8: 0.5, 16: 0.3, 32: 0.6, 64: 0.7}
    clock = {"t": 0.0}

    def timed(start, stop):
        clock["t"] += per_item.get(stop - start, 0.3) * (stop - start)
        return fn(start, stop)

    monkeypatch.setattr(batching.time, "perf_counter", lambda: clock["t"])
    run_batched(timed, 400, progress=False, key="u-test")
    assert sizes[:3] == [8, 16, 32] and chosen_batch_size("u-test") == 16
    assert set(sizes[3:-1]) == {16}


@pytest.mark.parametrize("n, want", [(50, [13, 13, 12, 12]), (16, [16]), (5, [5]), (17, [9, 8]), (40, [14, 13, 13])])
def test_few_items_run_in_equal_batches_without_probing(monkeypatch, n, want):
    """Up to PROBE_FROM items nothing is probed: the fewest batches of at most CPU_BATCH (16 here), sizes
    differing by at most one, so no tail batch is tiny; and nothing is remembered (nothing was measured)."""
    monkeypatch.setattr(batching, "_on_cuda", lambda device: False)
    monkeypatch.setattr(batching, "CPU_BATCH", 16)
    fn, sizes = _recording()
    out = run_batched(fn, n, key=f"even-{n}", progress=False)
    assert torch.equal(out, torch.arange(n, dtype=torch.float64) ** 2)
    assert sizes == want and chosen_batch_size(f"even-{n}") is None


def test_out_of_memory_halves_until_it_fits():
    fn, sizes = _recording(limit=5)
    out = run_batched(fn, 50, batch_size=16, progress=False)
    assert torch.equal(out, torch.arange(50, dtype=torch.float64) ** 2)
    assert max(sizes) <= 5 and sizes[0] == 4  # 16 → 8 → 4
    fn, sizes = _recording(limit=6)
    run_batched(fn, 60, key="oom-test", progress=False)
    assert max(sizes) <= 6 and chosen_batch_size("oom-test") <= 6


def test_other_errors_and_oom_at_one_item_propagate():
    def broken(start, stop):
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        run_batched(broken, 10, batch_size=4, progress=False)
    fn, _ = _recording(limit=0)
    with pytest.raises(torch.OutOfMemoryError):
        run_batched(fn, 10, batch_size=4, progress=False)


def test_memory_budget_caps_the_batch_and_too_small_a_budget_is_a_clear_error():
    fn, sizes = _recording()
    run_batched(fn, 100, item_bytes=1000, memory_budget=8000, progress=False)
    assert max(sizes) == 8
    with pytest.raises(ValueError, match="memory_budget .* too small for one sample"):
        run_batched(fn, 10, item_bytes=1000, memory_budget=999, progress=False)
    with pytest.raises(ValueError, match="memory_budget must be a positive"):
        run_batched(fn, 10, memory_budget=0, progress=False)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "big"])
def test_bad_batch_size_names_the_option(bad):
    with pytest.raises(ValueError, match="batch_size must be a positive int or 'auto'"):
        run_batched(lambda a, b: torch.zeros(b - a), 10, batch_size=bad, progress=False)


def test_streaming_and_tuples():
    seen = []
    assert run_batched(lambda a, b: torch.arange(a, b), 7, batch_size=3, progress=False,
                       on_batch=lambda a, b, out: seen.append(out.tolist())) is None
    assert seen == [[0, 1, 2], [3, 4, 5], [6]]
    a, b = run_batched(lambda s, e: (torch.arange(s, e), -torch.arange(s, e)), 5, batch_size=2, progress=False)
    assert a.tolist() == [0, 1, 2, 3, 4] and b.tolist() == [0, -1, -2, -3, -4]


def test_progress_bar_only_on_a_terminal(monkeypatch, capsys):
    made = []

    class FakeBar:
        def __init__(self, **kwargs):
            made.append(kwargs)

        def update(self, n):
            pass

        def close(self):
            pass

    monkeypatch.setattr(batching, "tqdm", FakeBar)
    monkeypatch.setattr(batching.sys.stderr, "isatty", lambda: True, raising=False)
    run_batched(lambda a, b: torch.zeros(b - a), 4, batch_size=2, desc="occlusion")
    run_batched(lambda a, b: torch.zeros(b - a), 4, batch_size=2, progress=False)
    monkeypatch.setattr(batching.sys.stderr, "isatty", lambda: False, raising=False)
    run_batched(lambda a, b: torch.zeros(b - a), 4, batch_size=2)
    # Shown after 2 s on a terminal only; silent when asked or when not on a terminal.
    assert [(m["disable"], m["delay"], m["desc"]) for m in made] == [
        (False, 2.0, "occlusion"), (True, 2.0, "batches"), (True, 2.0, "batches")]


def _tiny_conv():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3, stride=4), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(2, 2)).eval()


@pytest.mark.parametrize("px, want", [(224, 8), (320, 3), (512, 1)])
def test_the_rule_sizes_batches_by_the_image_in_both_modes(monkeypatch, px, want):
    """Without probing, a 224² image runs batches of 8, larger ones proportionally fewer (down to 1 at 512²),
    and a gradient method (SmoothGrad, whose memory need counts the backward) gets the batch of its forward:
    the rule sizes by the image, the memory cap by the pass."""
    import seethrough as see

    monkeypatch.setattr(batching, "_on_cuda", lambda device: False)
    sizes = {"masking": [], "gradient": []}
    real = batching.run_batched

    def spy(where):
        def run(fn, n, **kw):
            def wrapped(a, b):
                sizes[where].append(b - a)
                return fn(a, b)
            return real(wrapped, n, **kw)
        return run

    monkeypatch.setattr("seethrough.attribution.masking.run_batched", spy("masking"))
    monkeypatch.setattr("seethrough.attribution.gradient.run_batched", spy("gradient"))
    net, x = _tiny_conv(), torch.rand(1, 3, px, px)
    see.attribute(net, x, "rise", target=0, n_samples=want * 2, cells=2, progress=False)
    see.attribute(net, x, "smoothgrad", target=0, n_samples=want * 2, progress=False)
    assert max(sizes["masking"]) == want and max(sizes["gradient"]) == want
    assert sizes["gradient"] == [want, want]


def test_probing_a_large_image_starts_at_its_rule_size(monkeypatch):
    """Over PROBE_FROM items a 512² image (rule: 1 per batch) probes 1, 2, 4, 8, … and keeps the cheapest (2 on
    this fake clock); a 224² image still starts at 8."""
    monkeypatch.setattr(batching, "_on_cuda", lambda device: False)
    per_item = {1: 0.5, 2: 0.3, 4: 0.6, 8: 0.7}
    clock = {"t": 0.0}
    for px, first in ((512, [1, 2, 4]), (224, [8, 16, 32])):
        fn, sizes = _recording()

        def timed(start, stop):
            clock["t"] += per_item.get(stop - start, 0.3) * (stop - start)
            return fn(start, stop)

        monkeypatch.setattr(batching.time, "perf_counter", lambda: clock["t"])
        item = batching.bytes_per_item(torch.zeros(1, 3, px, px))
        n = batching.PROBE_FROM + 40
        out = run_batched(timed, n, item_bytes=item, memory_budget=64 * item, key=f"large-{px}", progress=False)
        assert torch.equal(out, torch.arange(n, dtype=torch.float64) ** 2)
        assert sizes[:3] == first, (px, sizes[:5])
    assert chosen_batch_size("large-512") == 2
