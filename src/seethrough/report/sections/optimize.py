"""Optimizing inputs: class models, channel visualizations, DeepDream and feature inversion.

Full mode draws efficientnet-lite0 at reduced sizes and steps (the docs' pictures take about two
minutes); quick mode runs the same ideas on lenet-digits, plus one small DeepDream on a photo.
"""
from __future__ import annotations

import torch

from ... import zoo
from ...optimize import dream, invert, similarity, visualize
from ...render import gallery
from ..registry import Context, Text, section


@section("optimize", "Optimizing inputs", order=50)
def build(ctx: Context) -> list:
    blocks: list = [Text(
        "Freeze the weights and optimise the image instead: gradient ascent finds inputs a class or a channel "
        "responds to most, amplifies what a layer sees in a photo (DeepDream), or rebuilds a photo from a "
        "layer's code (feature inversion). What comes out depends as much on the parameterization and the "
        "priors as on the model.")]
    blocks += _digits(ctx)
    blocks += _efficientnet_classes(ctx)
    if not ctx.quick:
        blocks.append(_channels(ctx))
    blocks.append(_dream(ctx))
    blocks += _inversion(ctx)
    return blocks


def _predictions(model, x: torch.Tensor) -> tuple[list[int], list[float]]:
    with torch.no_grad():
        p = model(x).softmax(1)
    conf, pred = p.max(1)
    return pred.tolist(), conf.tolist()


def _digits(ctx: Context) -> list:
    sw = ctx.stopwatch()
    lenet, _ = ctx.model("lenet-digits")
    labels = zoo.labels("lenet-digits")
    steps = 48 if ctx.quick else 64
    opts = dict(size=32, steps=steps, priors={"tv": 0.5, "l2": 0.1}, seed=ctx.seed)
    d = visualize(lenet, [f"logprob:{c}" for c in range(10)], **opts)
    pred, conf = _predictions(lenet, d.x)
    fig = sw.figure(
        "lenet-digits: one class model per digit",
        gallery(d.x, [f"{c} → {labels[p]}" for c, p in enumerate(pred)], ncol=10, cell=1.0),
        "Each image maximises one digit's log-probability from noise (title: asked → predicted). The model "
        "classifies every one as asked, almost surely, yet few look like the digit to us: its evidence is ink in "
        "a few right places and none in the places that would suggest the other nine classes.",
        model="lenet-digits", method="visualize", options=f"logprob, fourier, size=32, steps={steps}, tv=0.5, l2=0.1",
        seed=ctx.seed)
    table = sw.table(
        "What lenet-digits says about its class models", ["asked", "predicted", "probability"],
        [[labels[c], labels[p], f"{q:.1%}"] for c, (p, q) in enumerate(zip(pred, conf))],
        "A class model is judged by the model it came from: a confident, correct prediction says the "
        "optimisation worked, not that the picture looks like a digit to us.",
        model="lenet-digits", method="visualize", seed=ctx.seed)
    return [fig, table]


def _efficientnet_classes(ctx: Context) -> list:
    """Full: four class models and the pixel-vs-Fourier contrast; quick: only the contrast, small."""
    sw = ctx.stopwatch()
    model, _ = ctx.model("efficientnet-lite0")
    labels = zoo.labels("efficientnet-lite0")
    classes = [258] if ctx.quick else [700, 37, 258, 121]
    size, steps = (96, 48) if ctx.quick else (160, 112)
    v = visualize(model, [f"logit:{c}" for c in classes], size=size, steps=steps, priors={"tv": 0.2}, seed=ctx.seed)
    blocks = []
    if not ctx.quick:
        pred, _ = _predictions(model, v.x)
        blocks.append(sw.figure(
            "efficientnet-lite0 class models",
            gallery(v.x, [f"{labels[c][:16]}\n→ {labels[p][:16]}" for c, p in zip(classes, pred)], cell=2.2),
            "Each image maximises one class logit (title: asked → predicted). Parts of the class repeat all over "
            "the frame, because nothing asks for one object in one place: the model needs its textures and parts, "
            "not a composed scene.",
            model="efficientnet-lite0", method="visualize",
            options=f"logit, fourier, standard transforms, size={size}, steps={steps}, tv=0.2", seed=ctx.seed))
    raw = visualize(model, "logit:258", size=size, param="pixel", transforms=None, steps=steps, seed=ctx.seed)
    pair = torch.cat([raw.x, v.x[classes.index(258)][None]])
    pred, _ = _predictions(model, pair)
    blocks.append(sw.figure(
        "Pixels without priors vs Fourier with transforms",
        gallery(pair,
                [f"pixels, no priors\n→ {labels[pred[0]][:16]}", f"Fourier + transforms\n→ {labels[pred[1]][:16]}"],
                cell=2.6),
        "Optimised pixel by pixel with no priors and no transformation robustness, the model is driven to its "
        "class by a high-frequency pattern: an adversarial example, not a feature. A decorrelated Fourier "
        "parameterization with jitter, scaling and rotation gives shapes and textures we can read.",
        model="efficientnet-lite0", method="visualize",
        options=f"logit:258 (Samoyed), size={size}, steps={steps}; pixel/no transforms vs fourier/standard, tv=0.2",
        seed=ctx.seed))
    return blocks


