"""What a CLI command computed, kept beside its pictures: :class:`CommandResult` and :func:`write_raw`.

Commands whose result is one protocol object (``topk``'s ``TopK``, ``probe``'s ``ProbeResult``...)
save that object with :func:`seethrough.results.write_result`. Commands whose result is several
objects or bare tensors (``filters``' weights, ``stats``' per-layer statistics, ``explain-text``'s
per-method explanations, ``predict``'s table) wrap them in one :class:`CommandResult`: the named
values (tensors, results, numbers), the table the command prints, and the options and seed. It follows
the result protocol (docs/results.md), so ``seethrough.results.load("out/filters")`` gives it back.

>>> import tempfile, torch
>>> from seethrough.results import load, equal
>>> paths = write_raw(tempfile.mkdtemp(), "filters", {"weight": torch.ones(2, 1, 3, 3)}, options={"layer": "conv1"})
>>> [p.suffix for p in paths]
['.npz', '.json']
>>> r = load(paths[1]); r.command, r.values["weight"].shape, r.options
('filters', torch.Size([2, 1, 3, 3]), {'layer': 'conv1'})
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional

from .results import ResultProtocol, write_result


@dataclasses.dataclass
class CommandResult(ResultProtocol):
    """``values``: name → tensor, result object or number; ``table``: the rows the command prints (or None)."""

    command: str
    values: dict = dataclasses.field(default_factory=dict)
    table: Any = None  # a pandas DataFrame, written as name.csv too
    options: dict = dataclasses.field(default_factory=dict)
    seed: Optional[int] = None

    def to_frame(self):
        """The command's table; without one, a row per value with its shape (or its number)."""
        import pandas as pd

        if self.table is not None:
            return self.table
        return pd.DataFrame({"value": list(self.values),
                             "shape": [str(tuple(v.shape)) if hasattr(v, "shape") else type(v).__name__
                                       for v in self.values.values()]})

    def summary(self) -> str:
        """One line: the command, its values and the rows of its table."""
        rows = "" if self.table is None else f"; table of {len(self.table)} rows"
        return f"{self.command}: {', '.join(map(str, self.values)) or 'no values'}{rows}"


def write_raw(folder: str | Path, command: str, values: dict[str, Any], *, table: Any = None,
              options: Optional[dict[str, Any]] = None, seed: Optional[int] = None) -> list[Path]:
    """Write ``folder/command.npz`` + ``.json`` (a :class:`CommandResult`) and ``.csv`` when there is a ``table``;
    returns the paths written."""
    r = CommandResult(command, dict(values), table, dict(options or {}), seed)
    if table is not None:
        return write_result(r, folder, command)
    meta = r.save(Path(folder) / command)
    return [meta.with_suffix(".npz"), meta]


def save_raw(folder: str | Path, name: str, result: Any, **how: Any) -> str:
    """A command's raw output, one call: a protocol result → ``name.npz/.json/.csv``
    (:func:`~seethrough.results.write_result`); a dict of values → :func:`write_raw` (``how``: table,
    options, seed). Returns the line the command prints last."""
    if isinstance(result, ResultProtocol):
        return raw_line(write_result(result, folder, name))
    return raw_line(write_raw(folder, name, result, **how))


def raw_line(paths: list[Path]) -> str:
    """The last line a command prints: where its raw results are (``raw: a.npz, a.json``).

    >>> raw_line([Path("o/a.npz"), Path("o/a.json")])
    'raw results: o/a.npz, o/a.json (seethrough.results.load)'
    """
    return f"raw results: {', '.join(str(p) for p in paths)} (seethrough.results.load)"
