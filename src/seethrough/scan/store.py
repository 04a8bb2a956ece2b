"""Stored scans: a folder with ``manifest.json`` and the merged accumulator states in one ``.npz``.

Layout (``format: seethrough-scan``, ``version: 1``)::

    scan/
      manifest.json      what was scanned and how far: model hash, data identity, layers,
                         accumulators and options, chunking, finished chunk ids, counts, skipped files
      state-<gen>.npz    every accumulator's state, keys "<layer>|<accumulator>|<field>"

Every save writes a new ``state-<gen>.npz`` and then replaces ``manifest.json`` atomically
(write to a temporary file, ``os.replace``); only then is the previous state file removed.
So an interrupted save, a crash or a full disk never leaves a manifest pointing at a broken
state: the folder always holds the last complete save, and a rerun resumes from it.
"""
from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .accumulators import from_state

FORMAT, VERSION, MANIFEST = "seethrough-scan", 1, "manifest.json"


class StoreError(OSError):
    """Writing a scan's folder failed (a full disk, no permission): the previous save is intact."""


def _write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` durably (the one place that writes bytes: tests make it fail)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _atomic(path: Path, data: bytes, done: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        _write(tmp, data)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        why = "the disk is full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
        raise StoreError(e.errno, f"cannot store the scan in {path.parent}: {why} ({os.strerror(e.errno) if e.errno else e}); "
                                  f"the results stored before are intact ({done}); free space and rerun to resume") from None


def read_manifest(folder: str | os.PathLike) -> dict | None:
    """The manifest of a stored scan, or None when ``folder`` holds none."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        return None
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is not a readable scan manifest ({e}); delete the folder or choose another") from None
    if m.get("format") != FORMAT:
        raise ValueError(f"{path} is not a seethrough scan manifest (format {m.get('format')!r})")
    if m.get("version", 0) > VERSION:
        raise ValueError(f"{path} was written by a newer seethrough (version {m['version']}); upgrade to read it")
    return m


def save(folder: str | os.PathLike, manifest: dict, states: dict[tuple[str, str], Any]) -> dict:
    """Store ``states`` (``{(layer, accumulator): obj}``) and ``manifest``; returns the manifest written."""
    import io

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(e.errno, f"cannot create the scan folder {folder}: {e.strerror or e}") from None
    old = read_manifest(folder)
    gen = (old or {}).get("generation", 0) + 1
    arrays = {}
    for (layer, name), acc in states.items():
        for field, value in acc.state().items():
            arrays[f"{layer}|{name}|{field}"] = np.asarray(value)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    done = f"{len((old or {}).get('finished', []))} of {manifest['n_chunks']} chunks" if old else "nothing was stored yet"
    state_name = f"state-{gen}.npz"
    _atomic(folder / state_name, buf.getvalue(), done)
    manifest = {**manifest, "format": FORMAT, "version": VERSION, "generation": gen, "state": state_name}
    try:
        _atomic(folder / MANIFEST, json.dumps(manifest, indent=1).encode(), done)
    except StoreError:
        (folder / state_name).unlink(missing_ok=True)
        raise
    if old and old.get("state") and old["state"] != state_name:
        (folder / old["state"]).unlink(missing_ok=True)
    return manifest


def load_states(folder: str | os.PathLike, manifest: dict) -> dict[tuple[str, str], Any]:
    """The accumulators stored with ``manifest``, rebuilt with ``from_state``."""
    path = Path(folder) / manifest["state"]
    try:
        with np.load(path, allow_pickle=False) as z:
            grouped: dict[tuple[str, str], dict] = {}
            for key in z.files:
                layer, name, field = key.rsplit("|", 2)
                grouped.setdefault((layer, name), {})[field] = z[key]
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read the scan state {path} ({e}); delete the folder and scan again") from None
    return {k: from_state(v) for k, v in grouped.items()}
