"""Slow computations as jobs: progress (step/total, elapsed), cancel, result in the cache.

Identical requests share one computation, but each request gets its own **ticket**: the id a
client polls and cancels. Cancelling a ticket withdraws only that client's interest; the
computation stops only when no ticket waits for it any more (all cancelled, or not polled for
``abandon_after`` seconds: a closed tab). So one page switching methods, or sending the same
request twice, never cancels what another page (or its own newer request) still waits for.

A computation runs in a worker thread under :func:`seethrough.progress.listen`, so the
library's own loops (batches, optimisation steps, attack iterations, t-SNE iterations) report
into it; the listener raises :class:`seethrough.progress.Cancelled` at the first report after
the last waiter left. The tables are bounded: at most ``max_pending`` computations queued or
running (more is :class:`Busy`), ``keep`` finished ones remembered, ``max_tickets`` tickets.
"""
from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

from ..progress import Cancelled, listen


class Busy(Exception):
    """Too many computations are already waiting; the web layer answers 503."""


@dataclass(eq=False)
class Work:
    """One computation, shared by every ticket for its key."""

    kind: str
    key: Hashable
    state: str = "queued"  # queued (also: waiting for the model) → running → done | error | cancelled
    step: str = ""
    done: int = 0
    total: int = 0
    started: float = 0.0
    finished: float | None = None
    error: str | None = None
    status: int | None = None  # the HTTP status an error corresponds to (400 bad input, 404 unknown, 500)
    tickets: set = field(default_factory=set, repr=False)  # ids of the tickets still waiting
    stopping: bool = False  # the last waiter left and a Cancelled is on its way: do not reuse


@dataclass(eq=False)
class Ticket:
    """One client's interest in a :class:`Work`; its id is what the page polls and cancels."""

    id: str
    work: Work
    seen: float
    withdrawn: bool = False

    @property
    def state(self) -> str:
        return "cancelled" if self.withdrawn else self.work.state

    def as_dict(self) -> dict[str, Any]:
        w = self.work
        end = w.finished if w.finished is not None else time.monotonic()
        return {"id": self.id, "kind": w.kind, "state": self.state, "step": w.step, "done": w.done, "total": w.total,
                "elapsed": round(end - w.started, 2), "error": w.error, "status": w.status, "waiters": len(w.tickets)}


