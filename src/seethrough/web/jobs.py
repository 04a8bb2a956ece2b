"""Slow computations as jobs: an id, progress (step/total, elapsed), cancel, result in the cache.

A job runs in a worker thread under :func:`seethrough.progress.listen`, so the library's own
loops (batches, optimisation steps, attack iterations, t-SNE iterations) report into it; a
cancelled job's listener raises :class:`seethrough.progress.Cancelled` at the next report.
The same request asked twice while running gives the same job.
"""
from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

from ..progress import Cancelled, listen


@dataclass
class Job:
    id: str
    kind: str
    key: Hashable
    state: str = "queued"  # queued → running → done | error | cancelled
    step: str = ""
    done: int = 0
    total: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    error: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    def as_dict(self) -> dict[str, Any]:
        end = self.finished if self.finished is not None else time.monotonic()
        return {"id": self.id, "kind": self.kind, "state": self.state, "step": self.step, "done": self.done,
                "total": self.total, "elapsed": round(end - self.started, 2), "error": self.error}


class Jobs:
    """Run ``fn`` in the background once per ``key``; :meth:`get` reports its progress.

    >>> jobs = Jobs()
    >>> j = jobs.submit("demo", ("k",), lambda: 42)
    >>> jobs.wait(j.id).state
    'done'
    >>> jobs.submit("demo", ("k",), lambda: 0).id == j.id  # finished jobs are looked up, not rerun
    True
    """

    def __init__(self, threads: int = 4, keep: int = 200):
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="seethrough-job")
        self._jobs: dict[str, Job] = {}
        self._by_key: dict[Hashable, str] = {}
        self._ids = itertools.count(1)
        self._guard = threading.Lock()
        self._keep = keep

    def submit(self, kind: str, key: Hashable, fn: Callable[[], Any]) -> Job:
        with self._guard:
            known = self._by_key.get(key)
            if known is not None and self._jobs[known].state not in ("error", "cancelled"):
                return self._jobs[known]
            job = Job(f"j{next(self._ids)}", kind, key)
            self._jobs[job.id], self._by_key[key] = job, job.id
            self._forget_old()
        self._pool.submit(self._run, job, fn)
        return job

    def _run(self, job: Job, fn: Callable[[], Any]) -> None:
        def report(step: str, done: int, total: int) -> None:
            if job.cancel.is_set():
                raise Cancelled(f"job {job.id} cancelled")
            job.step, job.done, job.total = step, done, total

        job.state = "running"
        try:
            if job.cancel.is_set():
                raise Cancelled(f"job {job.id} cancelled")
            with listen(report):
                fn()
            job.state = "done"
        except Cancelled:
            job.state = "cancelled"
        except (ValueError, KeyError) as e:  # bad input: the library's own message, as the GET endpoint gives it
            job.state, job.error = "error", str(e.args[0] if e.args else e)
        except Exception as e:  # noqa: BLE001 - the page shows what went wrong instead of a dead job
            job.state, job.error = "error", f"{type(e).__name__}: {e}"
        finally:
            job.finished = time.monotonic()

    def get(self, job_id: str) -> Job:
        with self._guard:
            if job_id not in self._jobs:
                raise KeyError(f"no job {job_id!r} (finished jobs are kept for a while, then forgotten)")
            return self._jobs[job_id]

    def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        job.cancel.set()
        return job

    def wait(self, job_id: str, timeout: float = 60.0) -> Job:
        """Block until the job has finished (for tests and scripts; the page polls instead)."""
        job, end = self.get(job_id), time.monotonic() + timeout
        while job.finished is None and time.monotonic() < end:
            time.sleep(0.01)
        return job

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.finished is not None]
        for j in finished[: max(0, len(self._jobs) - self._keep)]:
            self._jobs.pop(j.id)
            if self._by_key.get(j.key) == j.id:
                self._by_key.pop(j.key)

    def shutdown(self) -> None:
        for j in list(self._jobs.values()):
            j.cancel.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
