"""Data sources for scans: a folder of images, a tensor, a ``Dataset`` or ``DataLoader``, and bundled sets.

A source is indexable: ``len(src)`` examples, ``src[i] -> (x_i, label or None, name)`` with ``x_i``
the preprocessed input (images in [0, 1]), and ``src.identity`` a stable hash string that keys
stored scans. The engine reads batches with :meth:`Source.read`, which returns the readable
examples and the ``(name, reason)`` of the unreadable ones, so a broken file in a folder of
100,000 images is skipped and listed instead of stopping the scan. Global example ids are
the indices into the source: they do not move when a file is skipped.

>>> src = source(torch.rand(5, 1, 8, 8))
>>> len(src), src[2][0].shape, src[2][2]
(5, torch.Size([1, 8, 8]), '2')
"""
from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..deprecation import renamed


@dataclass
class Batch:
    """What :meth:`Source.read` returns: ``x (B, ...)`` of the readable examples (``None`` when none
    is), their global ``ids (B,)`` and ``labels (B,)`` (-1 where unknown), and ``skipped``
    ``[(name, reason)]`` for the unreadable ones."""

    x: torch.Tensor | None
    ids: torch.Tensor
    labels: torch.Tensor
    skipped: list[tuple[str, str]] = field(default_factory=list)


class Source:
    """Base class: subclasses define ``__len__``, ``item(i) -> (x, label|None)``, ``name(i)``, ``identity``."""

    classes: list[str] | None = None
    spec: dict | None = None  # how to rebuild the source from a stored scan's manifest (None: cannot)
    batch_hint: int | None = None

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def item(self, i: int) -> tuple[torch.Tensor, int | None]:  # pragma: no cover - abstract
        raise NotImplementedError

    def name(self, i: int) -> str:
        return str(i)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int | None, str]:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not -len(self) <= i < len(self):
            raise IndexError(f"example {i!r} is out of range: this source has {len(self)} examples (0..{len(self) - 1})")
        i = int(i) % len(self)
        x, y = self.item(i)
        return x, y, self.name(i)

    def read(self, ids: Sequence[int]) -> Batch:
        """The examples ``ids`` as one batch; unreadable ones are listed in ``skipped``."""
        xs, ok, labels, skipped = [], [], [], []
        for i in ids:
            try:
                x, y = self.item(int(i))
            except (ValueError, OSError) as e:
                skipped.append((self.name(int(i)), str(e).splitlines()[0] if str(e) else type(e).__name__))
                continue
            xs.append(x)
            ok.append(int(i))
            labels.append(-1 if y is None else int(y))
        return Batch(torch.stack(xs) if xs else None, torch.tensor(ok, dtype=torch.int64),
                     torch.tensor(labels, dtype=torch.int64), skipped)


def _sha(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()[:32]


def _tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().cpu().contiguous()
    return f"{t.dtype}{tuple(t.shape)}".encode() + t.reshape(-1).view(torch.uint8).numpy().tobytes()


class TensorSource(Source):
    """A tensor ``(N, ...)`` (and optional labels ``(N,)``): batches are slices, the identity a hash of the bytes."""

    def __init__(self, x: torch.Tensor, labels: torch.Tensor | Sequence[int] | None = None, *,
                 classes: Sequence[str] | None = None, identity: str | None = None, spec: dict | None = None):
        if not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[0] == 0:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"a tensor data source must be a batch (N, ...) with N >= 1, got {got}")
        if labels is not None:
            labels = torch.as_tensor(labels, dtype=torch.int64)
            if labels.shape != (x.shape[0],):
                raise ValueError(f"labels must have one entry per example ({x.shape[0]}), got shape {tuple(labels.shape)}")
        self.x, self.labels = x.detach().cpu(), labels
        self.classes = list(classes) if classes is not None else None
        self.identity = identity or "tensor:" + _sha(_tensor_bytes(self.x), b"" if labels is None else _tensor_bytes(labels))
        self.spec = spec

    def __len__(self) -> int:
        return self.x.shape[0]

    def item(self, i: int) -> tuple[torch.Tensor, int | None]:
        return self.x[i], None if self.labels is None else int(self.labels[i])

    def read(self, ids: Sequence[int]) -> Batch:
        idx = torch.as_tensor(list(ids), dtype=torch.int64)
        contiguous = len(idx) and bool((idx == torch.arange(int(idx[0]), int(idx[0]) + len(idx))).all())
        x = self.x[int(idx[0]):int(idx[0]) + len(idx)] if contiguous else self.x[idx]
        y = self.labels[idx] if self.labels is not None else torch.full((len(idx),), -1, dtype=torch.int64)
        return Batch(x, idx, y)