class Jobs:
    """Run ``fn`` in the background once per ``key``; every :meth:`submit` returns a new ticket.

    >>> jobs = Jobs()
    >>> a = jobs.submit("demo", ("k",), lambda: 42)
    >>> jobs.wait(a.id).state
    'done'
    >>> b = jobs.submit("demo", ("k",), lambda: 0)  # finished work is looked up, not rerun
    >>> b.id != a.id and b.work is a.work and b.state == "done"
    True
    """

    def __init__(self, threads: int = 4, keep: int = 200, max_pending: int = 64, max_tickets: int = 1000,
                 abandon_after: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="seethrough-job")
        self._by_key: OrderedDict[Hashable, Work] = OrderedDict()  # live and remembered finished work
        self._tickets: OrderedDict[str, Ticket] = OrderedDict()
        self._ids = itertools.count(1)
        self._guard = threading.Lock()
        self._keep, self._max_pending, self._max_tickets = keep, max_pending, max_tickets
        self._abandon_after, self._clock = abandon_after, clock
        self._closed = False

    def submit(self, kind: str, key: Hashable, fn: Callable[[], Any], *, ready: bool = False) -> Ticket:
        """A ticket on the work for ``key``, starting ``fn`` unless that work is queued, running
        or done; ``ready=True`` records it as done without running (the result is cached)."""
        with self._guard:
            now = self._clock()
            work = self._by_key.get(key)
            fresh = work is None or work.stopping or work.state in ("error", "cancelled")
            self._make_room()
            if len(self._tickets) >= self._max_tickets:
                raise Busy(f"{self._max_tickets} job requests are already waiting; try again shortly")
            if fresh:
                if not ready and sum(w.finished is None for w in self._by_key.values()) >= self._max_pending:
                    raise Busy(f"{self._max_pending} computations are already waiting for the model; try again shortly")
                work = Work(kind, key, started=now)
                if ready:
                    work.state, work.finished = "done", now
                self._by_key[key] = work
            self._by_key.move_to_end(key)
            ticket = Ticket(f"j{next(self._ids)}", work, seen=now)
            self._tickets[ticket.id] = ticket
            if work.finished is None:
                work.tickets.add(ticket.id)
            self._forget_finished()
        if fresh and not ready:
            self._pool.submit(self._run, work, fn)
        return ticket

    def _alive(self, work: Work) -> bool:
        """Someone still waits for ``work`` (call under the guard)."""
        if self._closed:
            return False
        oldest = self._clock() - self._abandon_after
        return any(self._tickets[t].seen >= oldest for t in work.tickets if t in self._tickets)

    def _checkpoint(self, work: Work) -> None:
        """Raise :class:`Cancelled` if nobody waits for ``work``; from then on it is not reused."""
        with self._guard:
            if not self._alive(work):
                work.stopping = True
                raise Cancelled(f"nobody waits for the {work.kind} computation any more")

    def _run(self, work: Work, fn: Callable[[], Any]) -> None:
        def report(step: str, done: int, total: int) -> None:
            self._checkpoint(work)
            work.state = "running"  # the first report comes once the computation holds the model
            if done or total:  # (step, 0, 0) is only a checkpoint: keep showing the real progress
                work.step, work.done, work.total = step, done, total

        try:
            self._checkpoint(work)
            with listen(report):
                fn()
            work.state = "done"
        except Cancelled:
            work.state = "cancelled"
        except (ValueError, KeyError) as e:  # bad input: the library's own message, as the GET endpoint gives it
            work.state, work.error = "error", str(e.args[0] if e.args else e)
            work.status = 404 if isinstance(e, KeyError) else 400
        except Exception as e:  # noqa: BLE001 - the page shows what went wrong instead of a dead job
            work.state, work.error, work.status = "error", f"{type(e).__name__}: {e}", 500
        finally:
            with self._guard:
                work.finished = self._clock()
                work.tickets.clear()
                self._forget_finished()

    def get(self, ticket_id: str) -> Ticket:
        """The ticket, marked as still wanted (the page polls it while it waits)."""
        with self._guard:
            ticket = self._tickets.get(ticket_id)
            if ticket is None:
                raise KeyError(f"no job {ticket_id!r} (finished jobs are kept for a while, then forgotten)")
            ticket.seen = self._clock()
            return ticket

    def cancel(self, ticket_id: str) -> Ticket:
        """Withdraw this ticket's interest; the work stops once no ticket waits for it."""
        ticket = self.get(ticket_id)
        with self._guard:
            ticket.withdrawn = True
            ticket.work.tickets.discard(ticket.id)
        return ticket

    def wait(self, ticket_id: str, timeout: float = 60.0) -> Ticket:
        """Block until the ticket's work has finished (for tests and scripts; the page polls)."""
        ticket, end = self.get(ticket_id), time.monotonic() + timeout
        while ticket.work.finished is None and time.monotonic() < end:
            self.get(ticket_id)  # waiting counts as polling
            time.sleep(0.01)
        return ticket

    def stats(self) -> dict[str, int]:
        """Table sizes: work queued or running, finished work remembered, tickets."""
        with self._guard:
            pending = sum(w.finished is None for w in self._by_key.values())
            return {"pending": pending, "finished": len(self._by_key) - pending, "tickets": len(self._tickets)}

    def _make_room(self) -> None:
        """Forget the oldest tickets nobody can still need: withdrawn, finished, or abandoned."""
        if len(self._tickets) < self._max_tickets:
            return
        oldest = self._clock() - self._abandon_after
        for tid in [t.id for t in self._tickets.values() if t.withdrawn or t.work.finished is not None or t.seen < oldest]:
            if len(self._tickets) < self._max_tickets:
                break
            self._tickets.pop(tid).work.tickets.discard(tid)

    def _forget_finished(self) -> None:
        finished = [k for k, w in self._by_key.items() if w.finished is not None]
        for key in finished[: max(0, len(finished) - self._keep)]:
            self._by_key.pop(key)

    def shutdown(self) -> None:
        with self._guard:
            self._closed = True  # every running computation stops at its next report
        self._pool.shutdown(wait=False, cancel_futures=True)
