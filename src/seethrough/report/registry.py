"""The report's building blocks: sections register a builder that returns figures, tables and text.

A family adds a section by decorating one function in ``report/sections/<family>.py``::

    @section("attribution", "Attribution", order=20)
    def build(ctx: Context) -> list[Block]: ...

Builders are plain functions of a :class:`Context`, so a test can build one section without
writing any HTML.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Union

import torch
from torch import nn


@dataclass
class Figure:
    """A picture with its caption and provenance (model, method, options, seed, seconds).

    ``image`` is a PIL image, a matplotlib figure, or a list of PIL frames (an animated GIF).
    """

    title: str
    image: Any
    caption: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]]
    caption: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass
class Text:
    text: str


Block = Union[Figure, Table, Text]


@dataclass
class Section:
    key: str
    title: str
    order: int
    build: Callable[["Context"], list[Block]]
    #: "zoo": built on the bundled models (skipped, with that reason, in a report for ``--model``);
    #: "user": built on the user's model (``ctx.user``), only in a report for ``--model``
    models: str = "zoo"


SECTIONS: dict[str, Section] = {}


def section(key: str, title: str, order: int = 100, models: str = "zoo") -> Callable:
    """Register ``fn(ctx) -> list[Block]`` as the report section ``key`` (``models``: see :class:`Section`).

    >>> @section("doc-example", "Example", order=999)
    ... def _example(ctx):
    ...     return [Text("hello")]
    >>> SECTIONS.pop("doc-example").build(Context(quick=True))
    [Text(text='hello')]
    """

    def register(fn: Callable[[Context], list[Block]]) -> Callable:
        if models not in ("zoo", "user"):
            raise ValueError(f"section {key!r}: models must be 'zoo' or 'user', got {models!r}")
        SECTIONS[key] = Section(key, title, order, fn, models)
        return fn

    return register


def _specs() -> dict:
    """The sections as catalog entries (:mod:`seethrough.catalog`), in report order."""
    from ..spec import Spec

    return {s.key: Spec(s.key, "report", s.build, "", ("image",), (), "list[Block]", s.title, {"order": s.order})
            for s in sorted(SECTIONS.values(), key=lambda s: s.order)}


def _register_family() -> None:
    from ..catalog import register_family

    register_family("report", _specs)


_register_family()


class Stopwatch:
    """Times each figure of a section: ``sw.figure(...)`` stamps the seconds since the last stamp."""

    def __init__(self) -> None:
        self.last = time.perf_counter()

    def lap(self) -> float:
        now = time.perf_counter()
        seconds, self.last = now - self.last, now
        return seconds

    def figure(self, title: str, image: Any, caption: str, **provenance: Any) -> Figure:
        return Figure(title, image, caption, {**provenance, "seconds": round(self.lap(), 2)})

    def table(self, title: str, columns: list[str], rows: list[list[Any]], caption: str = "", **provenance: Any) -> Table:
        return Table(title, columns, rows, caption, {**provenance, "seconds": round(self.lap(), 2)})


QUICK_PHOTOS = ("chelsea", "coffee")


@dataclass
class Context:
    """What every section shares: the quick flag, the seed, progress, and loaded models (loaded once).

    >>> Context(quick=True).photo_names()
    ['chelsea', 'coffee']
    """

    quick: bool = False
    seed: int = 0
    progress: bool = False
    scan: Any = None  # a stored scan (see.scan.load), read by the "scan" section instead of a pass over data
    user: Any = None  # the user's model (a seethrough.loading.LoadedModel) of `seethrough report --model`
    user_images: Any = None  # a folder of images for the user's model (default: the bundled photos)
    _models: dict[str, tuple[nn.Module, Callable]] = field(default_factory=dict, repr=False)

    def model(self, name: str) -> tuple[nn.Module, Callable]:
        if name not in self._models:
            from .. import zoo

            self._models[name] = zoo.load(name)
        return self._models[name]

    def photo_names(self) -> list[str]:
        from .. import zoo

        return list(QUICK_PHOTOS) if self.quick else list(zoo.images())

    def photos(self, names: Iterable[str] | None = None) -> tuple[list[str], torch.Tensor]:
        """Bundled photos preprocessed for efficientnet-lite0, as ``(names, (N, 3, 224, 224))``."""
        from .. import zoo

        names = list(names) if names is not None else self.photo_names()
        _, prep = self.model("efficientnet-lite0")
        return names, torch.cat([prep(zoo.image(n)) for n in names])

    def stopwatch(self) -> Stopwatch:
        return Stopwatch()

    def bar(self, iterable: Iterable, desc: str, total: int | None = None) -> Iterable:
        from ..progress import bar

        return bar(iterable, desc=desc, total=total, progress=self.progress)
