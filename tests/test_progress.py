"""Progress listeners: the slow loops report (done, total), per thread, and stop on Cancelled."""
import copy
import threading

import pytest
import torch

import seethrough as see
from seethrough.batching import run_batched
from seethrough.progress import Cancelled, listen, report
from seethrough.testing import untouched


@pytest.fixture(scope="module")
def lenet():
    return see.zoo.load("lenet-digits")[0]


@pytest.fixture(scope="module")
def digits():
    return see.zoo.digits("test")


@pytest.fixture
def odd_lenet(lenet):
    """A model in a state a library must not "tidy": train mode, a frozen layer, a user hook."""
    net = copy.deepcopy(lenet).train()
    for p in net.conv1.parameters():
        p.requires_grad_(False)
    net.fc3.register_forward_hook(lambda m, i, o: None)
    return net


class Recorder:
    """A listener keeping every report; ``stop_at=(desc, done)`` raises Cancelled there."""

    def __init__(self, stop_at=None):
        self.seen, self.stop_at = [], stop_at

    def __call__(self, desc, done, total):
        self.seen.append((desc, done, total))
        if self.stop_at == (desc, done):
            raise Cancelled(f"{desc} stopped at {done}/{total}")

    def of(self, desc):
        return [(d, t) for k, d, t in self.seen if k == desc]


def assert_complete(pairs, total=None):
    """Monotone ``done`` under a fixed ``total``, ending at ``done == total``."""
    assert pairs, "no reports"
    dones = [d for d, _ in pairs]
    assert len({t for _, t in pairs}) == 1, pairs
    assert dones == sorted(dones), pairs
    assert pairs[-1][0] == pairs[-1][1], pairs
    if total is not None:
        assert pairs[-1][1] == total


def test_run_batched_reports_items_per_batch_without_a_bar():
    rec = Recorder()
    with listen(rec):
        run_batched(lambda a, b: torch.arange(a, b), 10, batch_size=3, progress=False, desc="squares")
    assert rec.of("squares") == [(3, 10), (6, 10), (9, 10), (10, 10)]


def test_no_listener_no_calls_and_listen_restores_the_previous_one():
    rec, inner = Recorder(), Recorder()
    with listen(rec):
        with listen(inner):
            report("inner", 1, 1)
        with listen(None):
            report("silenced", 1, 1)
        report("outer", 1, 1)
    run_batched(lambda a, b: torch.arange(a, b), 4, batch_size=2, progress=False, desc="after")
    assert inner.seen == [("inner", 1, 1)]
    assert rec.seen == [("outer", 1, 1)]


