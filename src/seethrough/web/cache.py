"""The explorer's result cache: LRU within a byte budget, single-flight, and a model lock.

Fifty browser tabs asking for the same attribution at once must cost one computation, not
fifty: a plain LRU cache computes the result once per request that misses before the first
one finishes (benchmarks/explorer.py: all 50 of 50 concurrent cold requests). Here the first request
for a key computes it while later ones wait on that key's lock and read the stored result.
Model computations also pass one semaphore (default: one at a time), since on a CPU two
concurrent forward passes only share the same cores and both get slower.
"""
from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable


def size_of(value: Any) -> int:
    """Approximate bytes held by a cached value (bytes, str, tensors, containers of them).

    >>> size_of(b"abcd"), size_of({"a": [b"xy", "z"]})
    (4, 4)
    """
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if isinstance(value, str):
        return len(value.encode())
    if hasattr(value, "nbytes"):
        return int(value.nbytes)
    if hasattr(value, "element_size") and hasattr(value, "numel"):
        return int(value.element_size() * value.numel())
    if isinstance(value, dict):
        return sum(size_of(k) + size_of(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return sum(size_of(v) for v in value)
    return 64


@dataclass
class Cache:
    """``get(key, compute)``: the stored value, or ``compute()``'s, computed once however many
    threads ask at the same time. ``kind`` names the computation in :meth:`stats`.

    >>> c = Cache(budget=100)
    >>> c.get(("a",), lambda: b"x" * 10, kind="demo"), c.get(("a",), lambda: b"never", kind="demo")
    (b'xxxxxxxxxx', b'xxxxxxxxxx')
    >>> c.stats()["computations"], c.stats()["hits"]
    ({'demo': 1}, 1)
    """

    budget: int = 512 * 2**20
    workers: int = 1
    _items: OrderedDict = field(default_factory=OrderedDict, init=False, repr=False)
    _sizes: dict = field(default_factory=dict, init=False, repr=False)
    _bytes: int = field(default=0, init=False, repr=False)  # sum of _sizes, kept as entries come and go
    _locks: dict = field(default_factory=dict, init=False, repr=False)  # key → (lock, threads holding or awaiting it)
    _guard: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _counts: Counter = field(default_factory=Counter, init=False, repr=False)
    _computations: Counter = field(default_factory=Counter, init=False, repr=False)
    _model: threading.BoundedSemaphore | None = field(default=None, init=False, repr=False)
    _running: int = field(default=0, init=False, repr=False)  # model computations in progress

    def __post_init__(self) -> None:
        if self.budget < 0:
            raise ValueError(f"budget must be a number of bytes >= 0, got {self.budget}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1 (model computations at a time), got {self.workers}")
        self._model = threading.BoundedSemaphore(self.workers)

    def lookup(self, key: Hashable) -> tuple[bool, Any]:
        """``(True, value)`` if ``key`` is stored (counted as a hit), else ``(False, None)``."""
        with self._guard:
            if key in self._items:
                self._items.move_to_end(key)
                self._counts["hits"] += 1
                return True, self._items[key]
        return False, None

    def get(self, key: Hashable, compute: Callable[[], Any], *, kind: str = "other", model: bool = True) -> Any:
        """``model=False`` for computations that only orchestrate others (they take the model
        slot themselves, through nested ``get`` calls)."""
        found, value = self.lookup(key)
        if found:
            return value
        with self._guard:  # a key's lock lives while someone holds or waits for it, never longer
            lock, users = self._locks.get(key, (None, 0))
            lock = lock or threading.Lock()
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                found, value = self.lookup(key)  # another thread may have filled it while we waited
                if found:
                    return value
                with self._guard:
                    self._counts["misses"] += 1
                if model:
                    with self._model:
                        with self._guard:
                            self._running += 1
                        try:
                            value = compute()
                        finally:
                            with self._guard:
                                self._running -= 1
                else:
                    value = compute()
                with self._guard:
                    self._computations[kind] += 1
                    self._store(key, value)
                return value
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)

    def _store(self, key: Hashable, value: Any) -> None:
        size = size_of(value)
        if size > self.budget:
            return  # larger than the whole budget: served once, never stored
        self._bytes += size - self._sizes.get(key, 0)
        self._items[key] = value
        self._sizes[key] = size
        self._items.move_to_end(key)
        while self._bytes > self.budget:
            old, _ = self._items.popitem(last=False)
            self._bytes -= self._sizes.pop(old)
            self._counts["evictions"] += 1

    def stats(self) -> dict[str, Any]:
        """Hit/miss/eviction counters, computations per kind, entries and bytes used, model
        computations running now and keys being computed or awaited (``locks``)."""
        with self._guard:
            return {"hits": self._counts["hits"], "misses": self._counts["misses"],
                    "evictions": self._counts["evictions"], "computations": dict(self._computations),
                    "entries": len(self._items), "bytes": self._bytes, "budget": self.budget,
                    "workers": self.workers, "running": self._running, "locks": len(self._locks)}
