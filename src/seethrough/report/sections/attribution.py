"""Attribution I on efficientnet-lite0: gradients, modified backward rules, relevance, class activation maps."""
from __future__ import annotations

import torch

from ... import zoo
from ...attribution import attribute
from ...attribution.gradient import integrated_gradients
from ...render import panel
from ..registry import Context, Text, section

_MODEL = "efficientnet-lite0"
_FULL_PHOTOS = ("chelsea", "coffee", "motorcycle")


def _maps(model, x, target, methods, ctx: Context) -> dict[str, torch.Tensor]:
    """``{column title: attribution}`` for ``methods = {title: (method, options)}``, one batched call each."""
    out = {}
    for title, (method, options) in ctx.bar(methods.items(), desc="attribution", total=len(methods)):
        out[title] = attribute(model, x, method, target=target, **options)
    return out


def _options(methods) -> str:
    return "; ".join(f"{m} {' '.join(f'{k}={v}' for k, v in o.items() if k != 'progress')}".strip()
                     for m, o in methods.values() if o and set(o) != {"progress"})


@section("attribution", "Attribution: gradients, backward rules, relevance, CAM", order=20)
def build(ctx: Context) -> list:
    torch.manual_seed(ctx.seed)
    model, _ = ctx.model(_MODEL)
    labels = zoo.labels(_MODEL)
    names, x = ctx.photos(["chelsea"] if ctx.quick else list(_FULL_PHOTOS))
    with torch.no_grad():
        target = model(x).argmax(1)
    rows = ", ".join(f"{n} → {labels[int(t)]}" for n, t in zip(names, target))
    title = f"{_MODEL}, predicted class · rows: {rows}"
    p = {"progress": ctx.progress}
    sg = {"n_samples": 8 if ctx.quick else 16, "relative_noise": 0.15, "abs": True, "seed": ctx.seed, **p}
    ig = {"steps": 8 if ctx.quick else 16, "baseline": "zeros", **p}
    families = [
        ("Gradients",
         {"saliency": ("saliency", {}), "grad × input": ("grad-x-input", {}),
          "smoothgrad": ("smoothgrad", sg), "integrated gradients": ("integrated-gradients", ig)},
         "The plain gradient (saliency, its magnitude) is speckled: in a deep ReLU network it jumps from pixel to "
         "pixel. SmoothGrad averages the magnitude |∇| over noisy copies (abs=True; |mean ∇| would be "
         "abs='abs-of-mean'), which smooths the speckle; gradient × input "
         "and integrated gradients are signed (red for the class, blue against) and weight the gradient by the "
         "pixel, so a black pixel gets nothing: the baseline is part of the explanation."),
        ("Modified backward rules",
         {"gradient (signed)": ("saliency", {"abs": False}), "deconvnet": ("deconvnet", {}),
          "guided backprop": ("guided-backprop", {})},
         "Deconvnet and guided back-propagation change only the backward pass through each activation. Deconvnet "
         "ignores the forward ReLU pattern and shows the checkerboard of the strided convolutions; guided backprop "
         "is sparser and sharper than the gradient, but sharpness is not faithfulness: such maps change little when "
         "the class or the upper weights change."),
        ("Relevance",
         {"deeplift": ("deeplift", {}), "LRP ε-z⁺-flat": ("lrp", {"composite": "epsilon-plus-flat"}),
          **({} if ctx.quick else {"LRP ε-γ-flat": ("lrp", {"composite": "epsilon-gamma-flat"})}),
          "LRP ε": ("lrp", {"composite": "epsilon"})},
         "DeepLIFT's contributions add up to f(x) − f(black image) and LRP conserves the relevance layer by layer, "
         "so the colours are shares of the score (red for the class, blue against). The LRP composite, i.e. "
         "which rule at which layer, changes the picture completely: with z⁺ in the convolutions nearly every "
         "share is positive. Always say which composite you used."),
        ("Class activation maps",
         {"CAM": ("cam", {}), "Grad-CAM": ("gradcam", {}), "Grad-CAM++": ("gradcam++", {}),
          "Grad-CAM, negative": ("gradcam-negative", {}), "guided Grad-CAM": ("guided-gradcam", {})},
         "CAM-style maps weight the 7×7 feature maps of the last block (head) and upsample them: coarse, but they "
         "follow the class. The negative variant shows what lowers the score; guided Grad-CAM multiplies by "
         "guided backprop to get fine detail that is still class-specific."),
    ]
    blocks: list = [Text("Which pixels drove the decision? Each row is one bundled photo explained for its predicted "
                         "class by efficientnet-lite0 at 224×224; each column one method called as "
                         "see.attribute(model, x, method, target).")]
    for fig_title, methods, caption in families:
        sw = ctx.stopwatch()
        maps = _maps(model, x, target, methods, ctx)
        blocks.append(sw.figure(fig_title, panel(x, maps, title=title, tile=1.8), caption, model=_MODEL,
                                method=", ".join(dict.fromkeys(m for m, _ in methods.values())),
                                options=_options(methods) or "defaults", seed=ctx.seed))
    if ctx.quick:  # the quick test expects exactly the four figures above
        return blocks

    # The trust badge (see report section "Sanity checks"): cheap checks under a map of each family.
    from ...render import badge_strip, side_by_side
    sw = ctx.stopwatch()
    badged = ("saliency", "guided-backprop", "gradcam")
    results = {m: attribute(model, x[:1], m, target=target[:1], trust=True) for m in badged}
    badges = [badge_strip(x[:1], a, b, size=180) for a, b in results.values()]
    blocks.append(sw.figure(
        f"Trust badges: {', '.join(badged)}", side_by_side(badges),
        "Under each map: its rank correlation with the maps of copies whose top layer is random (mean of three "
        "draws; high = the map does not depend on the model), its deletion AUC against the least-relevant-first "
        "order and its insertion AUC against a random ranking, both between the image and a reference that removes "
        "the class (deletion should be lower, insertion higher). The verdict names its reasons. This run: "
        + "; ".join(f"{m}: {b.verdict[0]}" for m, (_, b) in results.items()) + ".",
        model=_MODEL, method=", ".join(badged), options="trust=True", seed=ctx.seed))

    # integrated gradients: the completeness gap shrinks with the number of steps
    sw = ctx.stopwatch()
    cat, cat_target = x[:1], target[:1]
    rows_ig = []
    for steps in ctx.bar((4, 16, 64), desc="IG steps"):
        res = integrated_gradients(model, cat, cat_target, steps=steps, progress=ctx.progress)
        rows_ig.append((f"{steps} steps, gap {res.relative_gap.item():.1%}", res.attribution))
    blocks.append(sw.figure(
        "Integrated gradients: the completeness gap", panel(cat, rows_ig, tile=1.8),
        "Integrated gradients should add up to f(x) − f(baseline); the relative gap in each title measures how far "
        "the quadrature is from that. Few steps leave a large gap and a different map; the gap need not shrink "
        "monotonically with steps, so measure it and grow steps until it is small before trusting the picture.",
        model=_MODEL, method="integrated-gradients", options="steps=4,16,64 rule=gauss-legendre baseline=zeros",
        seed=ctx.seed))

    # the same methods for the runner-up class: which maps change with the class?
    sw = ctx.stopwatch()
    with torch.no_grad():
        second = model(cat).topk(2).indices[:, 1]
    both = []
    for t, name in ((cat_target, labels[int(cat_target)]), (second, labels[int(second)])):
        for method in ("guided-backprop", "gradcam", "lrp"):
            both.append((f"{method}\n→ {name}", attribute(model, cat, method, target=t)))
    blocks.append(sw.figure(
        "Top class against runner-up", panel(cat, both, tile=1.8),
        "The same methods for the top class and the runner-up. Compare each method's two maps: where they are "
        "nearly the same, the method shows what is in the image rather than why the model chose this class over "
        "the other; a class-sensitive method moves towards the parts that separate the two.",
        model=_MODEL, method="guided-backprop, gradcam, lrp", options="defaults", seed=ctx.seed))
    return blocks
