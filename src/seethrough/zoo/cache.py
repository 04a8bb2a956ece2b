"""The weight cache and its checksums: every cached file carries its recipe and a SHA-256 of its tensors.

A cached file is the model's state dict plus one entry, ``"__seethrough__"``, holding the
identity of the recipe that trained it and the SHA-256 of the tensors (names, dtypes, shapes
and bytes). Loading checks both: a file with flipped bytes, a truncated file, a valid model of
another recipe copied over it, or a file from before checksums all fail the check, and the
model is retrained (one warning line) and written again atomically. A freshly trained model
that fails its recipe's quality check (e.g. held-out accuracy) is returned but never cached.
Bundled and user files are checked against a known SHA-256 of the file's bytes instead
(:func:`verify_sha256`).
"""
from __future__ import annotations

import functools
import hashlib
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

from .pinned import PINNED_ENV

META_KEY = "__seethrough__"
_FORMAT = 1


class ChecksumError(ValueError):
    """A file's SHA-256 is not the one it must have (corrupt, truncated or replaced)."""


class CacheWarning(UserWarning):
    """A cached model was not usable (corrupt, replaced, or below its quality bar) and is rebuilt."""


def cache_dir() -> Path:
    """Directory for cached weights: ``$SEETHROUGH_CACHE`` or the user cache dir.

    A ``$SEETHROUGH_CACHE`` that names an existing file is refused here, in one line, rather
    than failing later with a bare ``FileExistsError``.

    >>> isinstance(cache_dir(), Path)
    True
    """
    env = os.environ.get("SEETHROUGH_CACHE")
    if env:
        path = Path(env).expanduser()
        if path.exists() and not path.is_dir():
            raise ValueError(f"SEETHROUGH_CACHE={env} is a file, not a folder: point it at a folder "
                             "(created if missing) or unset it to use the user cache folder")
        return path
    import platformdirs

    return Path(platformdirs.user_cache_dir("seethrough"))


