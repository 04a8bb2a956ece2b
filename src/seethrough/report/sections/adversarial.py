"""Adversarial examples: the course's ascent table, PGD (untargeted and targeted), the sphere test,
a universal patch on the digits and adversarial training as a defence."""
from __future__ import annotations


from ... import zoo
from ...adversarial import attack, robust_accuracy, robust_digits_model, sphere_test, train_patch
from ...render import attack_figure, patch_figure, robustness_plot
from ..registry import Context, Text, section

_PHOTOS = ("chelsea", "coffee")
_ASCENT = {"step_size": 0.1, "steps": 10}


@section("adversarial", "Adversarial examples", order=60)
def build(ctx: Context) -> list:
    model, _ = ctx.model("efficientnet-lite0")
    labels = zoo.labels("efficientnet-lite0")
    blocks: list = [Text(
        "Gradient ascent on the loss with respect to the input, the weights frozen: a perturbation far smaller "
        "than the image, invisible or nearly so, changes the prediction. Perturbation sizes in pixel units are "
        "out of 255.")]
    blocks += _ascent_table(ctx, model, labels)
    if ctx.quick:
        return blocks
    blocks += _pgd(ctx, model, labels)
    blocks.append(_patch(ctx))
    blocks.append(_defence(ctx))
    return blocks


def _ascent_table(ctx: Context, model, labels) -> list:
    """The course's table: the predicted class of each photo at every iteration of ``ascent``."""
    sw = ctx.stopwatch()
    names, x = ctx.photos(_PHOTOS)
    r = attack(model, x, "ascent", progress=ctx.progress, **_ASCENT)
    columns = ["iteration"] + list(names)
    rows = []
    for k in range(r.history_class.shape[1]):
        cells = [f"{labels[int(r.history_class[i, k])]} ({r.history_prob[i, k]:.1%})" for i in range(len(names))]
        rows.append(["0 (clean)" if k == 0 else str(k)] + cells)
    rows.append(["final ‖δ‖/‖x‖ (L∞)"]
                + [f"{r.relative[i]:.4f} (L∞ {r.linf[i]:.0f}/255)" for i in range(len(names))])
    opts = ", ".join(f"{k}={v}" for k, v in _ASCENT.items()) + ", step on the normalised input"
    flips = [next((k for k in range(1, r.history_class.shape[1]) if r.history_class[i, k] != r.history_class[i, 0]), None)
             for i in range(len(names))]
    left = ", ".join(f"{n} after {k} step{'s' if k != 1 else ''}" if k else f"{n} never" for n, k in zip(names, flips))
    table = sw.table(
        "Ascent on the loss, iteration by iteration", columns, rows,
        f"The course's loop (SGD with step_size = {_ASCENT['step_size']} on minus the cross-entropy of the normalised input, pixels "
        f"kept in [0, 1]). The class changes ({left}) while the final perturbation stays at "
        f"{float(r.relative.max()):.2%} of the image's norm or less (last row).",
        model="efficientnet-lite0", method="ascent", options=opts, seed=ctx.seed)
    path = []
    for c in r.history_class[0].tolist():
        if not path or path[-1] != c:
            path.append(c)
    fig = sw.figure(
        f"{names[0]} after the ascent", attack_figure(r, 0, labels),
        "Original, adversarial, and the difference magnified until visible: the change is spread over the whole "
        f"image as fine noise, not a picture of the new class. On the right, the predicted class at every step: "
        f"{' → '.join(labels[c] for c in path)}.",
        model="efficientnet-lite0", method="ascent", options=opts, seed=ctx.seed)
    return [table, fig]


