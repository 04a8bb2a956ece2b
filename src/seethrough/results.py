"""One protocol for every result object: ``options``/``seed``, ``to_frame()``, ``summary()``, ``save``/``load``, HTML repr.

A result dataclass inherits :class:`ResultProtocol` and declares two fields, filled in by the
function that makes it from its own arguments: ``options`` (every argument that shaped the result,
model and data left out) and ``seed`` (``None`` where nothing was random). The mixin adds
``to_frame()`` (a tidy table; classes with a better one override it), ``summary() -> str`` (one short
line), ``save(path)`` → ``path.npz`` (every array) + ``path.json`` (class, version, options, seed,
every other field) and :func:`load` / ``Cls.load(path)`` (an equal object back: :func:`equal`), and
``_repr_html_`` (a compact table in notebooks).

Loading never unpickles: arrays come back through ``np.load(allow_pickle=False)`` and only classes of
this package are rebuilt. A value that is not data (a function, a model) is stored as its ``repr``
and comes back as that string; fields a class lists in ``_transient`` (live objects such as a
fitted estimator or a data source) are not stored and come back as their default.

>>> import torch
>>> from seethrough.results import load, equal
>>> from seethrough.metrics.result import ScoreResult
>>> r = ScoreResult("pointing-game", torch.tensor([1.0, 0.0]), options={"tolerance": 15}, seed=None)
>>> r.summary()
'pointing-game: mean 0.500 over 2 samples'
>>> import tempfile, pathlib
>>> path = r.save(pathlib.Path(tempfile.mkdtemp()) / "pg")
>>> sorted(p.name for p in path.parent.iterdir())
['pg.json', 'pg.npz']
>>> equal(load(path), r), len(r.to_frame()), "ScoreResult" in r._repr_html_()
(True, 2, True)
"""
from __future__ import annotations

import dataclasses
import functools
import html
import inspect
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import torch

from ._version import __version__
from .codec import Empty, decode, encode, nan_equal, qualname, result_class

_SCALARS = (bool, int, float, str, type(None))
_NO_OPTION = ("progress", "seed", "self", "cls")  # progress never changes a result; seed has its own field


def call_options(values: dict[str, Any], *skip: str) -> dict[str, Any]:
    """The options a producer was called with, from its ``locals()`` taken first thing: every argument but ``skip``.

    ``progress`` and ``seed`` are left out (``seed`` is a field of its own), and so are private names;
    ``**options`` dicts are merged in.

    >>> def f(model, x, *, steps=3, seed=0, progress=True, **more):
    ...     return call_options(locals(), "model", "x")
    >>> f(None, None, steps=5, noise=0.1)
    {'steps': 5, 'noise': 0.1}
    """
    out: dict[str, Any] = {}
    for k, v in values.items():
        if k in skip or k in _NO_OPTION or k.startswith("_"):
            continue
        if k in ("options", "more", "kwargs", "opts", "how", "method_options") and isinstance(v, dict):
            out.update({kk: vv for kk, vv in v.items() if kk not in _NO_OPTION})
        else:
            out[k] = v
    return out


