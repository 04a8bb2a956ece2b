"""Attribution II: occlusion, LIME, KernelSHAP and RISE on efficientnet-lite0 (the cat photo)."""
from __future__ import annotations

import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from ... import zoo  # noqa: E402
from ...attribution import attribute  # noqa: E402
from ...attribution.occlusion import occlusion_drops, occlusion_windows  # noqa: E402
from ...attribution.perturbation import kernel_shap, lime  # noqa: E402
from ...render import for_display, lime_mask, panel, superpixel_boundaries  # noqa: E402
from ..registry import Context, Text, section  # noqa: E402

_MODEL = "efficientnet-lite0"


@section("perturbation", "Attribution: perturbation methods", order=25)
def build(ctx: Context) -> list:
    torch.manual_seed(ctx.seed)
    model, _ = ctx.model(_MODEL)
    labels = zoo.labels(_MODEL)
    _, x = ctx.photos(["chelsea"])
    # Every method costs hundreds of forward passes: a smaller copy of the photo keeps the report fast.
    size = 112 if ctx.quick else 160
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="area")
    with torch.no_grad():
        scores = model(x)
    target = scores.argmax(1)
    label = labels[int(target)]
    n = {"lime": 150, "kernel-shap": 150, "rise": 300} if ctx.quick else {"lime": 600, "kernel-shap": 600, "rise": 1200}
    window = size // 7
    stride = window if ctx.quick else window // 2
    common = {"seed": ctx.seed, "progress": ctx.progress}

    sw = ctx.stopwatch()
    seconds, maps = {}, {}
    t = time.perf_counter()
    maps["occlusion"] = attribute(model, x, "occlusion", target, window=window, stride=stride,
                                  progress=ctx.progress)
    seconds["occlusion"] = time.perf_counter() - t
    t = time.perf_counter()
    e_lime = lime(model, x, target, n_samples=n["lime"], **common)
    maps["LIME"] = e_lime.map
    seconds["LIME"] = time.perf_counter() - t
    t = time.perf_counter()
    e_shap = kernel_shap(model, x, target, n_samples=n["kernel-shap"], **common)
    maps["KernelSHAP"] = e_shap.map
    seconds["KernelSHAP"] = time.perf_counter() - t
    t = time.perf_counter()
    r = attribute(model, x, "rise", target, n_samples=n["rise"], **common)
    maps["RISE (minus its mean)"] = for_display("rise", r)  # the one helper the CLI uses too
    seconds["RISE"] = time.perf_counter() - t
    windows = len(occlusion_windows((size, size), window, stride)[1])
    options = (f"{size}×{size}; occlusion window={window} stride={stride}; lime n_samples={n['lime']}; "
                f"kernel-shap n_samples={n['kernel-shap']}; rise n_samples={n['rise']}; baseline=0 (black); "
                "score: each method's default (probability for lime and rise, logit for occlusion and kernel-shap)")
    blocks: list = [
        Text("Perturbation methods make real, large changes to the input (a black square, superpixels switched "
             "off, random smooth masks) and watch the class score. They need no gradient and treat the model as a "
             f"black box, at the price of hundreds of forward passes; here the cat photo is shrunk to {size}×{size}."),
        sw.figure("Four perturbation methods", panel(x, maps, title=f"{_MODEL} · chelsea → {label}", tile=2.2),
                  "Red marks regions whose presence raises the class score, blue those whose removal would raise it "
                  "(LIME and RISE read the class probability, as their papers; occlusion and KernelSHAP the logit). "
                  "Occlusion and RISE are smooth at the scale of their window or mask cells; LIME and KernelSHAP give "
                  "one value per superpixel, so their maps follow edges in the image. The four often disagree: each "
                  "answers a different question, set by the shape of what is hidden and by what a hidden pixel "
                  "becomes (black here).",
                  model=_MODEL, method="occlusion, lime, kernel-shap, rise", options=options, seed=ctx.seed),
    ]

    sw = ctx.stopwatch()
    fig, axes = plt.subplots(1, 3, figsize=(11, 4.0))
    pictures = [superpixel_boundaries(x, e_lime.segments), lime_mask(x, e_lime, k=5),
                lime_mask(x, e_lime, k=8, positive_only=False)]
    titles = [f"SLIC superpixels ({e_lime.n_features[0]})", f"top 5 for {label}",
              "top 8 by |weight|\n(red border: against the class)"]
    for ax, pic, title in zip(axes, pictures, titles):
        ax.imshow(pic)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    blocks.append(sw.figure(
        "LIME: the top superpixels", fig,
        "LIME fits a weighted linear model of the class score on which superpixels are switched on. Showing only "
        "the five superpixels with the largest positive weights is Ribeiro et al.'s \"why should I trust you\" "
        "picture: if they covered the background, the model would be right for the wrong reason.",
        model=_MODEL, method="lime", options=f"n_samples={n['lime']} segments=slic n_segments=50", seed=ctx.seed))

    blocks.append(_occlusion_evidence(ctx, model, labels, size, window, stride))

    sw = ctx.stopwatch()
    with torch.no_grad():
        f_base = model(torch.zeros_like(x))[0, target].item()
    f_x = scores[0, target].item()
    total = e_shap.weights[0].sum().item()
    blocks.append(sw.table(
        "Cost and KernelSHAP's efficiency", ["method", "forward passes", "seconds", "check"],
        [["occlusion", windows + 1, f"{seconds['occlusion']:.1f}", "score drop averaged over the windows"],
         ["LIME", n["lime"], f"{seconds['LIME']:.1f}", f"intercept {e_lime.intercept.item():.2f}"],
         ["KernelSHAP", n["kernel-shap"], f"{seconds['KernelSHAP']:.1f}",
          f"Σ weights {total:.3f}; f(x) − f(black) = {f_x - f_base:.3f} "
          f"(f(x) = {f_x:.3f}, f(black) = {f_base:.3f})"],
         ["RISE", n["rise"], f"{seconds['RISE']:.1f}", f"mean {r.mean().item():.3f}"]],
        "KernelSHAP's weights add up exactly to the score of the image minus the score of the black baseline "
        "(Shapley efficiency); LIME's do not have to. The cost is set by the number of forward passes.",
        model=_MODEL, method="occlusion, lime, kernel-shap, rise", options=options, seed=ctx.seed))
    if not ctx.quick:
        blocks.append(_second_photo(ctx, model, labels, size, window, stride, n, options))
    return blocks