class DatasetSource(Source):
    """A map-style ``torch.utils.data.Dataset`` whose items are ``x`` or ``(x, label, ...)``.

    The identity is the class name, the length and a hash of three items (first, middle, last):
    pass ``identity=`` when the data can change behind the same class and length.
    """

    def __init__(self, dataset: Any, *, preprocess: Callable | None = None, identity: str | None = None,
                 batch_hint: int | None = None):
        if isinstance(dataset, torch.utils.data.IterableDataset) or not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise ValueError(f"a {type(dataset).__name__} has no length or indexing: a scan splits the data into "
                             "chunks by index, so give a map-style Dataset (with __len__ and __getitem__), a tensor or a folder")
        if len(dataset) == 0:
            raise ValueError("the dataset is empty: give at least one example")
        self.dataset, self.preprocess, self.batch_hint = dataset, preprocess, batch_hint
        self.classes = list(getattr(dataset, "classes", None) or []) or None
        n = len(dataset)
        if identity is None:
            probes = [self.item(i)[0] for i in sorted({0, n // 2, n - 1})]
            identity = "dataset:" + _sha(type(dataset).__qualname__, str(n), *map(_tensor_bytes, probes))
        self.identity = identity

    def __len__(self) -> int:
        return len(self.dataset)

    def item(self, i: int) -> tuple[torch.Tensor, int | None]:
        got = self.dataset[i]
        x, y = (got[0], got[1] if len(got) > 1 else None) if isinstance(got, (tuple, list)) else (got, None)
        if self.preprocess is not None and not isinstance(x, torch.Tensor):
            x = self.preprocess(x)
            x = x[0] if x.dim() == 4 else x
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"dataset item {i} is a {type(x).__name__}, not a tensor: pass preprocess= to turn it into one")
        if isinstance(y, torch.Tensor):
            y = int(y) if y.numel() == 1 else None
        return x, (int(y) if isinstance(y, (int, np.integer)) else None)


class FolderSource(Source):
    """Every image under ``root`` (recursive, any format PIL reads), through ``preprocess``.

    Files are sorted by relative path; hidden files and folders are left out, and so are files whose
    suffix is not in ``suffixes`` when it is given (default: every file is tried). With sub-folders,
    an image's label is the index of its top-level sub-folder (sorted), ``classes`` their names.
    A file that cannot be read is skipped by :meth:`read` and listed with the reason. The identity
    hashes the relative paths, sizes and modification times, and the preprocessing.
    """

    def __init__(self, root: str | os.PathLike, preprocess: Callable | None = None, *, suffixes: Sequence[str] | None = None):
        from ..zoo import Preprocess

        self.root = Path(root).expanduser().resolve()
        if not self.root.is_dir():
            raise ValueError(f"no such folder: {root} (give a folder of images)")
        self.preprocess = preprocess or Preprocess()
        self.files = sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*")
                            if p.is_file() and not any(s.startswith(".") for s in p.relative_to(self.root).parts)
                            and (suffixes is None or p.suffix.lower() in suffixes))
        if not self.files:
            raise ValueError(f"the folder {root} holds no files: give a folder of images")
        tops = sorted({f.split("/")[0] for f in self.files if "/" in f})
        self.classes = tops or None
        self._label = {c: k for k, c in enumerate(tops)}
        stats = "\n".join(f"{f}\t{(self.root / f).stat().st_size}\t{(self.root / f).stat().st_mtime_ns}" for f in self.files)
        self.identity = "folder:" + _sha(stats, repr(self.preprocess))
        self.spec = {"kind": "folder", "root": str(self.root), "preprocess": _preprocess_spec(self.preprocess),
                     "suffixes": list(suffixes) if suffixes is not None else None}

    def __len__(self) -> int:
        return len(self.files)

    def name(self, i: int) -> str:
        return self.files[i]

    def item(self, i: int) -> tuple[torch.Tensor, int | None]:
        from ..zoo import read_image

        rel = self.files[i]
        x = self.preprocess(read_image(self.root / rel))  # ValueError on an unreadable file
        label = self._label.get(rel.split("/")[0]) if "/" in rel else None
        return x[0] if x.dim() == 4 else x, label


def _preprocess_spec(prep: Callable) -> dict | None:
    from dataclasses import asdict, is_dataclass

    from ..zoo import Preprocess

    if isinstance(prep, Preprocess) and is_dataclass(prep):
        d = asdict(prep)
        d["interpolation"] = int(d["interpolation"])
        return d
    return None


FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist package
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


class IdxSource(Source):
    """An MNIST-format (idx) image set, decompressed once into the cache and read a batch at a time
    (``os.pread``: no mapping, so memory stays O(batch) however much of the file a scan reads);
    images are resized to ``size`` (bilinear) in [0, 1]. ``n``: only the first ``n`` examples."""

    def __init__(self, images: Path, labels: Path, *, size: int | None, classes: list[str], name: str, n: int | None = None):
        for p in (images, labels):
            if not p.exists():
                raise ValueError(f"{p} is missing: install Debian's dataset-fashion-mnist (make datasets, "
                                 "or apt-get install dataset-fashion-mnist)")
        self._paths, self.size, self.classes = (images, labels), size, classes
        self._x, self._y = _IdxFile(_idx_raw(images)), _IdxFile(_idx_raw(labels))
        total = self._x.shape[0]
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= total):
            raise ValueError(f"n must be an int in 1..{total}, got {n!r}")
        self.n = total if n is None else n
        self.identity = f"{name}:{size}" + ("" if n is None else f":{n}")
        self.spec = {"kind": "fashion-mnist", "split": name.split(":")[-1], "size": size, "n": n}

    def __len__(self) -> int:
        return self.n

    def _images(self, idx: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(self._x.rows(idx).astype(np.float32) / 255.0).unsqueeze(1)
        if self.size and self.size != x.shape[-1]:
            x = torch.nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False).clamp_(0, 1)
        return x

    def item(self, i: int) -> tuple[torch.Tensor, int | None]:
        return self._images(np.array([i]))[0], int(self._y.rows(np.array([i]))[0])

    def read(self, ids: Sequence[int]) -> Batch:
        idx = np.asarray(list(ids), dtype=np.int64)
        return Batch(self._images(idx), torch.from_numpy(idx.copy()), torch.from_numpy(self._y.rows(idx).astype(np.int64)))


