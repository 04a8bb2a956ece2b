"""Every registered entry of every family as a :class:`seethrough.spec.Spec`: the one list the CLI's
help and options, the explorer's menus and controls, the report's catalogue and the conformance
tests enumerate (issue 19).

Each family keeps its own registration point (``@attribution.register``, ``@adversarial.register``,
``@metrics.register_metric``, ``@report.section``, the objective forms, the projection, influence
and sanity names); this module reads them *at call time*, so an entry registered a moment ago is
listed, and derives each entry's options from its function (:func:`seethrough.spec.options_from`).

>>> import seethrough.catalog as cat
>>> cat.FAMILIES[:3]
('attribution', 'attack', 'objective')
>>> spec = cat.get("attribution", "integrated-gradients")
>>> spec.option("steps").default, spec.kinds[:2]
(50, ('image', 'tabular'))
>>> "eps" in [o.name for o in cat.get("attack", "pgd").options]
True
"""
from __future__ import annotations

from typing import Callable

from .spec import SHARED, Spec, docstring_help, first_line, option_for, options_from

FAMILIES = ("attribution", "attack", "objective", "metric", "projection", "influence", "sanity", "report", "view")

# Options every attribution entry takes through seethrough.attribute (not the method's own).
_ATTRIBUTE_SHARED = SHARED + ("score", "kinds")


def _attribution() -> dict[str, Spec]:
    from .attribution import METHODS

    out = {}
    for m in METHODS.values():
        impl = getattr(m.fn, "__seethrough_impl__", None)
        fixed = getattr(m.fn, "__seethrough_fixed__", ())
        declared = getattr(m.fn, "__seethrough_options__", None)
        opts = options_from(m.fn, skip=SHARED, impl=impl, fixed=fixed, declared=declared)
        renamed = {**getattr(impl, "__seethrough_renamed__", {}), **getattr(m.fn, "__seethrough_renamed__", {})}
        out[m.name] = Spec(m.name, "attribution", m.fn, m.paper, m.kinds, opts, "Tensor",
                           first_line(impl or m.fn), {"family": m.family, "region": m.region, "score": m.score,
                                                      "needs_hooks": m.needs_hooks, "renamed": renamed})
    return out


_ATTACK_HELP = {"eps": "the budget: how far each pixel may move, in 0-255 pixel units",
                "steps": "iterations", "step_size": "the step per iteration, in 0-255 pixel units",
                "norm": "linf or l2", "random_start": "start from a random point of the ε-ball"}


_ATTACK_CHOICES = {"norm": ("linf", "l2"), "space": ("normalized", "pixel")}


def _attack() -> dict[str, Spec]:
    from .adversarial import ATTACKS
    from .adversarial.attacks import RENAMED

    out = {}
    for a in ATTACKS.values():
        doc = first_line(a.build) + " " + a.description
        opts = []
        for name, default in a.defaults.items():  # the defaults are the attack's option list
            opts.append(option_for(name, default, help=docstring_help(doc, name) or _ATTACK_HELP.get(name, ""),
                                   range=(0, None) if name in ("eps", "steps", "step_size") else None,
                                   choices=_ATTACK_CHOICES.get(name),
                                   type="optional-float" if name == "step_size" and default is None else None))
        renamed = {old: new for old, new in RENAMED.items() if new in a.defaults}
        out[a.name] = Spec(a.name, "attack", a.build, a.paper, ("image",), tuple(opts), "AttackResult", a.description,
                           {"renamed": renamed})
    return out


def _objective() -> dict[str, Spec]:
    from .optimize import objectives

    return {name: Spec(name, "objective", fn, "", ("image",), options_from(fn, skip=()), "Objective", first_line(fn))
            for name, (fn, _) in objectives._KINDS.items()}


def _metric() -> dict[str, Spec]:
    from .metrics import METRICS

    skip = SHARED + ("attribution", "method")
    return {m.name: Spec(m.name, "metric", m.fn, m.paper, m.kinds, options_from(m.fn, skip=skip),
                         "CurveResult" if m.curve else "ScoreResult", first_line(m.fn),
                         {"better": m.better, "takes": m.takes, "area": m.area})
            for m in METRICS.values()}


