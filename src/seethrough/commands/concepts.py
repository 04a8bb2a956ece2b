"""``seethrough tcav | influence | distill``: concepts, influential training digits, distilled trees."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .base import app

_DIGIT_MODELS = ("lenet-digits", "logreg-digits")


def _digit_model(model: str, planted: Optional[str] = None):
    import seethrough as see

    if model not in _DIGIT_MODELS:
        raise ValueError(f"--model must be one of {', '.join(_DIGIT_MODELS)} here (the CLI uses the bundled digits); "
                         f"got {model!r}; use the Python API for other models")
    return see.zoo.load(model, planted=planted)[0]


def _save(fig, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    typer.echo(f"figure written to {out}")


@app.command()
def tcav(
    concept: str = typer.Option("stripes", "--concept", help="a procedural concept stamped on digits: stripes, dots, checker"),
    layer: str = typer.Option("pool2", "--layer", "-l", help="comma-separated layer names"),
    target: int = typer.Option(7, "--target", help="the class whose use of the concept is tested"),
    model: str = typer.Option("lenet-digits", "--model", "-m", help="lenet-digits"),
    planted: Optional[str] = typer.Option(None, "--planted", help="use the twin with a planted concept, e.g. stripes:7"),
    random_sets: int = typer.Option(10, "--random-sets", help="R: random CAVs per side of the t-test (>= 2)"),
    n: int = typer.Option(100, "--n", help="size of the concept set and of each random set"),
    alpha: float = typer.Option(0.05, "--alpha"),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(Path("tcav.png"), "--out", "-o"),
):
    """TCAV: does the model use CONCEPT for class TARGET? Scores, random distributions, p-values."""
    import seethrough as see

    if random_sets < 2:
        raise ValueError(f"random_sets must be an int >= 2 (the t-test needs two scores per side), got {random_sets}")
    if concept not in ("stripes", "dots", "checker"):
        raise ValueError(f"--concept must be stripes, dots or checker, got {concept!r}")
    net = _digit_model(model, planted)
    x, _ = see.zoo.digits("train")
    xt, yt = see.zoo.digits("test")
    if not 0 <= target <= 9:
        raise ValueError(f"--target must be a digit class 0-9, got {target}")
    if not 2 <= n <= 200:
        raise ValueError(f"--n must be in 2..200, got {n}")
    concept_x = see.concepts.stamp(x[:n], concept, seed=seed + 1)
    layers = [s.strip() for s in layer.split(",") if s.strip()]
    r = see.concepts.tcav(net, layers, concept_x, xt[yt == target], target, random_sets=random_sets, alpha=alpha,
                          seed=seed, random_x=x[200:], concept=concept)
    for row in r.to_frame().itertuples():
        typer.echo(f"{row.layer}: TCAV score {row.score:.2f} (random {row.random_mean:.2f}), p = {row.pvalue:.3g}"
                   f"{' significant' if row.significant else ' not significant'}, CAV accuracy {row.cav_accuracy:.0%}")
    _save(see.render.tcav_plot(r), out)


@app.command()
def influence(
    model: str = typer.Option("logreg-digits", "--model", "-m", help="logreg-digits or lenet-digits"),
    test_index: int = typer.Option(0, "--test-index", help="index into the held-out digits"),
    method: str = typer.Option("", "--method", help="exact, cg, lissa, ekfac (default: exact for logreg, ekfac for lenet)"),
    damping: Optional[float] = typer.Option(None, "--damping", help="default: the L2 of logreg-digits, 1e-3 for lenet"),
    validate: int = typer.Option(0, "--validate", help="retrain without the K top-|score| points (logreg-digits only)"),
    k: int = typer.Option(6, "--k", help="how many helpful and harmful digits to show"),
    out: Path = typer.Option(Path("influence.png"), "--out", "-o"),
):
    """Which training digits helped or hurt the prediction on one test digit (predicted Δ loss if removed)."""
    import seethrough as see

    if damping is not None and damping < 0:
        raise ValueError(f"damping must be a number >= 0 (it is added to the Hessian), got {damping}")
    net = _digit_model(model)
    x, y = see.zoo.digits("train")
    xt, yt = see.zoo.digits("test")
    if not 0 <= test_index < len(xt):
        raise ValueError(f"--test-index {test_index} out of range: there are {len(xt)} test digits (0..{len(xt) - 1})")
    logreg = model == "logreg-digits"
    method = method or ("exact" if logreg else "ekfac")
    damping = damping if damping is not None else (see.zoo.LOGREG_L2 if logreg else 1e-3)
    params = None if logreg or method != "ekfac" else ["conv2", "fc1", "fc2", "fc3"]
    t = slice(test_index, test_index + 1)
    r = see.influence(net, (x, y), (xt[t], yt[t]), method=method, damping=damping, params=params)
    for kind in ("helpful", "harmful"):
        idx, vals = r.top(k, kind)
        typer.echo(f"{kind}: " + ", ".join(f"#{i} ('{y[i].item()}') {v:+.3g}" for i, v in zip(idx.tolist(), vals.tolist())))
    _save(see.render.influence_gallery(r, k=k), out)
    if validate:
        if not logreg:
            raise ValueError("--validate retrains to optimality and is available for logreg-digits only")
        from seethrough.zoo.logreg import retrainer

        v = r.validate(validate, retrainer(x, y))
        typer.echo(f"leave-one-out over {validate} points: Pearson {v.pearson:.3f}, Spearman {v.spearman:.3f}")
        _save(see.render.loo_scatter(v), out.with_name(out.stem + "-loo.png"))


@app.command()
def distill(
    model: str = typer.Option("mlp-2d", "--model", "-m", help="mlp-2d, lenet-digits or logreg-digits"),
    depth: Optional[int] = typer.Option(None, "--depth", help="tree depth (>= 1; default 4 for a tree, 6 for a soft tree)"),
    kind: str = typer.Option("tree", "--kind", help="tree or soft-tree"),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(Path("tree.png"), "--out", "-o"),
):
    """Fit a decision tree (or a soft decision tree) to the model's own labels; print fidelity and accuracy."""
    import seethrough as see

    if depth is not None and depth < 1:  # before loading: mlp-2d trains on load
        raise ValueError(f"depth must be an int >= 1, got {depth}")
    if model == "mlp-2d":
        net, data, classes = see.zoo.load(model)[0], see.zoo.toy_2d(400), ["0", "1"]
    else:
        net, data, classes = _digit_model(model), see.zoo.digits("all"), [str(i) for i in range(10)]
    s = see.distill(net, data, kind=kind, depth=depth, seed=seed)
    typer.echo(f"{kind} of depth {s.depth}: fidelity {s.fidelity:.1%}, accuracy {s.accuracy:.1%}")
    _save(see.render.tree_plot(s, class_names=classes), out)