class _IdxFile:
    """Rows of an uncompressed idx file, read with ``os.pread`` (picklable: it holds the path only)."""

    def __init__(self, path: Path):
        self.path = path
        with open(path, "rb") as f:
            head = f.read(4)
            ndim = head[3]
            self.shape = tuple(int.from_bytes(f.read(4), "big") for _ in range(ndim))
        self.offset = 4 + 4 * ndim
        self.row = int(np.prod(self.shape[1:], dtype=np.int64)) if len(self.shape) > 1 else 1

    def rows(self, idx: np.ndarray) -> np.ndarray:
        out = np.empty((len(idx), *self.shape[1:]), dtype=np.uint8)
        flat = out.reshape(len(idx), self.row)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            k = 0
            while k < len(idx):  # one read per run of consecutive ids (a scan's batches are one run)
                j = k + 1
                while j < len(idx) and idx[j] == idx[j - 1] + 1:
                    j += 1
                data = os.pread(fd, (j - k) * self.row, self.offset + int(idx[k]) * self.row)
                flat[k:j] = np.frombuffer(data, dtype=np.uint8).reshape(j - k, self.row)
                k = j
        finally:
            os.close(fd)
        return out


def _idx_raw(path: Path) -> Path:
    """The uncompressed idx file (a ``.gz`` is decompressed once into the seethrough cache)."""
    from ..zoo.cache import cache_dir

    if path.suffix != ".gz":
        return path
    raw = cache_dir() / "datasets" / f"{path.stem}-{path.stat().st_size}"
    if not raw.exists():
        raw.parent.mkdir(parents=True, exist_ok=True)
        tmp = raw.with_suffix(f".tmp{os.getpid()}")
        with gzip.open(path, "rb") as f, open(tmp, "wb") as g:
            while block := f.read(1 << 20):
                g.write(block)
        os.replace(tmp, raw)
    return raw