def _channels(ctx: Context):
    sw = ctx.stopwatch()
    model, _ = ctx.model("efficientnet-lite0")
    objs = ["channel:stem:20", "channel:blocks.4:10", "channel:blocks.10:17", "channel:head:700"]
    size, steps = 128, 96
    ch = visualize(model, objs, size=size, steps=steps, seed=ctx.seed)
    return sw.figure(
        "Channels at increasing depth", gallery(ch.x, [o[8:] for o in objs], cell=2.2),
        "One channel's mean activation maximised at four depths: colours and edges in the stem, textures in the "
        "early blocks, object parts deeper. The deeper the layer, the larger and more specific the pattern.",
        model="efficientnet-lite0", method="visualize", options=f"channel, fourier, size={size}, steps={steps}",
        seed=ctx.seed)


def _dream(ctx: Context):
    sw = ctx.stopwatch()
    model, _ = ctx.model("efficientnet-lite0")
    _, photo = ctx.photos(["chelsea"])
    steps, octaves = (6, 2) if ctx.quick else (12, 3)
    dr = dream(model, photo, "blocks.10", steps=steps, octaves=octaves, step_size=0.015, seed=ctx.seed)
    return sw.figure(
        "DeepDream on chelsea", gallery(torch.cat([photo, dr.x]), ["chelsea", "DeepDream, blocks.10"], cell=3.0),
        "Gradient ascent on the squared activations of blocks.10, starting from the photo: whatever the layer "
        "half-sees in the fur and the eyes is amplified into the patterns it responds to.",
        model="efficientnet-lite0", method="dream", options=f"layer=blocks.10, steps={steps}, octaves={octaves}, "
        "step_size=0.015", seed=ctx.seed)


def _inversion(ctx: Context) -> list:
    sw = ctx.stopwatch()
    if ctx.quick:
        model, _ = ctx.model("lenet-digits")
        name, labels = "lenet-digits", zoo.labels("lenet-digits")
        x = zoo.digits("test")[0][:1]
        layers, steps, tv, what = ["relu1", "relu2", "relu3", "fc3"], 100, 0.1, "a test digit"
    else:
        model, _ = ctx.model("efficientnet-lite0")
        name, labels = "efficientnet-lite0", zoo.labels("efficientnet-lite0")
        _, photo = ctx.photos(["chelsea"])
        x = torch.nn.functional.interpolate(photo, size=128, mode="area").clamp(0, 1)
        layers, steps, tv, what = ["stem", "blocks.2", "blocks.6", "blocks.12", "classifier"], 150, 3.0, "chelsea at 128 px"
    inv = invert(model, x, layers, steps=steps, tv=tv, seed=ctx.seed)
    ssim = [float(r.similarity[0]) for r in inv]
    clean, _ = _predictions(model, x)
    pred, conf = _predictions(model, torch.cat([r.x for r in inv]))
    titles = [f"original\n{labels[clean[0]][:16]}"] + [f"{r.layer}, SSIM {s:.2f}\n→ {labels[p][:16]}"
                                                        for r, s, p in zip(inv, ssim, pred)]
    kept = [r.layer for r, p in zip(inv, pred) if p == clean[0]]
    told = (f"the reconstructions from {', '.join(kept)} are still classified as {labels[clean[0]]}"
            if kept else f"none of the reconstructions is classified as {labels[clean[0]]}")
    sims = ", ".join(f"{r.layer} {s:.2f}" for r, s in zip(inv, ssim))
    fig = sw.figure(
        "Feature inversion: what a layer keeps", gallery(torch.cat([x, *(r.x for r in inv)]), titles, cell=2.0),
        "From grey noise, the image whose representation at each layer matches the original's (Mahendran & Vedaldi's "
        "objective: normalised distance, α-norm and TV priors, jitter, coarse to fine). "
        f"SSIM with the original: {sims}; {told} (titles: layer, SSIM → predicted class). Early layers keep nearly "
        "everything, deeper ones the layout and the parts that matter for the class.",
        model=name, method="invert", options=f"{what}, steps={steps}, tv={tv}, alpha=1, jitter auto, 3 scales",
        seed=ctx.seed)
    flat = x.mean((2, 3), keepdim=True).expand_as(x).contiguous()
    table = sw.table("Similarity of each inversion to the original",
                     ["layer", "SSIM", "layout", "final relative distance", "class"],
                     [[r.layer, f"{s:.3f}", f"{float(r.layout[0]):.2f}", f"{float(r.trace[0, -1]):.3f}", f"{labels[p]} ({q:.0%})"]
                      for r, s, p, q in zip(inv, ssim, pred, conf)],
                     f"SSIM with the original (a flat image of the original's mean colour scores "
                     f"{float(similarity.ssim(flat, x)[0]):.2f}: SSIM flatters a smooth, empty reconstruction); layout: "
                     "correlation of the brightness on a 16 × 16 grid (a flat image scores 0); final relative distance: "
                     "‖Φ(x̂) − Φ(x)‖² / ‖Φ(x)‖² at the layer; class: the model's prediction for the reconstruction. "
                     "Deep codes are many-to-one: images unlike the original can match them.",
                     model=name, method="invert", seed=ctx.seed)
    return [fig, table]
