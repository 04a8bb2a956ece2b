"""Finished report sections kept on disk, so an interrupted or repeated ``write_report`` resumes.

Each built section is stored under ``OUT/.sections/<key>/``: its figures as image files and a
``manifest.json`` with its captions, tables, texts, build time and *identity* — the section key,
the report options (quick, seed), the seethrough version, a hash of the section's source file
and the identity of the zoo's weights (pinned SHA-256, training recipes and the CPU kernels they are trained
and run on, ``seethrough.zoo.pinned``). A rerun reuses a
stored section only when the whole identity matches. A section is written to a temporary
folder and renamed into place once complete, so a half-written one is never reused; a section
that failed is not stored at all.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from PIL import Image

from .registry import Block, Figure, Section, Table, Text

STORE = ".sections"
_FORMAT = 1
_SCALARS = (str, int, float, bool, type(None))


def identity(sec: Section, *, quick: bool, seed: int) -> dict[str, Any]:
    """What a stored section must match to be reused.

    >>> from seethrough.report import SECTIONS
    >>> ident = identity(SECTIONS["model-card"], quick=True, seed=0)
    >>> ident["section"], ident["quick"], sorted(ident["models"])[:2]
    ('model-card', True, ['efficientnet-lite0', 'lenet-digits'])
    """
    from .._version import __version__
    from ..zoo.pinned import PINNED_ENV

    return {"format": _FORMAT, "section": sec.key, "quick": bool(quick), "seed": int(seed), "seethrough": __version__,
            "code": _code_hash(sec.build), "models": _zoo_identity(), "kernels": dict(PINNED_ENV)}


def _code_hash(fn: Any) -> str:
    try:
        return hashlib.sha256(Path(inspect.getsourcefile(fn)).read_bytes()).hexdigest()[:16]
    except (TypeError, OSError):  # built in a REPL: no file to hash, the qualified name must do
        return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _zoo_identity() -> dict[str, str]:
    from ..zoo import efficientnet, lenet, logreg, tabular, twins

    def digest(obj: Any) -> str:
        return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]

    return {"efficientnet-lite0": efficientnet.WEIGHTS_SHA256[:16], "lenet-digits": digest(lenet._recipe()),
            "logreg-digits": digest([logreg.LOGREG_L2, logreg.MIN_TEST_ACCURACY]),
            "lenet-digits-permuted": digest(twins._PERMUTED_CONFIG),
            "mlp-breast-cancer": digest([tabular._recipe(), tabular.MIN_TEST_ACCURACY])}


def save_image(image: Any, path: Path) -> Path:
    """Write a figure's picture (PIL image, list of frames → GIF, matplotlib figure, or a stored file) to ``path``."""
    if isinstance(image, Path):  # a figure kept from an earlier run
        path = path.with_suffix(image.suffix)
        shutil.copyfile(image, path)
        return path
    if isinstance(image, list):  # frames of an animation
        path = path.with_suffix(".gif")
        image[0].save(path, save_all=True, append_images=image[1:], duration=600, loop=0)
        return path
    if isinstance(image, Image.Image):
        image.convert("RGB").save(path, optimize=True)
        return path
    if hasattr(image, "savefig"):  # a matplotlib figure
        import matplotlib.pyplot as plt

        image.savefig(path, dpi=80, bbox_inches="tight")
        plt.close(image)
        return path
    raise TypeError(f"a report figure needs a PIL image, frames or a matplotlib figure, got {type(image).__name__}")


def _plain(value: Any) -> Any:
    # The page prints every value with str(); storing str() of anything that is not a JSON
    # scalar keeps a reused section's page identical to a freshly built one.
    return value if isinstance(value, _SCALARS) else str(value)


def _record(block: Block, n: int, folder: Path) -> dict[str, Any]:
    prov = {k: _plain(v) for k, v in block.provenance.items()} if hasattr(block, "provenance") else {}
    if isinstance(block, Figure):
        path = save_image(block.image, folder / f"{n}.png")
        return {"type": "figure", "title": block.title, "file": path.name, "caption": block.caption, "provenance": prov}
    if isinstance(block, Table):
        return {"type": "table", "title": block.title, "columns": [_plain(c) for c in block.columns],
                "rows": [[_plain(v) for v in row] for row in block.rows], "caption": block.caption, "provenance": prov}
    if isinstance(block, Text):
        return {"type": "text", "text": block.text}
    raise TypeError(f"unknown report block {type(block).__name__}")


def _block(rec: dict[str, Any], folder: Path) -> Block:
    if rec["type"] == "figure":
        return Figure(rec["title"], folder / rec["file"], rec["caption"], rec["provenance"])
    if rec["type"] == "table":
        return Table(rec["title"], rec["columns"], rec["rows"], rec["caption"], rec["provenance"])
    return Text(rec["text"])


def store(root: Path, key: str, ident: dict[str, Any], blocks: list[Block], seconds: float) -> list[Block]:
    """Keep a built section under ``root/key`` (complete or not at all); return its blocks as stored.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> kept = store(root, "demo", {"v": 1}, [Text("hello"), Table("t", ["a"], [[(1, 2)]])], 0.5)
    >>> load(root, "demo", {"v": 1})[0][1].rows, load(root, "demo", {"v": 2})
    ([['(1, 2)']], None)
    """
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{key}.", suffix=".tmp", dir=root))
    try:
        records = [_record(b, n, tmp) for n, b in enumerate(blocks)]
        manifest = {"identity": ident, "seconds": seconds, "blocks": records}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        final = root / key
        if final.exists():  # a rename cannot replace a non-empty folder: move the old one aside first
            old = root / f"{key}.{uuid.uuid4().hex[:8]}.old"
            os.replace(final, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [_block(r, final) for r in records]


def load(root: Path, key: str, ident: dict[str, Any]) -> tuple[list[Block], float] | None:
    """``(blocks, seconds it took to build)`` of a stored section with this identity, else ``None``."""
    folder = root / key
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("identity") != ident:
        return None
    try:
        blocks = [_block(r, folder) for r in manifest["blocks"]]
    except (KeyError, TypeError):
        return None
    if any(isinstance(b, Figure) and not b.image.is_file() for b in blocks):
        return None
    return blocks, float(manifest.get("seconds", 0.0))


def clean(root: Path) -> None:
    """Remove what an interrupted run left half-written (``*.tmp`` and ``*.old`` folders)."""
    if root.is_dir():
        for p in root.iterdir():
            if p.is_dir() and p.suffix in (".tmp", ".old"):
                shutil.rmtree(p, ignore_errors=True)
