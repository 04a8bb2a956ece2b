"""The metric registry: one entry per faithfulness/localisation metric, enumerated by the CLI
(``seethrough faithfulness --metric``), the report and :mod:`seethrough.catalog`.

An entry's ``takes`` says what it scores: ``"map"`` metrics are ``fn(model, x, attribution,
target, **options)``, ``"method"`` metrics (robustness) re-run the explainer:
``fn(model, x, method, target, **options)``; ``better`` says which direction is good.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable
    paper: str
    better: str  # "lower" or "higher"
    takes: str = "map"  # "map": fn(model, x, attribution, target); "method": fn(model, x, method, target)
    curve: bool = True  # returns a CurveResult (a curve and its area) rather than one score per sample
    kinds: tuple[str, ...] = ("image",)
    area: str = "AUC"  # what a curve's score is: "AUC" or "AOPC"


METRICS: dict[str, Metric] = {}


def register_metric(name: str, *, paper: str, better: str, takes: str = "map", curve: bool = True,
                    kinds: tuple[str, ...] = ("image",), area: str = "AUC") -> Callable:
    """Register a metric function under ``name`` (see the module docstring for the two call forms).

    >>> @register_metric("doc-metric", paper="-", better="lower")
    ... def _m(model, x, attribution, target=None, *, steps: int = 4):
    ...     return steps
    >>> METRICS.pop("doc-metric").better
    'lower'
    """
    if better not in ("lower", "higher"):
        raise ValueError(f"better must be 'lower' or 'higher', got {better!r}")
    if takes not in ("map", "method"):
        raise ValueError(f"takes must be 'map' or 'method', got {takes!r}")

    def wrap(fn: Callable) -> Callable:
        if name in METRICS:
            raise ValueError(f"metric {name!r} registered twice")
        METRICS[name] = Metric(name, fn, paper, better, takes, curve, tuple(kinds), area)
        return fn

    return wrap
