"""Shared computations, separate interests: one client's cancel never ends another's result.

Identical requests share one computation; each request holds a ticket of its own. The
computation stops only when no ticket waits for it. The model is held busy by the test while
the clients act, so what happens does not depend on how fast LeNet computes; nothing is timed.
"""
from __future__ import annotations

import threading
import time

import pytest

from seethrough.progress import report
from seethrough.testing import untouched
from seethrough.web.app import create_app
from seethrough.web.jobs import Busy, Jobs

from .conftest import local

IG = {"input": "digit-4", "method": "integrated-gradients"}


@pytest.fixture
def app(lenet_session):
    return create_app(lenet_session)


def _finish(client, ticket: str, timeout: float = 120) -> dict:
    """Poll a ticket as the page does until its computation has finished."""
    deadline = time.monotonic() + timeout
    job = client.get(f"/api/jobs/{ticket}").json()
    while job["state"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.02)
        job = client.get(f"/api/jobs/{ticket}").json()
    return job


class _BusyModel:
    """Hold the model slot (as a long computation elsewhere would) while the clients act."""

    def __init__(self, app):
        self.sem = app.state.cache._model

    def __enter__(self):
        self.sem.acquire()
        return self

    def __exit__(self, *exc):
        self.sem.release()


def test_one_clients_cancel_leaves_the_others_result(app, lenet_session):
    page_a, page_b = local(app), local(app)
    with untouched(lenet_session.model):
        with _BusyModel(app):
            a = page_a.post("/api/jobs/attribution", params=IG).json()
            b = page_b.post("/api/jobs/attribution", params=IG).json()
            assert a["id"] != b["id"] and b["waiters"] == 2  # one computation, two tickets
            assert page_a.delete(f"/api/jobs/{a['id']}").json()["state"] == "cancelled"
            assert page_b.get(f"/api/jobs/{b['id']}").json()["state"] in ("queued", "running")
        done = _finish(page_b, b["id"])
    assert done["state"] == "done", done
    assert page_a.get(f"/api/jobs/{a['id']}").json()["state"] == "cancelled"
    r = page_b.get("/api/attribution", params=IG).json()
    assert r["method"] == "integrated-gradients" and r["overlay"].startswith("data:image/png")
    assert app.state.cache.stats()["computations"]["attribution"] == 1


def test_switching_method_on_one_page_keeps_the_other_pages_method(app):
    """Page A and B ask for integrated-gradients; A switches to saliency (a new request, and a cancel of
    its old ticket, as app.js does). B still gets integrated-gradients, A gets saliency."""
    page_a, page_b = local(app), local(app)
    with _BusyModel(app):
        a_old = page_a.post("/api/jobs/attribution", params=IG).json()
        b = page_b.post("/api/jobs/attribution", params=IG).json()
        a_new = page_a.post("/api/jobs/attribution", params={**IG, "method": "saliency"}).json()
        page_a.delete(f"/api/jobs/{a_old['id']}")
    assert _finish(page_b, b["id"])["state"] == "done" and _finish(page_a, a_new["id"])["state"] == "done"
    assert page_b.get("/api/attribution", params=IG).json()["method"] == "integrated-gradients"
    assert page_a.get("/api/attribution", params={**IG, "method": "saliency"}).json()["method"] == "saliency"


def test_two_change_events_on_one_page_do_not_cancel_the_newer_one(app):
    """The same request sent twice (two change events); the page cancels the older ticket."""
    page = local(app)
    with _BusyModel(app):
        first = page.post("/api/jobs/attribution", params=IG).json()
        second = page.post("/api/jobs/attribution", params=IG).json()
        page.delete(f"/api/jobs/{first['id']}")
    assert _finish(page, second["id"])["state"] == "done"


def test_the_computation_stops_when_every_waiter_has_left(app):
    page_a, page_b = local(app), local(app)
    with _BusyModel(app):
        a = page_a.post("/api/jobs/attribution", params=IG).json()
        b = page_b.post("/api/jobs/attribution", params=IG).json()
        page_a.delete(f"/api/jobs/{a['id']}")
        page_b.delete(f"/api/jobs/{b['id']}")
    work = app.state.jobs.get(b["id"]).work
    app.state.jobs.wait(b["id"])
    assert work.state == "cancelled" and work.done == 0
    assert "attribution" not in app.state.cache.stats()["computations"]
    again = page_a.post("/api/jobs/attribution", params=IG).json()  # asked again: computed afresh
    assert _finish(page_a, again["id"])["state"] == "done"


