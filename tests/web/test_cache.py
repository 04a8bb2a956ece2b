"""The result cache and the job table, on their own: single-flight, byte budget, model slots."""
from __future__ import annotations

import threading
import time

import pytest

from seethrough.progress import report
from seethrough.web.cache import Cache
from seethrough.web.jobs import Jobs


def _hammer(cache: Cache, key, compute, n: int = 50) -> list:
    barrier, out = threading.Barrier(n), []

    def ask():
        barrier.wait()
        out.append(cache.get(key, compute, kind="k"))

    threads = [threading.Thread(target=ask) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def _slow_counter():
    calls = []

    def compute():
        calls.append(1)
        time.sleep(0.05)  # long enough for all 50 threads to miss before it finishes
        return b"result"

    return calls, compute


def test_fifty_concurrent_misses_compute_once():
    cache = Cache()
    calls, compute = _slow_counter()
    assert _hammer(cache, "key", compute) == [b"result"] * 50
    assert len(calls) == 1 and cache.stats()["computations"] == {"k": 1} and cache.stats()["hits"] == 49


def test_without_single_flight_the_same_load_computes_many_times():
    """The baseline the single-flight cache exists for: check-then-compute without a per-key lock."""
    store, calls, barrier = {}, [], threading.Barrier(50)

    def naive():
        barrier.wait()
        if "key" not in store:
            calls.append(1)
            time.sleep(0.05)
            store["key"] = b"result"

    threads = [threading.Thread(target=naive) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) > 1


def test_byte_budget_evicts_least_recently_used():
    cache = Cache(budget=30)
    for key in "abc":
        cache.get(key, lambda: b"x" * 10)
    cache.get("a", lambda: b"never")  # touch a: b is now the oldest
    cache.get("d", lambda: b"y" * 10)
    assert cache.lookup("b") == (False, None) and cache.lookup("a")[0] and cache.lookup("d")[0]
    assert cache.stats()["bytes"] == 30 and cache.stats()["evictions"] == 1
    assert cache.get("huge", lambda: b"z" * 100) == b"z" * 100 and cache.lookup("huge") == (False, None)


def test_a_failed_computation_is_not_cached():
    cache, calls = Cache(), []

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("first try fails")
        return b"ok"

    with pytest.raises(ValueError):
        cache.get("k", flaky)
    assert cache.get("k", flaky) == b"ok" and len(calls) == 2


@pytest.mark.parametrize("workers", [1, 2])
def test_model_computations_never_exceed_the_workers(workers):
    cache, running, peak, guard = Cache(workers=workers), [0], [0], threading.Lock()

    def compute():
        with guard:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02)
        with guard:
            running[0] -= 1
        return b"v"

    threads = [threading.Thread(target=cache.get, args=(i, compute)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == workers


def test_jobs_report_progress_and_can_be_cancelled():
    jobs, gate = Jobs(), threading.Event()

    def work():
        for k in range(1000):
            report("loop", k + 1, 1000)
            if k == 10:
                gate.set()
            time.sleep(0.001)

    job = jobs.submit("demo", "key", work)
    assert gate.wait(10)
    assert jobs.get(job.id).state == "running" and jobs.get(job.id).work.step == "loop"
    jobs.cancel(job.id)
    done = jobs.wait(job.id)
    assert done.state == "cancelled" and done.work.state == "cancelled" and 10 < done.work.done < 1000
    assert jobs.submit("demo", "key", lambda: None).work is not job.work  # a cancelled computation is started afresh


def test_a_failing_job_says_why():
    jobs = Jobs()

    def bad():
        raise ValueError("layer 'x' does not exist")

    assert jobs.wait(jobs.submit("demo", "k", bad).id).as_dict()["error"] == "layer 'x' does not exist"
    with pytest.raises(KeyError):
        jobs.get("j999")
