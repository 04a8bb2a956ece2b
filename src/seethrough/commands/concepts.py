"""``seethrough tcav | influence | distill``: concepts, influential training inputs, distilled trees.

On the bundled digit models they use the bundled digits. Any other model (``-m ./mymod.py:factory``,
with ``--input-size``/``--channels`` as it needs) brings its data as folders of images, sub-folders
being the classes (a number, or a ``--labels`` name):

- ``tcav``: ``--data`` (images of class ``--target``), ``--layer``; the concept is a folder of images
  or a pattern stamped on the random images; the random images are ``--random`` (default: crops of
  the bundled photos at the model's input size).
- ``influence``: ``--train`` (labelled by sub-folder) and ``--test`` (one image; its label is ``-t``,
  default the model's prediction).
- ``distill``: ``--data`` (images; the tree is fitted to the model's own labels).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .entry_options import chosen, spec_command
from .base import (
    ArchOpt, ShaOpt, UnsafeOpt, app, image_folder, layer_option, load, model_option, out_dir, out_option, renamed,
    seed_option, target_option, top_option,
)

_DIGIT_MODELS = ("lenet-digits", "logreg-digits")
_PATTERNS = ("stripes", "dots", "checker")


def write_result(result, folder: Path, name: str) -> None:
    """The raw result beside the picture: NAME.npz/.json (reloadable with seethrough.results.load) and NAME.csv."""
    from ..results import write_result as write

    write(result, folder, name)


def _save(fig, out: Path, name: str) -> Path:
    path = out_dir(out) / name
    fig.savefig(path, dpi=90)
    typer.echo(f"figure written to {path}")
    return path


def _refuse(model: str, given: dict[str, object], command: str) -> None:
    """A digit zoo model uses the bundled digits: data options given with one are refused, not ignored."""
    from .base import shape_options

    extra = [k for k, v in given.items() if v is not None] + [f"--{k.replace('_', '-')}" for k in shape_options()]
    if extra:
        raise ValueError(f"{command} on {model} uses the bundled digits: drop {', '.join(extra)} (they give the data "
                         "of your own model)")


def _need(value, option: str, command: str, what: str):
    if value is None:
        raise ValueError(f"{command} on your own model needs {option} ({what})")
    return value


def _random_photos(loaded, seed: int):
    """Crops of the bundled photos at the model's input size: the default random set for your model's TCAV."""
    import torch

    from seethrough.embed import photo_crops

    x, _, _ = photo_crops(8, 128, seed=seed)
    return torch.cat([loaded.preprocess(c[None]) for c in x])


@app.command()
def tcav(
    concept: str = typer.Option("stripes", "--concept", help="a pattern stamped on the images (stripes, dots, "
                                "checker) or a folder of concept images"),
    layer: Optional[list[str]] = layer_option(None, help="layer names: repeat -l or separate by commas "
                                              "(default: pool2 on the digit models; required for your model)"),
    target: int = target_option(7, "the class whose use of the concept is tested"),
    model: str = model_option("lenet-digits"),
    arch: Optional[str] = ArchOpt,
    unsafe_pickle: bool = UnsafeOpt,
    sha256: Optional[str] = ShaOpt,
    data: Optional[Path] = typer.Option(None, "--data", help="your model: a folder of images of class --target"),
    random: Optional[Path] = typer.Option(None, "--random", help="your model: a folder of random images "
                                          "(default: crops of the bundled photos)"),
    planted: Optional[str] = typer.Option(None, "--planted", help="digit models: the twin with a planted concept, e.g. stripes:7"),
    random_sets: int = typer.Option(10, "--random-sets", help="R: random CAVs per side of the t-test (>= 2)"),
    n: int = renamed("--samples", "--n", 100, "size of the concept set and of each random set"),
    alpha: float = typer.Option(0.05, "--alpha"),
    seed: int = seed_option("seed of the stamped patterns and the random sets"),
    out: Path = out_option("tcav", "tcav.png"),
):
    """TCAV: does the model use CONCEPT for class TARGET? Scores, random distributions, p-values."""
    import seethrough as see

    if random_sets < 2:
        raise ValueError(f"random_sets must be an int >= 2 (the t-test needs two scores per side), got {random_sets}")
    if concept not in _PATTERNS and not Path(concept).is_dir():
        raise ValueError(f"--concept must be {', '.join(_PATTERNS)} or a folder of concept images, got {concept!r}")
    if not 2 <= n <= 200:
        raise ValueError(f"--samples must be in 2..200, got {n}")
    if model in _DIGIT_MODELS:
        _refuse(model, {"--data": data, "--random": random}, "tcav")
        if not 0 <= target <= 9:
            raise ValueError(f"--target must be a digit class 0-9, got {target}")
        net = see.zoo.load(model, planted=planted)[0]
        x, _ = see.zoo.digits("train")
        xt, yt = see.zoo.digits("test")
        class_x, random_x, base, prep = xt[yt == target], x[200:], x[:n], see.zoo.preprocess(model)
        layers = layer or ["pool2"]
    else:
        if planted is not None:
            raise ValueError("--planted picks a digit model's twin; it does not apply to your own model")
        loaded = load(model, arch, unsafe_pickle, sha256)
        net, prep = loaded.model, loaded.preprocess
        layers = _need(layer, "--layer", "tcav", "the layers to test, see `seethrough layers -m ...`")
        class_x = image_folder(_need(data, "--data", "tcav", f"a folder of images of class {target}"), prep, "--data")[0]
        random_x = image_folder(random, prep, "--random")[0] if random is not None else _random_photos(loaded, seed)
        base = random_x[:n]
    if Path(concept).is_dir():
        concept_x = image_folder(concept, prep, "--concept")[0][:n]
        name = Path(concept).name
    else:
        concept_x, name = see.concepts.stamp(base, concept, seed=seed + 1), concept
    r = see.concepts.tcav(net, concept_x, class_x, layers, target, random_sets=random_sets, alpha=alpha,
                          seed=seed, random_x=random_x, concept=name)
    for row in r.to_frame().itertuples():
        typer.echo(f"{row.layer}: TCAV score {row.score:.2f} (random {row.random_mean:.2f}), p = {row.pvalue:.3g}"
                   f"{' significant' if row.significant else ' not significant'}, CAV accuracy {row.cav_accuracy:.0%}")
    _save(see.render.tcav_plot(r), out, "tcav.png")
    write_result(r, out_dir(out), "tcav")


@app.command(cls=spec_command("influence"))
def influence(
    ctx: typer.Context,
    model: str = model_option("logreg-digits"),
    arch: Optional[str] = ArchOpt,
    unsafe_pickle: bool = UnsafeOpt,
    sha256: Optional[str] = ShaOpt,
    train: Optional[Path] = typer.Option(None, "--train", help="your model: a folder of training images, one "
                                         "sub-folder per class (named by its number or a --labels name)"),
    test: Optional[Path] = typer.Option(None, "--test", help="your model: the test image (a file or a bundled photo's name)"),
    target: Optional[int] = target_option(None, "your model: the test image's class (default: the model's prediction)"),
    test_index: int = typer.Option(0, "--test-index", help="digit models: index into the held-out digits"),
    method: str = typer.Option("", "--method", help="the solver, listed below with its options (default: exact for "
                               "logreg, ekfac otherwise)"),
    damping: Optional[float] = typer.Option(None, "--damping", help="default: the L2 of logreg-digits, 1e-3 otherwise"),
    validate: int = typer.Option(0, "--validate", help="retrain without the K top-|score| points (logreg-digits only)"),
    k: int = top_option(6, "how many helpful and harmful training inputs to show", old="--k"),
    out: Path = out_option("influence", "influence.png (and influence-loo.png with --validate)"),
):
    """Which training inputs helped or hurt the prediction on one test input (predicted Δ loss if removed).

    The solver's own options follow the command (`--cg-tol 1e-8`, `--lissa-depth 200`): they are listed below.
    """
    import torch

    from ..catalog import get

    import seethrough as see
    from .options import bundled_image

    if damping is not None and damping < 0:
        raise ValueError(f"damping must be a number >= 0 (it is added to the Hessian), got {damping}")
    logreg = model == "logreg-digits"
    if model in _DIGIT_MODELS:
        _refuse(model, {"--train": train, "--test": test, "--target": target}, "influence")
        net = see.zoo.load(model)[0]
        x, y = see.zoo.digits("train")
        xt, yt = see.zoo.digits("test")
        if not 0 <= test_index < len(xt):
            raise ValueError(f"--test-index {test_index} out of range: there are {len(xt)} test digits (0..{len(xt) - 1})")
        t = slice(test_index, test_index + 1)
        test_set, labels = (xt[t], yt[t]), None
        params = None if logreg or (method or "ekfac") != "ekfac" else ["conv2", "fc1", "fc2", "fc3"]
    else:
        from ..hooks import forward
        from ..outputs import MODEL_HINT, class_output

        loaded = load(model, arch, unsafe_pickle, sha256)
        net, labels = loaded.model, loaded.labels
        x, y, names, _ = image_folder(_need(train, "--train", "influence", "a folder of images, one sub-folder per class"),
                                      loaded.preprocess, "--train", labels)
        if y is None:
            raise ValueError(f"--train {train}: put the images in one sub-folder per class (named by the class number)")
        if names is not None:
            raise ValueError(f"--train {train}: sub-folders {', '.join(names[:4])} are not class numbers or --labels names")
        xt = loaded.preprocess(bundled_image(_need(test, "--test", "influence", "one test image"), "--test"))
        c = int(class_output(forward(net, xt), hint=MODEL_HINT).argmax(1)[0]) if target is None else target
        test_set, params = (xt, torch.tensor([c])), None
    method = method or ("exact" if logreg else "ekfac")
    get("influence", method)  # an unknown solver: one line listing the registered ones
    how = chosen(ctx, "influence", [method])[method]  # --damping is influence's own option
    damping = damping if damping is not None else (see.zoo.LOGREG_L2 if logreg else 1e-3)
    r = see.influence(net, (x, y), test_set, method=method, damping=damping, params=params, **how)
    name = (lambda i: labels[i] if labels and i < len(labels) else str(i))
    for kind in ("helpful", "harmful"):
        idx, vals = r.top(k, kind)
        typer.echo(f"{kind}: " + ", ".join(f"#{i} ('{name(y[i].item())}') {v:+.3g}" for i, v in zip(idx.tolist(), vals.tolist())))
    _save(see.render.influence_gallery(r, k=k), out, "influence.png")
    write_result(r, out_dir(out), "influence")
    if validate:
        if not logreg:
            raise ValueError("--validate retrains to optimality and is available for logreg-digits only")
        from seethrough.zoo.logreg import retrainer

        v = r.validate(validate, retrainer(x, y))
        typer.echo(f"leave-one-out over {validate} points: Pearson {v.pearson:.3f}, Spearman {v.spearman:.3f}")
        _save(see.render.loo_scatter(v), out, "influence-loo.png")


@app.command()
def distill(
    model: str = model_option("mlp-2d"),
    arch: Optional[str] = ArchOpt,
    unsafe_pickle: bool = UnsafeOpt,
    sha256: Optional[str] = ShaOpt,
    data: Optional[Path] = typer.Option(None, "--data", help="your model: a folder of images to fit the tree on "
                                        "(labelled by the model itself)"),
    depth: Optional[int] = typer.Option(None, "--depth", help="tree depth (>= 1; default 4 for a tree, 6 for a soft tree)"),
    kind: str = renamed("--method", "--kind", "tree", "the surrogate: tree or soft-tree"),
    seed: int = seed_option("seed of the tree's fit"),
    out: Path = out_option("distill", "tree.png"),
):
    """Fit a decision tree (or a soft decision tree) to the model's own labels; print fidelity and accuracy."""
    import seethrough as see

    if depth is not None and depth < 1:  # before loading: mlp-2d trains on load
        raise ValueError(f"depth must be an int >= 1, got {depth}")
    if model == "mlp-2d" or model in _DIGIT_MODELS:
        _refuse(model, {"--data": data}, "distill")
    if model == "mlp-2d":
        net, data_set, classes = see.zoo.load(model)[0], see.zoo.toy_2d(400), ["0", "1"]
    elif model in _DIGIT_MODELS:
        net, data_set, classes = see.zoo.load(model)[0], see.zoo.digits("all"), [str(i) for i in range(10)]
    else:
        loaded = load(model, arch, unsafe_pickle, sha256)
        x, y, names, _ = image_folder(_need(data, "--data", "distill", "a folder of images"), loaded.preprocess,
                                      "--data", loaded.labels)
        # accuracy needs true labels: numbered (or --labels-named) sub-folders give them; otherwise fidelity only
        net, data_set, classes = loaded.model, (x, y) if y is not None and names is None else x, loaded.labels
    s = see.distill(net, data_set, method=kind, depth=depth, seed=seed)
    acc = "" if s.accuracy is None else f", accuracy {s.accuracy:.1%}"
    typer.echo(f"{kind} of depth {s.depth}: fidelity {s.fidelity:.1%}{acc}")
    _save(see.render.tree_plot(s, class_names=classes), out, "tree.png")
    write_result(s, out_dir(out), "distill")