def records(*skip: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a producer: its result(s) get ``options`` (the bound arguments, defaults included, but ``skip``)
    and ``seed`` (its ``seed`` argument, else None) unless the producer filled them itself.

    >>> import dataclasses
    >>> @dataclasses.dataclass
    ... class R(ResultProtocol):
    ...     v: int
    ...     options: dict = dataclasses.field(default_factory=dict)
    ...     seed: int | None = None
    >>> @records("data")
    ... def make(data, k=3, *, seed=0):
    ...     return R(len(data))
    >>> r = make([1, 2], seed=5); r.options, r.seed
    ({'k': 3}, 5)
    """
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            out = fn(*args, **kwargs)
            try:
                bound = sig.bind(*args, **kwargs)
            except TypeError:
                return out
            bound.apply_defaults()
            opts = call_options(dict(bound.arguments), *skip)
            seed = bound.arguments.get("seed")
            for r in out.values() if isinstance(out, dict) else out if isinstance(out, (list, tuple)) else [out]:
                if isinstance(r, ResultProtocol) and dataclasses.is_dataclass(r):
                    names = {f.name for f in dataclasses.fields(r)}
                    if "options" in names and not r.options:
                        object.__setattr__(r, "options", opts)
                    if "seed" in names and r.seed is None:
                        object.__setattr__(r, "seed", seed)
            return out

        return run

    return wrap


class ResultProtocol:
    """Mixin for result dataclasses (which declare ``options: dict`` and ``seed: int | None`` fields)."""

    _transient: ClassVar[tuple[str, ...]] = ()  # fields not saved: live objects, callables; default on load

    # -- the table and the line -------------------------------------------------------------
    def to_frame(self):
        """A tidy table: one row per sample (every 1-D array along the common first dimension and
        every per-sample list is a column, scalar fields repeat), or one row of scalars."""
        import pandas as pd

        own = _own_fields(self)
        n = _rows(own)
        cols: dict[str, Any] = {}
        if n:
            cols["sample"] = list(range(n))
        for k, v in own.items():
            if isinstance(v, _SCALARS):
                cols[k] = [v] * max(n, 1)
            elif n and _is_array(v) and tuple(v.shape) == (n,):
                cols[k] = _numpy(v).tolist()
            elif n and isinstance(v, list) and len(v) == n and all(isinstance(e, _SCALARS) for e in v):
                cols[k] = list(v)
        if not cols:
            cols = {"result": [type(self).__name__]}
        return pd.DataFrame(cols)

    def summary(self) -> str:
        """One line: the class, its scalar fields and the shapes of its arrays."""
        own = _own_fields(self)
        parts = [f"{k}={_short(v)}" for k, v in own.items() if isinstance(v, _SCALARS) and v is not None]
        parts += [f"{k} {tuple(v.shape)}" for k, v in own.items() if _is_array(v)]
        return f"{type(self).__name__}: " + ", ".join(parts[:8])

    # -- files --------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write ``path.npz`` (every array) and ``path.json`` (metadata); returns the ``.json`` path."""
        base = _base(path)
        base.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        meta = {"class": qualname(type(self)), "version": __version__, "summary": self.summary(),
                "seed": encode(getattr(self, "seed", None), "seed", arrays),
                "options": encode(getattr(self, "options", {}), "options", arrays),
                "fields": {k: encode(v, k, arrays) for k, v in self._state().items() if k not in ("options", "seed")}}
        np.savez(base.with_suffix(".npz"), **arrays)
        out = base.with_suffix(".json")
        out.write_text(json.dumps(meta, indent=1))
        return out

    @classmethod
    def load(cls, path: str | Path):
        """Reload a result written by :meth:`save` (it must be of this class or a subclass)."""
        obj = load(path)
        if not isinstance(obj, cls):
            raise TypeError(f"{_base(path)}.json holds a {type(obj).__name__}, not a {cls.__name__}")
        return obj

    def _state(self) -> dict[str, Any]:
        """The fields to store (override with :meth:`_restore` for values that need converting)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in self._transient}

    @classmethod
    def _restore(cls, values: dict[str, Any]):
        obj = cls.__new__(cls)  # no __init__/__post_init__: the stored state is restored exactly
        for f in dataclasses.fields(cls):
            if f.name in values:
                v = values[f.name]
            elif f.default is not dataclasses.MISSING:
                v = f.default
            elif f.default_factory is not dataclasses.MISSING:
                v = f.default_factory()
            else:
                v = None
            object.__setattr__(obj, f.name, v)
        return obj

    # -- notebooks --------------------------------------------------------------------------
    def _repr_html_(self) -> str:
        e = html.escape
        rows = [("summary", self.summary()), ("options", _short(getattr(self, "options", {}), 400)),
                ("seed", repr(getattr(self, "seed", None)))]
        rows += [(k, f"{_kind(v)} {tuple(v.shape)} {str(v.dtype).replace('torch.', '')}")
                 for k, v in _own_fields(self).items() if _is_array(v)]
        body = "".join(f"<tr><th style='text-align:left'>{e(k)}</th><td style='text-align:left'>{e(v)}</td></tr>"
                       for k, v in rows)
        thumb = _thumbnail(self)
        pic = f"<tr><th style='text-align:left'>picture</th><td><img src='data:image/png;base64,{thumb}'></td></tr>" if thumb else ""
        return f"<table><caption style='text-align:left'><b>{e(type(self).__name__)}</b></caption>{body}{pic}</table>"


def write_maps(folder: str | Path, maps: dict[str, Any], scores: dict[str, Any], *, arrays: str = "maps.npz",
               meta: str = "scores.json") -> tuple[Path, Path]:
    """The CLI's raw output beside its pictures: ``folder/maps.npz`` (one array per key, e.g. per method) and
    ``folder/scores.json`` (plain JSON: tensors as lists); :func:`load` reads either back.

    >>> import tempfile
    >>> a, s = write_maps(tempfile.mkdtemp(), {"saliency": torch.ones(1, 1, 2, 2)}, {"target": 3})
    >>> load(a)["saliency"].shape, load(s)["target"]
    (torch.Size([1, 1, 2, 2]), 3)
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / arrays, **{k: v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
                                 for k, v in maps.items()})
    (folder / meta).write_text(json.dumps({**scores, "arrays": arrays, "version": __version__}, indent=1, default=_plain))
    return folder / arrays, folder / meta


def write_result(result: ResultProtocol, folder: str | Path, name: str) -> list[Path]:
    """A command's result beside its pictures: ``name.npz`` + ``name.json`` (:meth:`~ResultProtocol.save`,
    reloadable with :func:`load`) and ``name.csv`` (its :meth:`~ResultProtocol.to_frame`)."""
    meta = result.save(Path(folder) / name)
    csv = meta.with_suffix(".csv")
    result.to_frame().to_csv(csv, index=False)
    return [meta.with_suffix(".npz"), meta, csv]


