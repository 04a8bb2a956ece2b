"""The catalogue: every registered entry of every family, read from :mod:`seethrough.catalog` (nothing
hand-listed), and every image attribution method, attack and metric run once with its default options.

An entry registered by a user (``@see.attribution.register``, ``@see.adversarial.register``,
``@see.metrics.register_metric``) appears here with no other change.
"""
from __future__ import annotations

import math

import torch

from ... import zoo
from ...adversarial import attack
from ...attribution import attribute
from ...catalog import FAMILIES, entries
from ...hooks import forward
from ...outputs import class_output
from ...render import for_display, panel
from ..registry import Context, Text, section

# Quick: one digit on lenet-digits (seconds); full: a photo on efficientnet-lite0 (every method at its
# defaults, as a user calling see.attribute(model, x, name) gets them).
_QUICK, _FULL = "lenet-digits", "efficientnet-lite0"
_FAMILY_TITLES = {"attribution": "attribution methods", "attack": "attacks", "objective": "feature-visualisation objectives",
                  "metric": "faithfulness metrics", "projection": "projections", "influence": "influence solvers",
                  "sanity": "sanity tests", "report": "report sections", "view": "explorer views"}


def _options_text(spec) -> str:
    return ", ".join(f"{o.name}={o.default!r}" if not o.required else o.name for o in spec.options) or "none"


def _input(ctx: Context):
    name = _QUICK if ctx.quick else _FULL
    model, prep = ctx.model(name)
    if ctx.quick:
        x = zoo.digits("test")[0][:1]
    else:
        x = prep(zoo.image("chelsea"))
    return name, model, x, int(class_output(forward(model, x)).argmax(1)[0])


def _fmt(v) -> str:
    v = float(v)
    return "n/a" if not math.isfinite(v) else f"{v:.3f}"


@section("catalogue", "Catalogue: every registered entry", order=95)
def build(ctx: Context) -> list:
    out: list = [Text("Everything seethrough has registered, family by family, with each entry's options and "
                      "their defaults, read from the registries when this report was built. A method, attack or "
                      "metric registered by the user appears here (and in the CLI's --help and the explorer's "
                      "menus) with no other change.")]
    sw = ctx.stopwatch()
    rows = [[_FAMILY_TITLES[f], s.name, s.paper or "", ", ".join(s.kinds), _options_text(s)]
            for f in FAMILIES for s in entries(f).values()]
    out.append(sw.table("Every registered entry", ["family", "name", "paper", "input kinds", "options (defaults)"], rows,
                        f"{len(rows)} entries in {len(FAMILIES)} families."))

    name, model, x, target = _input(ctx)
    figure, maps = every_method(ctx, sw, name, model, x, target)
    y = torch.tensor([target])
    return out + [figure, every_attack(ctx, sw, name, model, x, y), every_metric(ctx, sw, name, model, x, target, maps)]


def every_method(ctx: Context, sw, name: str, model, x: torch.Tensor, target) -> tuple:
    """Every registered image attribution method at its defaults on ``x``: the panel (a figure block)
    and the maps; a method that refuses the model is named in the caption with its reason."""
    methods = [s for s in entries("attribution").values() if "image" in s.kinds]
    maps, failed = {}, []
    for spec in ctx.bar(methods, desc="every method", total=len(methods)):
        try:
            maps[spec.name] = attribute(model, x, spec.name, target=target)
        except (ValueError, TypeError) as e:  # e.g. CAM on a head that is not pooling + linear: said, not hidden
            failed.append(f"{spec.name}: {e}")
    classes = target if isinstance(target, int) else ", ".join(map(str, torch.as_tensor(target).tolist()))
    figure = sw.figure(f"Every image attribution method at its defaults ({name})",
                       panel(x, {n: for_display(n, a) for n, a in maps.items()},  # RISE minus its mean, as everywhere
                             title=f"{name} · class {classes} · default options"),
                       f"{len(maps)} of {len(methods)} registered image methods, each called as "
                       "see.attribute(model, x, name, target) with no option."
                       + (" Not drawn: " + "; ".join(failed) if failed else ""),
                       model=name, methods=",".join(maps), options="defaults", seed=0)
    return figure, maps


def every_attack(ctx: Context, sw, name: str, model, x: torch.Tensor, y: torch.Tensor):
    """Every registered attack at its defaults on ``x`` (labels ``y``): a table block."""
    rows = []
    for spec in ctx.bar(list(entries("attack").values()), desc="every attack"):
        r = attack(model, x, spec.name, label=y, progress=False)
        for i in range(len(x)):
            rows.append([spec.name, spec.paper, _options_text(spec), str(int(y[i])), str(int(r.pred[i])),
                         "yes" if bool(r.success[i]) else "no", f"{float(r.linf[i]):.2f}"])
    return sw.table(f"Every attack at its defaults ({name})",
                    ["attack", "paper", "options", "class before", "class after", "flipped", "L∞ (0-255)"], rows,
                    "Each registered attack called as see.attack(model, x, name) with no option.", model=name, seed=0)


def every_metric(ctx: Context, sw, name: str, model, x: torch.Tensor, target, maps: dict):
    """Every registered metric at its defaults on the saliency map of ``x``: a table block."""
    a = maps.get("saliency", attribute(model, x, "saliency", target=target))
    rows = []
    for spec in ctx.bar(list(entries("metric").values()), desc="every metric"):
        fn, takes = spec.fn, spec.extra.get("takes", "map")
        r = fn(model, x, "saliency" if takes == "method" else a, target, progress=False)
        score = getattr(r, "score", getattr(r, "values", None))  # a curve's area, or a per-sample score
        rnd = getattr(r, "random_score", getattr(r, "baseline", None))
        rows.append([spec.name, spec.paper, spec.extra.get("better", ""),
                     _fmt(score.double().mean()) if score is not None else "",
                     _fmt(rnd.double().mean()) if rnd is not None else ""])
    return sw.table(f"Every metric on the saliency map ({name})",
                    ["metric", "paper", "better", "score", "random ranking"], rows,
                    "Each registered metric at its defaults on the same saliency map (a method metric re-runs "
                    f"saliency), the mean over {len(x)} input(s); the random-ranking column is the metric's own "
                    "baseline where it has one.", model=name, method="saliency", seed=0)
