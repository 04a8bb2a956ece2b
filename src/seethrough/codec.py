"""JSON + arrays for result objects (:mod:`seethrough.results`): values to JSON, arrays to an ``.npz`` under a key.

Only seethrough classes are rebuilt (never an arbitrary import, never a pickle).

>>> arrays = {}
>>> enc = encode({"a": torch.ones(2), (1, 2): (3, "x")}, "options", arrays)
>>> sorted(arrays), decode(enc, arrays)[(1, 2)]   # a dict with a non-str key: stored as keys + values
(['options/0'], (3, 'x'))
"""
from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any

import numpy as np
import torch


def encode(v: Any, key: str, arrays: dict[str, np.ndarray]) -> Any:
    """JSON for ``v``; arrays go into ``arrays`` under ``key`` (a path such as ``layers/fc1/scores``)."""
    if isinstance(v, (bool, int, str, type(None))):
        return v
    if isinstance(v, float):
        return v  # json writes NaN/Infinity and reads them back
    if isinstance(v, (np.bool_, np.integer, np.floating)):
        return v.item()
    if isinstance(v, torch.Tensor):
        t = v.detach().cpu()
        keep = t.dtype
        if t.dtype == torch.bfloat16:  # numpy has no bfloat16: stored as float32, exact, cast back on load
            t = t.float()
        arrays[key] = t.numpy()
        return {"__type__": "tensor", "key": key, "dtype": str(keep)}
    if isinstance(v, np.ndarray):
        if v.dtype.kind == "O":
            return {"__type__": "object-array", "items": [encode(e, f"{key}/{i}", arrays) for i, e in enumerate(v.tolist())]}
        arrays[key] = v
        return {"__type__": "ndarray", "key": key}
    if isinstance(v, dict):
        if all(isinstance(k, str) for k in v) and "__type__" not in v:
            return {k: encode(x, f"{key}/{k}", arrays) for k, x in v.items()}
        return {"__type__": "dict", "keys": [encode(k, f"{key}/key{i}", arrays) for i, k in enumerate(v)],
                "values": [encode(x, f"{key}/{i}", arrays) for i, x in enumerate(v.values())]}
    if isinstance(v, list):
        return [encode(x, f"{key}/{i}", arrays) for i, x in enumerate(v)]
    if isinstance(v, tuple) and hasattr(v, "_fields") and type(v).__module__.startswith("seethrough"):
        return {"__type__": "namedtuple", "class": qualname(type(v)),
                "items": [encode(x, f"{key}/{i}", arrays) for i, x in enumerate(v)]}
    if isinstance(v, tuple):  # torch.Size included: it comes back as a plain tuple
        return {"__type__": "tuple", "items": [encode(x, f"{key}/{i}", arrays) for i, x in enumerate(v)]}
    if isinstance(v, Path):
        return {"__type__": "path", "path": str(v)}
    if isinstance(v, torch.dtype):
        return {"__type__": "dtype", "name": str(v)}
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        cls = type(v)
        if hasattr(v, "_state"):  # a result: its own choice of fields to store
            state = v._state()
        else:
            state = {f.name: getattr(v, f.name) for f in dataclasses.fields(v)}
        return {"__type__": "dataclass", "class": qualname(cls),
                "fields": {k: encode(x, f"{key}/{k}", arrays) for k, x in state.items()}}
    if type(v).__name__ == "DataFrame":
        cols = list(v.columns)
        data = []
        for i, c in enumerate(cols):
            a = v[c].to_numpy()
            data.append(encode(a if a.dtype.kind in "biufcmM" else a.tolist(), f"{key}/col{i}", arrays))
        return {"__type__": "frame", "columns": [encode(c, f"{key}/name{i}", arrays) for i, c in enumerate(cols)],
                "data": data, "index": None if _default_index(v.index) else encode(v.index.to_numpy(), f"{key}/index", arrays)}
    return {"__type__": "repr", "repr": repr(v)}  # not data (a function, a module): kept readable, reloads as text


def decode(v: Any, arrays: Any) -> Any:
    if isinstance(v, list):
        return [decode(x, arrays) for x in v]
    if not isinstance(v, dict):
        return v
    kind = v.get("__type__")
    if kind is None:
        return {k: decode(x, arrays) for k, x in v.items()}
    if kind == "tensor":
        dtype = getattr(torch, v["dtype"].replace("torch.", ""))
        return torch.from_numpy(np.array(arrays[v["key"]])).to(dtype)
    if kind == "ndarray":
        return np.array(arrays[v["key"]])
    if kind == "object-array":
        out = np.empty(len(v["items"]), dtype=object)
        out[:] = [decode(x, arrays) for x in v["items"]]
        return out
    if kind == "dict":
        return {hashable(decode(k, arrays)): decode(x, arrays) for k, x in zip(v["keys"], v["values"])}
    if kind == "tuple":
        return tuple(decode(x, arrays) for x in v["items"])
    if kind == "namedtuple":
        return result_class(v["class"])(*(decode(x, arrays) for x in v["items"]))
    if kind == "path":
        return Path(v["path"])
    if kind == "dtype":
        return getattr(torch, v["name"].replace("torch.", ""))
    if kind == "dataclass":
        cls = result_class(v["class"])
        fields = {k: decode(x, arrays) for k, x in v["fields"].items()}
        if hasattr(cls, "_restore"):
            return cls._restore(fields)
        obj = cls.__new__(cls)
        for k, x in fields.items():
            object.__setattr__(obj, k, x)
        return obj
    if kind == "frame":
        import pandas as pd

        cols = [hashable(decode(c, arrays)) for c in v["columns"]]
        data = [decode(d, arrays) for d in v["data"]]
        return pd.DataFrame(dict(zip(cols, data)), index=decode(v["index"], arrays), columns=cols)
    if kind == "repr":
        return v["repr"]
    raise ValueError(f"unknown stored value type {kind!r} (written by a newer seethrough?)")


def _default_index(index: Any) -> bool:
    """A plain 0..n-1 RangeIndex: stored as nothing, so it comes back a RangeIndex (``DataFrame.equals`` checks it)."""
    return type(index).__name__ == "RangeIndex" and index.start == 0 and index.step == 1


def nan_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (a.is_floating_point() or a.is_complex()) and bool(torch.equal(a.isnan(), b.isnan())
                                                               and torch.equal(a.nan_to_num(0.0), b.nan_to_num(0.0)))


def hashable(k: Any) -> Any:
    return tuple(hashable(x) for x in k) if isinstance(k, (list, tuple)) else k


class Empty(dict):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def qualname(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def result_class(name: str) -> type:
    module, _, qual = name.partition(":")
    if not (module == "seethrough" or module.startswith("seethrough.")) or not qual:
        raise ValueError(f"refusing to rebuild {name!r}: only seethrough result classes are loaded")
    obj: Any = importlib.import_module(module)
    for part in qual.split("."):
        obj = getattr(obj, part)
    return obj


