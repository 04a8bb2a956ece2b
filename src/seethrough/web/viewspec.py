"""The explorer's views: one registry the HTTP layer serves (``GET /api/<view>``, ``POST
/api/jobs/<view>``) and :mod:`seethrough.catalog` lists.

A view is ``fn(session, **params) -> JSON-able dict``; ``params`` maps each query parameter to its
type or ``(type, default)``. ``options`` parameters carry a JSON object of the chosen method's or
attack's own options, checked against its :class:`seethrough.spec.Spec` (issue 19).

>>> VIEWS["attribution"].params["options"]
(<class 'str'>, '{}')
>>> [o.name for o in VIEWS["unit"].options]
['input', 'layer', 'channel']
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..spec import Option
from . import textviews, views


class Sentence(str):
    """A query parameter that is typed text (a sentence), allowed up to ``MAX_SENTENCE`` characters."""


@dataclass(frozen=True)
class View:
    name: str
    fn: Callable[..., dict[str, Any]] | None  # None: served by the app itself (the ε sweep uses its cache)
    params: dict[str, Any]
    holds_model: bool = True
    description: str = ""
    kinds: tuple[str, ...] = ("image",)

    @property
    def options(self) -> tuple[Option, ...]:
        out = []
        for name, spec in self.params.items():
            typ, default = spec if isinstance(spec, tuple) else (spec, None)
            tname = {int: "int", float: "float", str: "str", Sentence: "str"}.get(typ, "any")
            out.append(Option(name, tname, default, required=not isinstance(spec, tuple)))
        return tuple(out)


VIEWS: dict[str, View] = {}


def register_view(name: str, fn: Callable | None, params: dict[str, Any], *, holds_model: bool = True,
                  description: str = "", kinds: tuple[str, ...] = ("image",)) -> None:
    """Add a view; its endpoint exists in every app created afterwards."""
    if name in VIEWS:
        raise ValueError(f"explorer view {name!r} registered twice")
    VIEWS[name] = View(name, fn, dict(params), holds_model, description, tuple(kinds))


register_view("predictions", views.predictions, {"input": str, "k": (int, 5)}, description="the top classes")
register_view("activations", views.activation_grid, {"input": str, "layer": str, "show": (str, "auto"), "seed": (int, 0)},
              description="a layer's activation maps")
register_view("unit", views.unit, {"input": str, "layer": str, "channel": int},
              description="one unit: its map, top examples and feature visualisation")
register_view("attribution", views.attribution, {"input": str, "method": str, "target": (int, None), "options": (str, "{}")},
              description="one attribution method's map with its trust badge")
register_view("projection", views.projection, {"input": str, "layer": str, "method": (str, "pca"), "n": (int, 200),
                                               "seed": (int, 0)}, description="the embedding projector")
register_view("adversarial", views.adversarial, {"input": str, "method": (str, "pgd"), "eps": float, "options": (str, "{}")},
              description="the input attacked at one ε")
register_view("flip", None, {"input": str, "method": (str, "pgd"), "options": (str, "{}")}, holds_model=False,
              description="the smallest ε on the grid that flips the label")
# a stored scan (--scan): read, never recomputed; only the crops' receptive fields touch the model
register_view("scan_units", views.scan_units, {"layer": str}, holds_model=False, description="a scanned layer's units")
register_view("scan_unit", views.scan_unit, {"layer": str, "channel": int}, description="one scanned unit")
register_view("scan_projection", views.scan_projection, {"layer": str, "method": (str, "pca"), "seed": (int, 0)},
              holds_model=False, description="the projector over a stored scan's sample")
# a text model's view (sentences typed in the page; docs/text.md)
register_view("text_tokens", textviews.tokens, {"text": Sentence, "method": str, "pair": (Sentence, None),
                                                "target": (int, None)}, description="words coloured by a token method",
              kinds=("tokens",))
register_view("text_attention", textviews.attention, {"text": Sentence, "layer": (int, 0), "head": (int, -1)},
              description="the head view", kinds=("tokens",))
register_view("text_model_view", textviews.model_view, {"text": Sentence}, description="the model view", kinds=("tokens",))
register_view("text_probe", textviews.probe_curves, {}, description="the probing curves", kinds=("tokens",))