@renamed(n="n_samples")
def fashion_mnist(split: str = "test", size: int | None = 32, n_samples: int | None = None) -> IdxSource:
    """Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package (no network): 60,000 train or
    10,000 test 28×28 grey images, resized to ``size`` (32 fits lenet-digits; None keeps 28);
    ``n_samples``: the first ``n_samples`` only.

    >>> src = fashion_mnist("test")        
    >>> len(src), src[0][0].shape, src.classes[src[0][1]]
    (10000, torch.Size([1, 32, 32]), 'Ankle boot')
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    stem = "train" if split == "train" else "t10k"
    return IdxSource(FASHION_DIR / f"{stem}-images-idx3-ubyte.gz", FASHION_DIR / f"{stem}-labels-idx1-ubyte.gz",
                     size=size, classes=FASHION_CLASSES, name=f"fashion-mnist:{split}", n=n_samples)


def ai_benchmark_photos(preprocess: Callable | None = None) -> FolderSource:
    """The 260 photos (JPEG) shipped inside the PyPI package ai-benchmark (the ``scan`` extra), as a
    folder source labelled by sub-folder (classification, enhancement, segmentation). The package
    is located without being imported (it would import TensorFlow).

    >>> src = ai_benchmark_photos()
    >>> len(src), src.classes      
    (260, ['classification', 'enhancement', 'segmentation'])
    """
    import importlib.util

    spec = importlib.util.find_spec("ai_benchmark")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("the ai-benchmark package is not installed: pip install 'seethrough[scan]' (or ai-benchmark)")
    return FolderSource(Path(list(spec.submodule_search_locations)[0]) / "data", preprocess, suffixes=(".jpg",))


def source(data: Any, *, labels: Any = None, preprocess: Callable | None = None, identity: str | None = None) -> Source:
    """Turn ``data`` into a :class:`Source`: a folder path (str or Path), a tensor ``(N, ...)``
    (``labels=`` optional), a pair ``(x, labels)``, a map-style Dataset or a DataLoader (its
    dataset; its batch size becomes the scan's default), or a Source (returned as is).
    ``preprocess`` turns a folder's images (or a Dataset's PIL items) into tensors; the default
    is the 224-pixel centre crop of efficientnet-lite0.

    >>> import seethrough as see
    >>> x, y = see.zoo.digits("test")
    >>> src = source((x, y))
    >>> len(src), src[0][1], src.identity == source((x.clone(), y)).identity
    (360, 1, True)
    """
    if isinstance(data, Source):
        return data
    if isinstance(data, (str, os.PathLike)):
        return FolderSource(data, preprocess)
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        if labels is not None:
            raise ValueError("labels given twice: in data=(x, labels) and as labels=; give them once")
        data, labels = data
    if isinstance(data, torch.Tensor):
        return TensorSource(data, labels, identity=identity)
    if isinstance(data, torch.utils.data.DataLoader):
        return DatasetSource(data.dataset, preprocess=preprocess, identity=identity, batch_hint=data.batch_size)
    if (hasattr(data, "__len__") and hasattr(data, "__getitem__")) or isinstance(data, torch.utils.data.IterableDataset):
        return DatasetSource(data, preprocess=preprocess, identity=identity)
    raise TypeError(f"data must be a folder path, a tensor (N, ...), a (x, labels) pair, a Dataset or a DataLoader, "
                    f"got {type(data).__name__}")


def from_spec(spec: dict | None) -> Source | None:
    """Rebuild a source from a stored manifest's ``source`` entry (None when it cannot be rebuilt)."""
    if not spec:
        return None
    if spec.get("kind") == "folder":
        from ..zoo import Preprocess

        prep = spec.get("preprocess")
        if prep is None or not Path(spec["root"]).is_dir():
            return None
        from PIL import Image

        prep = Preprocess(**{**prep, "interpolation": Image.Resampling(prep["interpolation"])})
        return FolderSource(spec["root"], prep, suffixes=spec.get("suffixes"))
    if spec.get("kind") == "fashion-mnist":
        return fashion_mnist(spec["split"], spec["size"], spec.get("n"))
    if spec.get("kind") == "digits":
        return digits_source(spec["split"])
    return None


def digits_source(split: str = "test") -> TensorSource:
    """scikit-learn's digits (32×32, lenet-digits' input) as a labelled tensor source.

    >>> len(digits_source("test")), digits_source("all").classes[:3]
    (360, ['0', '1', '2'])
    """
    from .. import zoo

    x, y = zoo.digits(split)
    return TensorSource(x, y, classes=[str(i) for i in range(10)], identity=f"digits:{split}",
                        spec={"kind": "digits", "split": split})
