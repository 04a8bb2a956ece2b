"""Trust: sanity checks (model and data randomization) and faithfulness (deletion/insertion, pointing game)."""
from __future__ import annotations

import torch

from ... import zoo
from ...attribution import attribute
from ...metrics import deletion, insertion, mosaic, pointing_game
from ...render import faithfulness_figure, sanity_figure
from ...sanity import data_randomization, randomization
from ..registry import Context, Text, section

_LENET = "lenet-digits"
_EFFNET = "efficientnet-lite0"


@section("sanity", "Sanity checks", order=60)
def build_sanity(ctx: Context) -> list:
    model, _ = ctx.model(_LENET)
    x, y = zoo.digits("test")
    n = 4 if ctx.quick else 16
    x, y = x[:n], y[:n]
    metrics = ("spearman", "spearman_abs", "ssim") if ctx.quick else ("spearman", "spearman_abs", "ssim", "hog")
    blocks: list = [Text(
        "A saliency map that looks right can be wrong. Adebayo et al. (2018) re-initialise a trained network's "
        "layers from the output down and recompute the map: a method that explains the model must change when "
        "the model does. Each figure shows the map after each step (the row of pictures) and its similarity to the "
        "original (the curves). The dashed lines are the same scores for a Sobel edge detector of the input, a "
        "'model-free explanation': a map that stays close to them draws edges rather than the model's evidence.")]
    for method, options, reading in [
        ("saliency", {"abs": False}, "The signed gradient loses its rank correlation as soon as the top layer is "
                                     "random: it depends on the model, as it should."),
        ("guided-backprop", {}, "Guided back-propagation keeps its picture while the classifier layers are random: "
                                "it reconstructs the image's edges more than it explains the decision (the paper's "
                                "finding)."),
        ("gradcam", {}, "Grad-CAM decorrelates as soon as the layers above its target layer are random."),
    ]:
        sw = ctx.stopwatch()
        r = randomization(model, x, method, y, metrics=metrics, seed=ctx.seed, progress=ctx.progress, **options)
        blocks.append(sw.figure(
            f"Cascading randomization: {method}", sanity_figure(r, title=f"{_LENET} · {method} · digit {int(y[0])}"),
            f"How to read it: curves that fall towards 0 mean the map depends on the learned weights; curves that "
            f"stay near 1 mean it does not. {reading} Scores are means over {n} test digits.",
            model=_LENET, method=method, options=f"mode=cascading metrics={','.join(metrics)} {options or ''}",
            seed=ctx.seed))
    if not ctx.quick:
        sw = ctx.stopwatch()
        twin, _ = zoo.load(_LENET, labels="permuted")
        rows = []
        for method, options in [("saliency", {"abs": False}), ("guided-backprop", {}), ("gradcam", {})]:
            d = data_randomization(model, twin, x, method, y, metrics=("spearman", "spearman_abs"), **options)
            rows.append([method, f"{d.scores[0].nanmean():.2f}", f"{d.scores[1].nanmean():.2f}",
                         f"{d.edge[1].nanmean():.2f}"])
        blocks.append(sw.table(
            "Data randomization: the same maps on a twin trained on permuted labels",
            ["method", "Spearman", "Spearman (abs)", "edge detector (abs)"], rows,
            "The twin has LeNet's architecture and was trained on the same digits with shuffled labels: it fits "
            "them all and is at chance on the test set. A method whose maps stay similar for both models does not "
            "depend on what the labels mean.", model=_LENET, method="data_randomization", seed=ctx.seed))
    return blocks


@section("faithfulness", "Faithfulness", order=61)
def build_faithfulness(ctx: Context) -> list:
    model, _ = ctx.model(_EFFNET)
    if ctx.quick:
        names, x = ctx.photos(["chelsea"])
        with torch.no_grad():
            y = model(x).argmax(1)
        methods, steps, patch = ("gradcam", "saliency"), 8, 28
    else:
        x, y = zoo.imagenet_samples(n=4)
        methods, steps, patch = ("gradcam", "rise", "saliency", "guided-backprop"), 16, 14
    blocks: list = [Text(
        "Does the map point at what the model uses? Deletion removes the pixels the map ranks highest first "
        "(towards black): the class probability should collapse fast (low area under the curve). Insertion starts "
        "from a blurred copy and puts the top pixels back first: the probability should rise fast (high area). "
        "Each curve has a dashed twin for a random ranking of the same pixels, computed the same way: a map is "
        "only informative where it beats that line.")]
    sw = ctx.stopwatch()
    curves = {}
    for method in methods:
        options = {"n_samples": 300, "seed": ctx.seed} if method == "rise" else {}
        a = attribute(model, x, method, target=y, **options)
        opts = dict(steps=steps, patch=patch, seed=ctx.seed, progress=ctx.progress)
        curves[method] = {"deletion": deletion(model, x, a, y, **opts), "insertion": insertion(model, x, a, y, **opts)}
    blocks.append(sw.figure(
        "Deletion and insertion against the random ranking", faithfulness_figure(curves, title=f"{_EFFNET} · {len(x)} photo(s)"),
        "How to read it: for deletion, the solid curve should lie below its dashed random twin; for insertion, above "
        "it. The numbers are the areas under the curves. Scattered random deletions are themselves destructive "
        "(the model has never seen such images), so deletion's random line is a demanding reference.",
        model=_EFFNET, method=", ".join(methods), options=f"steps={steps} patch={patch} baseline=black start=blur",
        seed=ctx.seed))
    if not ctx.quick:
        sw = ctx.stopwatch()
        xs, ys = zoo.imagenet_samples(n=20)
        mos = mosaic(xs, ys, grid=2, n_samples=12, seed=ctx.seed)
        rows = []
        for method in ("gradcam", "saliency"):
            a = attribute(model, mos.images, method, target=mos.targets)
            hits = pointing_game(a, mos.masks)
            rows.append([method, f"{hits.mean():.2f}", f"{hits.baseline.mean():.2f}"])
        blocks.append(sw.table(
            "Pointing game on 2×2 mosaics of labelled photos", ["method", "hit rate", "chance"], rows,
            "Each mosaic tiles four ImageNet photos of different classes; the map explains one tile's class and "
            "scores a hit when its maximum falls inside that tile.", model=_EFFNET, method="pointing_game",
            options="grid=2 n=12", seed=ctx.seed))
    return blocks