def _plain(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().tolist()
    if isinstance(v, (np.ndarray, np.generic)):
        return v.tolist()
    if isinstance(v, Path):
        return str(v)
    return repr(v)


def load(path: str | Path) -> Any:
    """Reload any result written by :meth:`ResultProtocol.save` (``path`` with or without ``.json``/``.npz``);
    a file of :func:`write_maps`: ``maps.npz`` → ``{key: tensor}``, ``scores.json`` → the dict."""
    base = _base(path)
    meta_path = base.with_suffix(".json")
    if Path(path).suffix == ".npz" and Path(path).is_file() and not meta_path.is_file():
        with np.load(path, allow_pickle=False) as arrays:
            return {k: torch.from_numpy(np.array(arrays[k])) for k in arrays.files}
    if not meta_path.is_file():
        raise ValueError(f"no saved result at {meta_path} (save(path) writes path.json and path.npz)")
    meta = json.loads(meta_path.read_text())
    if "class" not in meta:  # a scores.json of write_maps
        return meta
    cls = result_class(meta.get("class", ""))
    npz = base.with_suffix(".npz")
    with np.load(npz, allow_pickle=False) if npz.is_file() else Empty() as arrays:
        values = {k: decode(v, arrays) for k, v in meta.get("fields", {}).items()}
        values["options"] = decode(meta.get("options", {}), arrays)
        values["seed"] = decode(meta.get("seed"), arrays)
    return cls._restore(values)


def equal(a: Any, b: Any) -> bool:
    """Deep equality for results: same types, arrays equal (NaN equal to NaN, same dtype), fields equal.

    >>> equal({"a": torch.tensor([1.0, float("nan")])}, {"a": torch.tensor([1.0, float("nan")])})
    True
    >>> equal(torch.tensor([1.0]), torch.tensor([1.0], dtype=torch.float64))
    False
    """
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype
                and a.shape == b.shape and bool(torch.equal(a, b) or nan_equal(a, b)))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.nn.Module):  # a stored model (LogisticFit's nn.Linear): equal parameters and buffers
        return equal(dict(a.state_dict()), dict(b.state_dict()))
    if callable(getattr(a, "state", None)) and not dataclasses.is_dataclass(a):  # scan accumulators
        return equal(a.state(), b.state())
    if dataclasses.is_dataclass(a):
        skip = getattr(a, "_transient", ())
        return all(equal(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a) if f.name not in skip)
    if type(a).__name__ == "DataFrame":
        return bool(a.equals(b)) and list(a.columns) == list(b.columns)
    return bool(a == b)


def _base(path: str | Path) -> Path:
    p = Path(path)
    return p.with_suffix("") if p.suffix in (".json", ".npz") else p


# -- shared helpers for the defaults ------------------------------------------------------------
def _own_fields(r: Any) -> dict[str, Any]:
    return {f.name: getattr(r, f.name) for f in dataclasses.fields(r)
            if f.name not in ("options", "seed") and f.name not in getattr(r, "_transient", ()) and not f.name.startswith("_")}


def _thumbnail(r: Any, side: int = 96) -> str:
    """A small PNG (base64) of the first image-shaped array ``(N, 1 or 3, H, W)`` of the result, sample 0,
    min-max scaled; "" when it has none. PIL only: render sits above this module."""
    import base64
    import io

    from PIL import Image

    for v in _own_fields(r).values():
        if isinstance(v, torch.Tensor) and v.dim() == 4 and v.shape[1] in (1, 3) and min(v.shape[-2:]) >= 8 \
                and v.is_floating_point() and len(v):
            a = v[0].detach().cpu().double()
            a = (a - a.min()) / (a.max() - a.min()).clamp_min(1e-12)
            pixels = (a.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            img = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
            img = img.resize((side, max(1, round(side * img.height / img.width))), Image.NEAREST)
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            return base64.b64encode(buf.getvalue()).decode("ascii")
    return ""


def _is_array(v: Any) -> bool:
    return isinstance(v, (torch.Tensor, np.ndarray))


def _kind(v: Any) -> str:
    return "tensor" if isinstance(v, torch.Tensor) else "array"


def _numpy(v: Any) -> np.ndarray:
    return v.detach().cpu().double().numpy() if isinstance(v, torch.Tensor) and v.is_floating_point() else np.asarray(v)


def _rows(own: dict[str, Any]) -> int:
    """The number of samples: the most common first dimension among the arrays (0 when none)."""
    sizes = Counter(int(v.shape[0]) for v in own.values() if _is_array(v) and v.ndim >= 1)
    return sizes.most_common(1)[0][0] if sizes else 0


def _short(v: Any, limit: int = 60) -> str:
    if _is_array(v):
        return f"{_kind(v)}{tuple(v.shape)}"
    if isinstance(v, dict):
        text = "{" + ", ".join(f"{k}: {_short(x, 40)}" for k, x in v.items()) + "}"
    elif isinstance(v, float):
        text = f"{v:.4g}"
    else:
        text = repr(v)
    return text if len(text) <= limit else text[: limit - 1] + "…"