def test_listeners_are_per_thread():
    # Both threads are inside run_batched at the same time (the barrier), each with its own listener.
    both_running = threading.Barrier(2, timeout=30)
    recs = {"a": Recorder(), "b": Recorder()}
    errors = []

    def job(name):
        def fn(a, b):
            if a == 0:
                both_running.wait()
            return torch.arange(a, b)

        try:
            with listen(recs[name]):
                run_batched(fn, 6, batch_size=2, progress=False, desc=name)
        except Exception as e:  # surfaced below: a thread's assertion would be lost
            errors.append(e)

    threads = [threading.Thread(target=job, args=(n,)) for n in recs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for name, rec in recs.items():
        assert {d for d, _, _ in rec.seen} == {name}
        assert rec.of(name) == [(2, 6), (4, 6), (6, 6)]


def test_visualize_reports_every_step(lenet):
    rec = Recorder()
    with listen(rec):
        see.visualize(lenet, "logit:3", size=32, param="pixel", transforms=None, steps=20, seed=0)
    steps = rec.of("visualize step")
    assert steps == [(k, 20) for k in range(1, 21)]
    assert_complete(rec.of("visualize"), total=1)  # the images, batch by batch


def test_attack_reports_every_iteration(lenet, digits):
    x, _ = digits
    rec = Recorder()
    with listen(rec):
        see.attack(lenet, x[:2], "pgd", eps=64, steps=10, batch_size=2, progress=False)
    assert rec.of("pgd step") == [(k, 10) for k in range(1, 11)]
    assert_complete(rec.of("pgd attack"), total=2)


def test_attack_steps_start_again_in_every_batch(lenet, digits):
    # Batches run one after another, each with all its iterations; the outer desc counts images.
    x, _ = digits
    rec = Recorder()
    with listen(rec):
        see.attack(lenet, x[:3], "bim", eps=8, steps=4, batch_size=1, progress=False)
    assert rec.of("bim step") == [(k, 4) for k in range(1, 5)] * 3
    assert rec.of("bim attack") == [(1, 3), (2, 3), (3, 3)]


def test_topk_reports_its_scan(lenet, digits):
    x, _ = digits
    rec = Recorder()
    with listen(rec):
        see.topk(lenet, x[:200], "conv2", k=4, progress=False)
    assert_complete(rec.of("top-4 conv2"), total=200)


def test_scan_of_an_iterable_reports_samples_with_unknown_total(lenet, digits):
    x, _ = digits
    rec = Recorder()
    with listen(rec):
        see.topk(lenet, (x[a:a + 50] for a in range(0, 150, 50)), "conv2", k=4, progress=False)
    assert rec.of("top-4 conv2") == [(50, 0), (100, 0), (150, 0)]


def test_embed_reports_activations_and_tsne_iterations(lenet, digits):
    x, y = digits
    rec = Recorder()
    with listen(rec):
        see.embed(lenet, (x[:150], y[:150]), ["fc3"], "tsne", progress=False)
    assert_complete(rec.of("activations"), total=150)
    tsne = rec.of("t-SNE")
    assert_complete(tsne, total=750)  # 250 early-exaggeration + 500 iterations
    assert tsne[0] == (0, 750) and len(tsne) > 10


def test_sklearn_tsne_reports_the_phase(lenet, digits):
    x, y = digits
    rec = Recorder()
    with listen(rec):
        see.embed(lenet, (x[:60], y[:60]), ["fc3"], "tsne", backend="sklearn", perplexity=10, progress=False)
    assert rec.of("t-SNE") == [(0, 1), (1, 1)]


def test_cancel_stops_visualize_and_leaves_the_model_as_found(odd_lenet):
    rec = Recorder(stop_at=("visualize step", 5))
    with untouched(odd_lenet), listen(rec), pytest.raises(Cancelled):
        see.visualize(odd_lenet, "logit:3", size=32, param="pixel", transforms=None, steps=20, seed=0)
    assert rec.of("visualize step")[-1] == (5, 20)


def test_cancel_stops_attack_and_leaves_the_model_as_found(odd_lenet, digits):
    x, _ = digits
    rec = Recorder(stop_at=("pgd step", 3))
    with untouched(odd_lenet), listen(rec), pytest.raises(Cancelled):
        see.attack(odd_lenet, x[:2], "pgd", eps=64, steps=10, progress=False)
    assert rec.of("pgd step")[-1] == (3, 10)
    assert not rec.of("pgd attack")  # stopped inside the first batch


def test_cancel_stops_tsne(lenet, digits):
    # openTSNE catches only its own interrupt: Cancelled from the callback reaches the caller.
    x, y = digits
    rec = Recorder(stop_at=("t-SNE", 50))
    with untouched(lenet), listen(rec), pytest.raises(Cancelled):
        see.embed(lenet, (x[:150], y[:150]), ["fc3"], "tsne", progress=False)
    assert rec.of("t-SNE")[-1] == (50, 750)


def test_cancel_is_not_swallowed_by_the_report(monkeypatch, tmp_path):
    # write_report turns a failing section into an error box; a cancelled job must stop instead.
    def build(ctx):
        run_batched(lambda a, b: torch.arange(a, b), 4, batch_size=2, progress=False, desc="section work")
        return []

    monkeypatch.setitem(see.report.SECTIONS, "cancel-me", see.report.Section("cancel-me", "Cancel me", 0, build))
    with listen(Recorder(stop_at=("section work", 2))), pytest.raises(Cancelled):
        see.report.write_report(tmp_path, sections=["cancel-me"])
