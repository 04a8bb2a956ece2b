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

Bars people see (issue 19, item 7). Every slow loop draws its bar through :func:`bar`, and one
rule (:func:`visible`) decides whether it is drawn:

1. ``progress=False`` (the argument of the library call) never draws;
2. otherwise a forced setting wins: the CLI's ``seethrough --quiet ...`` (:func:`force`), then the
   environment variable ``SEETHROUGH_PROGRESS`` (``1``/``true``/``on`` draws, ``0``/``false``/``off``
   does not);
3. otherwise the bar is drawn when stderr is a terminal or the code runs inside a Jupyter kernel,
   and not otherwise: CI logs and redirected stderr stay clean unless asked
   (``SEETHROUGH_PROGRESS=1``).

In a Jupyter kernel the bar is tqdm's notebook widget when ipywidgets is installed (tqdm's own
text bar otherwise, which the notebook shows too); elsewhere tqdm's text bar on stderr. Why not
``sys.stderr.isatty()`` alone, as before: a notebook's stderr is no TTY, so bars never showed there.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable, Iterable, Iterator, Optional

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


ENV = "SEETHROUGH_PROGRESS"
_ON, _OFF = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}
_FORCED: Optional[bool] = None


def force(on: Optional[bool]) -> None:
    """Force every bar on (``True``) or off (``False``), or hand back to the environment and the
    terminal (``None``). The CLI calls ``force(False)`` for ``--quiet`` and ``force(None)`` otherwise,
    on every invocation.

    >>> force(False); visible(True)
    False
    >>> force(None)
    """
    global _FORCED
    if on is not None and not isinstance(on, bool):
        raise TypeError(f"force takes True, False or None, got {on!r}")
    _FORCED = on


def in_notebook() -> bool:
    """True inside a Jupyter (IPython) kernel. IPython is not imported for this: outside a kernel
    it is either not loaded at all or its shell has no ``IPKernelApp`` (a plain IPython terminal
    has a TTY anyway).

    >>> in_notebook()
    False
    """
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    shell = get() if callable(get) else None
    if shell is None:
        return False
    try:
        return "IPKernelApp" in shell.config
    except Exception:  # an unusual shell without a config: not a kernel we know
        return False


def visible(progress: bool = True, stream: Any = None) -> bool:
    """Whether a bar is drawn: the rule in the module docstring. ``stream`` defaults to ``sys.stderr``.

    >>> import io
    >>> visible(True, io.StringIO()), visible(False)
    (False, False)
    """
    if not progress:
        return False
    if _FORCED is not None:
        return _FORCED
    env = os.environ.get(ENV, "").strip().lower()
    if env in _ON:
        return True
    if env in _OFF:
        return False
    stream = sys.stderr if stream is None else stream
    try:
        tty = bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        tty = False
    return tty or in_notebook()


def bar_class() -> type:
    """tqdm's notebook widget inside a Jupyter kernel with ipywidgets installed, its text bar otherwise.

    >>> bar_class().__module__
    'tqdm.std'
    """
    if in_notebook() and importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.notebook import tqdm as notebook_tqdm

        return notebook_tqdm
    from tqdm.std import tqdm as text_tqdm

    return text_tqdm


def bar(iterable: Optional[Iterable] = None, *, desc: str = "", total: Optional[int] = None, progress: bool = True,
        **options: Any):
    """A tqdm bar for a slow loop, drawn when :func:`visible` says so (silent, and nearly free, when
    not). ``options`` go to tqdm (``leave``, ``unit``, ``delay``, ``initial``...). Use it as tqdm:
    iterate over it, or ``update(n)`` and ``close()``. It does not :func:`report`: loops report
    themselves, bar or not.

    >>> with bar(range(3), desc="demo", progress=False) as b:
    ...     sum(b)
    3
    """
    options.setdefault("leave", False)
    # Text bars go to stderr; dynamic_ncols follows a terminal resized while it runs.
    return bar_class()(iterable, desc=desc, total=total, disable=not visible(progress), dynamic_ncols=True, **options)