def _pgd(ctx: Context, model, labels) -> list:
    sw = ctx.stopwatch()
    _, x = ctx.photos(["chelsea"])
    r = attack(model, x, "pgd", eps=1, seed=ctx.seed, progress=ctx.progress)
    untargeted = sw.figure(
        "PGD at ε = 1/255 on chelsea", attack_figure(r, 0, labels),
        f"No pixel moves by more than 1/255, the smallest step an 8-bit image can take, and the prediction "
        f"still changes ({r.lines(labels)[0].split(' · ')[0]}); the example survives rounding to a PNG: "
        f"{'yes' if bool(r.success_8bit[0]) else 'no'}.",
        model="efficientnet-lite0", method="pgd", options="eps=1, steps=10, random_start", seed=ctx.seed)
    t = attack(model, x, "pgd", target=859, eps=4, steps=20, seed=ctx.seed, progress=ctx.progress)
    targeted = sw.figure(
        "Targeted PGD: make chelsea a toaster", attack_figure(t, 0, labels),
        f"With ε = 4/255 and 20 steps the attacker chooses the class: p(toaster) goes from almost zero to "
        f"{t.prob[0]:.0%}. The picture of a cat is unchanged to the eye.",
        model="efficientnet-lite0", method="pgd", options="target=859 (toaster), eps=4, steps=20", seed=ctx.seed)
    n = 300
    s = sphere_test(model, x, r.x_adv, n_samples=n, radius_factor=2, seed=ctx.seed, progress=ctx.progress)
    sphere = sw.table(
        "Random directions at twice the adversarial distance", ["photo", "‖δ‖ (adversarial)", "sphere radius",
                                                                 "label changes"],
        [["chelsea", f"{(r.x_adv - r.x).norm():.3f}", f"{float(s.radius[0]):.3f}", f"{int(s.changed[0])} of {n}"]],
        "Random points twice as far away as the PGD example almost never change the label: adversarial "
        "directions are rare and found by the gradient, the decision boundary is not close in every direction.",
        model="efficientnet-lite0", method="sphere_test", options=f"n={n}, radius_factor=2, from pgd eps=1",
        seed=ctx.seed)
    return [untargeted, targeted, sphere]


def _patch(ctx: Context):
    sw = ctx.stopwatch()
    lenet, _ = ctx.model("lenet-digits")
    xd, _ = zoo.digits("test")
    opts = {"target": 8, "steps": 400, "n_samples": 32, "step_size": 0.1, "scale": (0.35, 0.45)}
    p = train_patch(lenet, xd[:100], seed=ctx.seed, **opts)
    return sw.figure(
        "A universal patch that turns digits into 8s", patch_figure(p, xd[:100], zoo.labels("lenet-digits")),
        f"One patch, optimised over random placements, pasted on held-out placements: it wins {p.success:.0%} of "
        f"the time against {p.random_success:.0%} for a random-noise patch of the same size. LeNet on small digits "
        "resists a patch fairly well; a patch is a physical attack, but not a free one.",
        model="lenet-digits", method="train_patch",
        options="target=8, steps=400, n_samples=32, step_size=0.1, scale=0.35-0.45, 100 test digits", seed=ctx.seed)


def _defence(ctx: Context):
    sw = ctx.stopwatch()
    lenet, _ = ctx.model("lenet-digits")
    xd, yd = zoo.digits("test")
    xd, yd = xd[:200], yd[:200]
    eps = [0, 8, 16, 32, 48]
    before = robust_accuracy(lenet, xd, yd, eps)
    robust = robust_digits_model(eps=32, seed=ctx.seed)  # fine-tuned once (about 7 s), then cached
    after = robust_accuracy(robust, xd, yd, eps)
    i = eps.index(32)
    return sw.figure(
        "Defence: adversarial training", robustness_plot(eps, {"lenet-digits": before, "adversarially trained": after}),
        f"Accuracy under PGD as ε grows: fine-tuning on PGD examples at ε = 32/255 raises the accuracy there from "
        f"{before[i]:.0%} to {after[i]:.0%}, at a cost of {max(before[0] - after[0], 0):.1%} clean accuracy; larger "
        "ε still breaks it, robustness is bought for the ε trained on.",
        model="lenet-digits", method="adversarial_training + pgd",
        options="train eps=32, 3 PGD steps, 3 epochs; eval 200 test digits, 10 PGD steps", seed=ctx.seed)
