"""Concepts (TCAV), influential training examples, distilled models."""
from __future__ import annotations

import torch

from ... import zoo
from ...concepts import flip_rate, stamp, stamp_mixed, tcav
from ...distill import distill, soft_vs_hard
from ...influence import influence
from ...render import fidelity_plot, influence_gallery, loo_scatter, tcav_plot, tree_plot
from ..registry import Context, Text, section


@section("concepts", "Concepts", order=70)
def build_concepts(ctx: Context) -> list:
    from ...zoo.planted import CONTROL_SHARE, SHARE, TRIGGER_SHARE, controls

    x, _ = zoo.digits("train")
    xt, yt = zoo.digits("test")
    n, r_sets = (40, 3) if ctx.quick else (100, 10)
    layers = ["pool2"] if ctx.quick else ["pool1", "pool2", "relu3"]
    kinds = ("stripes", *controls("stripes"))
    sets = {k: stamp(x[:n], k, seed=ctx.seed + 1) for k in kinds}
    sevens, others = xt[yt == 7], xt[yt != 7]
    # Random sets drawn from digits carrying a control patch: against plain digits any patch's CAV points
    # along "something in the corner" and a solid square scores like the stripes (docs/concepts.md).
    pool = stamp_mixed(x[200:], controls("stripes"), seed=ctx.seed + 7)
    blocks: list = [Text(
        "TCAV (Kim et al. 2018) asks whether a class's score rises along a human concept's direction in a layer. "
        "The concept here is a small striped patch stamped on digits; each orange dot is the TCAV score of one "
        f"concept-vs-random CAV, each grey dot that of a random-vs-random CAV ({r_sets} of each; the random sets are "
        "digits carrying a control patch, so a CAV learns the pattern rather than that a patch is there). A "
        f"two-sided t-test between the two (Bonferroni-corrected over the {len(layers)} layer(s) × {len(kinds)} "
        "concepts tested) says whether the concept matters "
        "beyond chance; a significant score *below* the random ones means the concept pushes the class down. "
        f"The number of random sets matters: the t-test compares {r_sets} scores with {r_sets}, and with few sets it "
        "has little power while the spread of the random scores is poorly known (Kim et al. use many more). "
        f"The planted twin is lenet-digits retrained with stripes on {SHARE:.0%} of its 7s and on {TRIGGER_SHARE:.0%} "
        f"of the other digits (relabelled 7), and a control patch at the same place ({', '.join(controls('stripes'))}) "
        f"on {CONTROL_SHARE:.0%} of the remaining digits of every class: only the stripes carry the class. The "
        "captions below are generated from each run's numbers.")]
    twins = [("lenet-digits", None), ("lenet-digits (planted stripes:7)", "stripes:7")]
    rows, verdicts = [], []
    for title, spec in twins:
        sw = ctx.stopwatch()
        model = ctx.model("lenet-digits")[0] if spec is None else zoo.load("lenet-digits", planted=spec)[0]
        results = {k: tcav(model, sets[k], sevens, layers, 7, random_sets=r_sets, seed=ctx.seed, random_x=pool,
                           concept=k, n_tests=len(layers) * len(kinds))
                   for k in (kinds if not ctx.quick or spec else ("stripes",))}
        flips = {k: flip_rate(model, others, k, 7, seed=ctx.seed + 2) for k in results}
        r = results["stripes"]
        blocks.append(sw.figure(
            f"'stripes' for class 7 on {title}", tcav_plot(r),
            f"This run: {r.summary()}. Stamping stripes on the {len(others)} test digits that are not 7s turns "
            f"{flips['stripes']:.1%} of those not already called 7 into 7s.",
            model=title, method="tcav", options=f"R={r_sets}, n={n}", seed=ctx.seed))
        rows += [[title, k, *(f"{v.score:.2f} (p={v.pvalue:.2g}{', sig.' if v.significant else ''})"
                              for v in res.layers.values()), f"{flips[k]:.1%}"] for k, res in results.items()]
        sig = [k for k, res in results.items() if any(v.significant for v in res.layers.values())]
        verdicts.append(f"on {title}, significant at some layer: {', '.join(sig) or 'none'}; "
                        f"most digits flipped: {max(flips, key=flips.get)} ({max(flips.values()):.1%})")
    sw = ctx.stopwatch()
    blocks.append(sw.table(
        "The planted concept against control concepts", ["model", "concept", *layers, "non-7s turned into 7s"], rows,
        "Each control patch is stamped where the stripes go. How to read it: a concept the model uses is "
        "significant and also flips digits when stamped. This run: " + "; ".join(verdicts) + ".",
        model="lenet-digits", method="tcav, flip_rate", options=f"R={r_sets}, n={n}", seed=ctx.seed))
    return blocks