# Which of project()'s options each projection reads (the function serves all three).
_PROJECTION_OPTIONS = {"tsne": ("seed", "perplexity", "pca", "init", "backend", "n_jobs"), "pca": ("seed",),
                       "umap": ("seed", "n_neighbors", "min_dist", "pca")}
_PROJECTION_PAPERS = {"tsne": "van der Maaten & Hinton, 2008", "pca": "Pearson, 1901",
                      "umap": "McInnes, Healy & Melville, 2018"}


def _projection() -> dict[str, Spec]:
    from .embed import METHODS
    from .embed.project import project

    every = {o.name: o for o in options_from(project, skip=SHARED + ("features", "method"))}
    return {m: Spec(m, "projection", project, _PROJECTION_PAPERS.get(m, ""), ("image", "tabular", "tokens", "tensor"),
                    tuple(every[k] for k in _PROJECTION_OPTIONS.get(m, every) if k in every), "Tensor",
                    first_line(project)) for m in METHODS}


_INFLUENCE_OPTIONS = {"exact": ("damping",), "cg": ("damping", "cg_tol"), "lissa": ("damping", "lissa_depth", "lissa_scale"),
                      "ekfac": ("damping",), "tracin": ("checkpoints",)}
_INFLUENCE_PAPERS = {"exact": "Koh & Liang, 2017", "cg": "Koh & Liang, 2017 (Martens, 2010)",
                     "lissa": "Agarwal, Bullins & Hazan, 2017", "ekfac": "Grosse et al., 2023",
                     "tracin": "Pruthi et al., 2020"}


def _influence() -> dict[str, Spec]:
    from .influence import METHODS, influence

    every = {o.name: o for o in options_from(influence, skip=SHARED + ("train", "test", "loss", "method", "params"))}
    return {m: Spec(m, "influence", influence, _INFLUENCE_PAPERS.get(m, ""), ("image", "tabular", "tensor"),
                    tuple(every[k] for k in _INFLUENCE_OPTIONS.get(m, ()) if k in every), "Influence",
                    first_line(influence)) for m in METHODS}


def _sanity() -> dict[str, Spec]:
    from . import sanity

    entries = {"model-randomization": (sanity.randomization, "Adebayo et al., 2018", "SanityResult"),
               "data-randomization": (sanity.data_randomization, "Adebayo et al., 2018", "DataRandomization"),
               "trust-badge": (sanity.trust_badge, "Adebayo et al., 2018; Petsiuk et al., 2018", "TrustBadge")}
    skip = SHARED + ("method", "random_label_model", "attribution")
    return {name: Spec(name, "sanity", fn, paper, ("image", "tabular", "tokens", "tensor"), options_from(fn, skip=skip),
                       result, first_line(fn)) for name, (fn, paper, result) in entries.items()}


_READERS: dict[str, Callable[[], dict[str, Spec]]] = {
    "attribution": _attribution, "attack": _attack, "objective": _objective, "metric": _metric,
    "projection": _projection, "influence": _influence, "sanity": _sanity,
}
# The report's sections and the explorer's views sit above the library: their packages register their
# family here when imported (``import seethrough`` imports both), so the catalog never imports them.
_SURFACES = {"report": "seethrough.report", "view": "seethrough.web"}


def register_family(family: str, reader: Callable[[], dict[str, Spec]]) -> None:
    """Let a package above the library list its entries (``reader() -> {name: Spec}``) in the catalog.

    >>> sorted(entries("report"))[:2]  # registered by seethrough.report
    ['adversarial', 'attribution']
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; families: {', '.join(FAMILIES)}")
    _READERS[family] = reader


def entries(family: str) -> dict[str, Spec]:
    """Every entry of ``family`` (see :data:`FAMILIES`), read from its registry now.

    >>> sorted(entries("metric"))[:2]
    ['deletion', 'infidelity']
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; families: {', '.join(FAMILIES)}")
    if family not in _READERS:
        raise ValueError(f"the {family!r} family is registered by {_SURFACES[family]}: import it first")
    return _READERS[family]()


def get(family: str, name: str) -> Spec:
    """One entry; an unknown name is a ValueError listing the family's names."""
    found = entries(family)
    if name not in found:
        raise ValueError(f"unknown {family} {name!r}; available: {', '.join(found)}")
    return found[name]


def everything() -> list[Spec]:
    """Every entry of every family, family by family (the report's catalogue table)."""
    return [s for f in FAMILIES for s in entries(f).values()]
