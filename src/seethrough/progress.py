"""Progress listeners: let a caller follow (and cancel) a long library call.

The slow loops (batches, optimisation steps, attack iterations, t-SNE) call
:func:`report` as they go. Nobody listens by default, and then a report costs one
context-variable lookup. A web server running a call as a background job wraps it in
:func:`listen` to show "step/total" and, to cancel it, has the callback raise
:class:`Cancelled`.

The listener lives in a :class:`contextvars.ContextVar`, so it belongs to the thread (or
asyncio task) that set it: jobs running side by side in different threads each hear
only their own reports. Reports are independent of the terminal bars: ``progress=False``
hides a bar but the reports still happen.

``desc`` names the loop (the same text as its tqdm bar). Loops nest - an attack reports
its batches as ``"pgd attack"`` and, inside each batch, its iterations as ``"pgd"`` - so a
listener usually keeps the latest report per ``desc``; an inner loop starts again from 1
in every batch. ``total`` is 0 when the length is unknown (an iterable of batches).

>>> seen = []
>>> with listen(lambda desc, done, total: seen.append((desc, done, total))):
...     for k in range(3):
...         report("demo", k + 1, 3)
>>> seen
[('demo', 1, 3), ('demo', 2, 3), ('demo', 3, 3)]
>>> report("demo", 1, 3)  # nobody listens: nothing happens
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator, Optional

Listener = Callable[[str, int, int], None]

_LISTENER: ContextVar[Optional[Listener]] = ContextVar("seethrough_progress_listener", default=None)


class Cancelled(Exception):
    """Raised by a listener to stop the work; the library lets it propagate and restores
    the model on the way out, as for any other error.

    >>> def stop(desc, done, total):
    ...     raise Cancelled(f"stopped at {done}/{total}")
    >>> with listen(stop):
    ...     report("demo", 1, 3)
    Traceback (most recent call last):
    ...
    seethrough.progress.Cancelled: stopped at 1/3
    """


@contextmanager
def listen(callback: Optional[Listener]) -> Iterator[None]:
    """Send this context's reports to ``callback(desc, done, total)`` inside the block;
    the previous listener (if any) is restored on exit, also after an exception.
    ``None`` silences reports inside the block.

    >>> with listen(print):
    ...     report("outer", 1, 2)
    ...     with listen(None):
    ...         report("hidden", 1, 1)
    ...     report("outer", 2, 2)
    outer 1 2
    outer 2 2
    """
    token = _LISTENER.set(callback)
    try:
        yield
    finally:
        _LISTENER.reset(token)


def report(desc: str, done: int, total: int) -> None:
    """Tell the current listener that ``done`` of ``total`` units of ``desc`` are finished.

    >>> with listen(lambda *a: print(*a)):
    ...     report("batches", 8, 10)
    batches 8 10
    """
    callback = _LISTENER.get()
    if callback is not None:
        callback(desc, done, total)