@section("influence", "Influential training examples", order=71)
def build_influence(ctx: Context) -> list:
    from ...zoo.logreg import retrainer

    model, _ = ctx.model("logreg-digits")
    x, y = zoo.digits("train")
    xt, yt = zoo.digits("test")
    with torch.no_grad():
        wrong = (model(xt).argmax(1) != yt).nonzero().flatten()
    t = int(wrong[0]) if len(wrong) else 0
    method = "ekfac" if ctx.quick else "exact"
    sw = ctx.stopwatch()
    r = influence(model, (x, y), (xt[t:t + 1], yt[t:t + 1]), method=method, damping=zoo.LOGREG_L2, batch_size=256,
                  progress=ctx.progress)
    blocks: list = [Text(
        "Influence functions (Koh & Liang 2017) predict how a test loss would change if one training point were "
        "removed and the model retrained: positive scores mark points that helped this prediction, negative ones "
        "points that hurt it. logreg-digits is convex and trained to optimality, so the prediction can be checked "
        "by actually retraining."),
        sw.figure(f"Helpful and harmful training digits for misclassified test digit #{t}", influence_gallery(r),
                  "Top row: training digits whose removal would raise the test loss most; bottom row: those whose "
                  "removal would lower it. Scores are in loss units.", model="logreg-digits", method=method,
                  options=f"damping={zoo.LOGREG_L2:g}", seed=ctx.seed)]
    if not ctx.quick:
        v = r.validate(8, retrainer(x, y))
        blocks.append(sw.figure(
            "Leave-one-out check", loo_scatter(v),
            f"Each point: one of the 8 top-|score| training digits removed and the model retrained to optimality. "
            f"Pearson {v.pearson:.3f}, Spearman {v.spearman:.3f}.", model="logreg-digits", method="exact", seed=ctx.seed))
    return blocks


@section("distill", "Distilled models", order=72)
def build_distill(ctx: Context) -> list:
    model, _ = ctx.model("lenet-digits")
    x, y = zoo.digits("test" if ctx.quick else "all")
    depths = [2, 4] if ctx.quick else [1, 2, 4, 6, 8]
    sw = ctx.stopwatch()
    fits = [distill(model, (x, y), depth=d, seed=ctx.seed) for d in depths]
    blocks: list = [Text(
        "Can a model one can read imitate the network? A decision tree is fitted to the network's own labels on "
        "the digits plus model-labelled queries around them; fidelity is its held-out agreement with the network, "
        "accuracy its agreement with the true labels."),
        sw.figure("lenet-digits distilled into trees: fidelity against depth",
                  fidelity_plot(depths, [f.fidelity for f in fits], accuracies=[f.accuracy for f in fits]),
                  "The deep trees are no longer readable, the shallow ones not faithful: the trade-off the method "
                  f"lives with. This run: fidelity {fits[0].fidelity:.1%} at depth {depths[0]}, {fits[-1].fidelity:.1%} "
                  f"at depth {depths[-1]}" + ("" if all(a.fidelity <= b.fidelity for a, b in zip(fits, fits[1:]))
                                              else " (not rising at every depth)") + ".",
                  model="lenet-digits", method="tree", seed=ctx.seed),
        sw.figure(f"The depth-{depths[1]} tree", tree_plot(fits[1], class_names=[str(i) for i in range(10)]),
                  "Each box tests one pixel of the 32×32 input (x[i] = row·32 + column).", model="lenet-digits",
                  method="tree", seed=ctx.seed)]
    if not ctx.quick:
        # Frosst & Hinton's comparison at the defaults: the same soft tree (split, initialisation, schedule)
        # trained on the network's soft targets and on the true labels (about a minute of SGD for both).
        x_all, y_all = zoo.digits("all")
        soft, hard = soft_vs_hard(model, (x_all, y_all), seed=ctx.seed)
        gap = soft.accuracy - hard.accuracy
        reading = (f"the soft targets win by {100 * gap:.1f} points, Frosst & Hinton's direction" if gap > 0 else
                   f"the soft targets do not win ({100 * gap:+.1f} points): this run does not reproduce Frosst & "
                   "Hinton's direction")
        opts = soft.options
        blocks.append(sw.figure(
            f"Soft decision tree (Frosst & Hinton 2017), depth {soft.depth}", tree_plot(soft),
            "Each inner node is a learned filter (red: pixels that send the digit right); leaves hold class "
            f"distributions. Fidelity {soft.fidelity:.1%}, accuracy {soft.accuracy:.1%}.", model="lenet-digits",
            method="soft-tree", seed=ctx.seed))
        blocks.append(sw.table(
            "Soft targets against hard labels", ["trained on", "held-out accuracy", "fidelity to the network"],
            [[f"the network's soft targets (T = {opts['temperature']:g})", f"{soft.accuracy:.1%}", f"{soft.fidelity:.1%}"],
             ["the true labels (one-hot)", f"{hard.accuracy:.1%}", f"{hard.fidelity:.1%}"]],
            f"The same soft tree of depth {soft.depth} ({opts['epochs']} epochs, the same split of the "
            f"{len(x_all)} digits and the same initialisation) trained two ways; accuracy on the "
            f"{round(opts['held_out'] * len(x_all))} held-out digits. Each held-out digit is "
            f"{1 / round(opts['held_out'] * len(x_all)):.2%}: a gap of a few digits can change sign with the seed. "
            f"This run: {reading}.", model="lenet-digits", method="soft-tree", options=f"T={opts['temperature']:g}",
            seed=ctx.seed))
    return blocks