# (title, fill, score): what a hidden window becomes, and which score is watched.
_OCCLUSION_SETTINGS = (("black, logit", 0.0, "logit"), ("black, probability", 0.0, "probability"),
                       ("blurred, probability", "blur", "probability"))


def _occlusion_evidence(ctx: Context, model, labels, size: int, window: int, stride: int):
    """Occlusion on the close-up cat and on the compact cup: when does hiding a patch lose the class?"""
    sw = ctx.stopwatch()
    names, x = ctx.photos(["chelsea", "coffee"])
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="area")
    with torch.no_grad():
        out = model(x)
    target = out.argmax(1)  # a different class per photo: each is scored by its own probability
    p = out.softmax(1)[torch.arange(len(x)), target]
    maps, found = {}, {}
    for title, fill, score in _OCCLUSION_SETTINGS:
        d = occlusion_drops(model, x, target, window=window, stride=stride, baseline=fill, score=score,
                            progress=ctx.progress)
        found[title], maps[title] = d, d.averaged((size, size))  # the occlusion map, from the same passes
    rise = {t: d.rises() for t, d in found.items()}
    lowest = {t: d.clean - d.drops.max(1).values for t, d in found.items() if d.score == "probability"}
    cat, cup = labels[int(target[0])], labels[int(target[1])]
    caption = (
        f"Each window ({window}×{window} px, stride {stride}) is hidden in turn; red marks windows whose hiding lowers "
        f"the score. On the close-up cat, black squares raise the {cat} logit at {rise['black, logit'][0]:.0%} of the "
        f"positions and its probability at {rise['black, probability'][0]:.0%}: the face fills the frame, so one "
        f"hidden patch leaves the evidence elsewhere, and a black square is not an absence but a new dark, high-contrast "
        f"pattern the network responds to. The lowest probability any black square leaves is "
        f"{lowest['black, probability'][0]:.2f} (from {p[0]:.2f}). On the coffee photo the evidence is compact: "
        f"black squares over the cup's rim drop p({cup}) from {p[1]:.2f} to {lowest['black, probability'][1]:.2f} and raise "
        f"the logit at only {rise['black, logit'][1]:.0%} of the positions; there occlusion finds where the class "
        f"lives. A blurred fill is gentler (lowest p({cup}) {lowest['blurred, probability'][1]:.2f}).")
    return sw.figure("Occlusion: when hiding a patch loses the class",
                     panel(x, maps, title=f"{_MODEL} · {names[0]} → {cat}, {names[1]} → {cup}", tile=2.2), caption,
                     model=_MODEL, method="occlusion",
                     options=f"{size}×{size}; window={window} stride={stride}; fills black and blur; scores logit and "
                             "probability", seed=ctx.seed)


def _second_photo(ctx: Context, model, labels, size: int, window: int, stride: int, n: dict, options: str):
    """The same four methods on the coffee photo: does each method's character hold on another image?"""
    sw = ctx.stopwatch()
    _, x = ctx.photos(["coffee"])
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="area")
    with torch.no_grad():
        target = model(x).argmax(1)
    common = {"seed": ctx.seed, "progress": ctx.progress}
    maps = {"occlusion": attribute(model, x, "occlusion", target, window=window, stride=stride, progress=ctx.progress),
            "LIME": attribute(model, x, "lime", target, n_samples=n["lime"], **common),
            "KernelSHAP": attribute(model, x, "kernel-shap", target, n_samples=n["kernel-shap"], **common)}
    r = attribute(model, x, "rise", target, n_samples=n["rise"], **common)
    maps["RISE (minus its mean)"] = for_display("rise", r)  # the one helper the CLI uses too
    label = labels[int(target)]
    return sw.figure("Four perturbation methods on a second photo",
                     panel(x, maps, title=f"{_MODEL} · coffee → {label}", tile=2.2),
                     "The same settings on the coffee photo. Where the four maps agree (the cup and its rim), the "
                     "evidence does not depend on how the image was perturbed.",
                     model=_MODEL, method="occlusion, lime, kernel-shap, rise", options=options, seed=ctx.seed)