def test_a_new_waiter_revives_a_computation_before_it_noticed_it_was_abandoned():
    jobs, gate, go, calls = Jobs(), threading.Event(), threading.Event(), []

    def work():
        calls.append(1)
        gate.set()
        go.wait(10)
        for k in range(5):
            report("loop", k + 1, 5)

    first = jobs.submit("demo", "k", work)
    assert gate.wait(10)
    jobs.cancel(first.id)  # nobody waits now, but no report has come since
    second = jobs.submit("demo", "k", work)
    go.set()
    assert jobs.wait(second.id).state == "done" and second.work is first.work and calls == [1]


def test_an_abandoned_ticket_stops_its_computation():
    """A tab closed without cancelling stops polling: after ``abandon_after`` it no longer counts."""
    now, steps = [0.0], []
    jobs = Jobs(abandon_after=30, clock=lambda: now[0])

    def work():
        for k in range(100):
            steps.append(k)
            if k == 5:
                now[0] += 31  # half a minute without a poll
            report("loop", k + 1, 100)

    ticket = jobs.submit("demo", "k", work)
    while ticket.work.finished is None:
        time.sleep(0.01)
    assert ticket.work.state == "cancelled" and len(steps) == 6


def test_the_job_tables_stay_bounded():
    jobs = Jobs(keep=5, max_pending=3, max_tickets=50)
    hold = threading.Event()
    for i in range(3):
        jobs.submit("demo", ("held", i), hold.wait)
    with pytest.raises(Busy, match="3 computations are already waiting"):
        jobs.submit("demo", ("held", 3), hold.wait)
    hold.set()
    for i in range(3):
        jobs.wait(next(t.id for t in jobs._tickets.values() if t.work.key == ("held", i)))
    for i in range(100):
        jobs.wait(jobs.submit("demo", ("quick", i), lambda: None).id)
    assert jobs.stats()["finished"] <= 5 and jobs.stats()["tickets"] <= 50
    for _ in range(200):  # the same request over and over: tickets of finished work are forgotten first
        jobs.submit("demo", ("quick", 99), lambda: None)
    assert jobs.stats()["tickets"] <= 50


def test_too_many_waiting_jobs_is_a_503_not_a_queue_without_end(lenet_session):
    app = create_app(lenet_session, max_waiting=2)
    page = local(app)
    with _BusyModel(app):
        codes = [page.post("/api/jobs/attribution", params={**IG, "target": t}).status_code for t in range(4)]
        busy = page.post("/api/jobs/attribution", params={**IG, "target": 9})
        for ticket in list(app.state.jobs._tickets):
            page.delete(f"/api/jobs/{ticket}")
    assert codes == [200, 200, 503, 503]
    assert busy.status_code == 503 and "already waiting" in busy.json()["detail"] and busy.headers["retry-after"] == "2"


def test_the_per_client_eps_table_stays_bounded(lenet_session):
    app = create_app(lenet_session, max_clients=16)
    page = local(app)
    for i in range(60):  # 60 tabs, one ε each (cached after the first: fast)
        r = page.get("/api/adversarial", params={"input": "digit-1", "method": "fgsm", "eps": 2, "client": f"tab-{i}",
                                                 "seq": 1})
        assert r.status_code == 200
    assert len(app.state.newest) == 16 and page.get("/api/stats").json()["clients"] == 16


def test_the_cache_lock_table_empties_after_failures_and_successes():
    from seethrough.web.cache import Cache

    cache, barrier = Cache(), threading.Barrier(40)

    def ask(i):
        barrier.wait()

        def compute():
            time.sleep(0.005)
            if i % 2:
                raise ValueError("bad input")
            return b"ok"

        try:
            cache.get(("k", i % 8), compute)
        except ValueError:
            pass

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    peak = 0
    while any(t.is_alive() for t in threads):
        peak = max(peak, cache.stats()["locks"])
    for t in threads:
        t.join()
    assert cache.stats()["locks"] == 0 and peak <= 8  # one lock per key in flight, none left behind
    for i in range(1000):  # a thousand failing keys used to leave a thousand locks
        try:
            cache.get(("fail", i), lambda: (_ for _ in ()).throw(ValueError("no")))
        except ValueError:
            pass
    assert cache.stats()["locks"] == 0