def state_sha256(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's tensors: names, dtypes, shapes and raw bytes, in name order.

    >>> a = {"w": torch.zeros(2, 3)}
    >>> state_sha256(a) == state_sha256({"w": torch.zeros(2, 3)}), state_sha256(a) == state_sha256({"w": torch.zeros(3, 2)})
    (True, False)
    """
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks.

    >>> p = Path(tempfile.mkdtemp()) / "x"; _ = p.write_bytes(b"abc")
    >>> file_sha256(p)[:16]
    'ba7816bf8f01cfea'
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@functools.lru_cache(maxsize=16)
def _file_sha256_memo(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(path)


def verify_sha256(path: str | Path, expected: str, *, hint: str = "") -> None:
    """Raise :class:`ChecksumError` (one line, naming the file, then ``hint``) unless ``path`` has SHA-256 ``expected``.

    ``expected`` is 64 hex digits (case-insensitive); anything else is a ``ValueError``. The hash
    is remembered per (path, size, mtime), so a bundled file is read once per process.

    >>> p = Path(tempfile.mkdtemp()) / "x"; _ = p.write_bytes(b"abc")
    >>> verify_sha256(p, "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD")
    >>> verify_sha256(p, "0" * 64)
    Traceback (most recent call last):
    ...
    seethrough.zoo.cache.ChecksumError: ... has SHA-256 ba7816bf8f01…, expected 000000000000…: the file is corrupt or not the one expected
    """
    if not isinstance(expected, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", expected.strip()):
        raise ValueError(f"a SHA-256 is 64 hexadecimal digits, got {expected!r}")
    path = Path(path)
    st = path.stat()
    got = _file_sha256_memo(str(path.resolve()), st.st_size, st.st_mtime_ns)
    if got != expected.strip().lower():
        raise ChecksumError(f"{path} has SHA-256 {got[:12]}…, expected {expected.strip().lower()[:12]}…: "
                            f"the file is corrupt or not the one expected" + (f"; {hint}" if hint else ""))


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """``torch.save(state, path)`` through a temporary file and a rename.

    Readers in parallel processes see either the old file or the complete new one, never a
    partial write; the temporary file is removed if anything fails (also on Ctrl-C).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checked(state: dict[str, torch.Tensor], path: Path, recipe: dict[str, Any]) -> None:
    """Write ``state`` atomically with its recipe identity and tensor SHA-256 embedded.

    >>> p = Path(tempfile.mkdtemp()) / "m.pt"
    >>> save_checked({"w": torch.ones(2)}, p, {"name": "doc"})
    >>> load_checked(p, {"name": "doc"})[0]["w"].tolist()
    [1.0, 1.0]
    """
    if META_KEY in state:
        raise ValueError(f"a state dict must not have a key named {META_KEY!r}")
    # the kernels it was trained on: a file trained before a pin was added is another model (zoo.pinned)
    meta = {"format": _FORMAT, "recipe": recipe, "kernels": PINNED_ENV, "sha256": state_sha256(state)}
    save_atomic({**state, META_KEY: meta}, path)


def load_checked(path: Path, recipe: dict[str, Any]) -> tuple[dict[str, torch.Tensor] | None, str]:
    """``(state, "")`` when ``path`` holds an intact file of ``recipe``, else ``(None, why not)``.

    Never raises for a bad file: the reason is a short phrase for the one-line warning.

    >>> p = Path(tempfile.mkdtemp()) / "m.pt"
    >>> save_checked({"w": torch.ones(2)}, p, {"name": "a"})
    >>> load_checked(p, {"name": "b"})[1]
    'it was written by another recipe'
    """
    if not path.exists():
        return None, "it is missing"
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, garbled or not a torch file at all: the cache is rebuilt
        return None, f"it cannot be read ({type(e).__name__})"
    meta = obj.pop(META_KEY, None) if isinstance(obj, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        return None, "it has no checksum (written by an older seethrough or by hand)"
    if meta.get("recipe") != recipe:
        return None, "it was written by another recipe"
    if not all(isinstance(v, torch.Tensor) for v in obj.values()) or state_sha256(obj) != meta.get("sha256"):
        return None, "its checksum does not match (the file is corrupt)"
    if meta.get("kernels") != PINNED_ENV:
        return None, "it was trained on other CPU kernels (by an older seethrough)"
    return obj, ""


def cached_state(
    path: Path,
    recipe: dict[str, Any],
    train: Callable[[], dict[str, torch.Tensor]],
    check: Callable[[dict[str, torch.Tensor]], str | None] | None = None,
) -> dict[str, torch.Tensor]:
    """The state dict cached at ``path`` for ``recipe``, or a fresh ``train()`` saved there.

    A file that fails :func:`load_checked` is retrained with one :class:`CacheWarning` (a
    missing file is retrained silently). ``check(state)`` returns ``None`` for a model good
    enough to cache, else why not: such a model is returned with a warning and not cached.

    >>> p = Path(tempfile.mkdtemp()) / "m.pt"
    >>> a = cached_state(p, {"name": "doc"}, lambda: {"w": torch.ones(2)})
    >>> b = cached_state(p, {"name": "doc"}, lambda: 1 / 0)   # read back, not retrained
    >>> torch.equal(a["w"], b["w"])
    True
    """
    state, why = load_checked(path, recipe)
    if state is not None:
        return state
    if path.exists():
        warnings.warn(f"cached model {path} is not used: {why}; retraining it", CacheWarning, stacklevel=3)
    # One torch thread while training: CPU kernels block their sums by thread count, so a model trained
    # with two threads differs from one trained with one (lenet-digits: weights 0.3 apart). Pinned, every
    # machine trains the same weights, and the numbers the docs quote from them hold everywhere.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        state = train()
    finally:
        torch.set_num_threads(threads)
    problem = check(state) if check is not None else None
    if problem:
        warnings.warn(f"the freshly trained {path.name} is not cached: {problem}", CacheWarning, stacklevel=3)
        return state
    save_checked(state, path, recipe)
    return state
