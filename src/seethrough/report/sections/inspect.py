"""Inside the network: filters, activations, layer statistics, weight health, linear models, top-k, hyperplanes."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from ... import zoo  # noqa: E402
from ...inspect import (activations, breast_cancer_logistic, filters, hyperplanes, layer_stats,  # noqa: E402
                        linear_importance, pick_channels, sparsity_during_training, topk, topk_examples,
                        weight_health)
from ...inspect.data import photo_tiles  # noqa: E402
from ...render import (channel_grid, filter_grid, histogram_plot, hyperplane_frames, importance_plot,  # noqa: E402
                       sparsity_plot, tile, topk_grid, weight_health_plot)
from ..registry import Context, Text, section  # noqa: E402

_LENET, _NET = "lenet-digits", "efficientnet-lite0"
_RELUS = ["relu1", "relu2", "relu3", "relu4"]


def _mosaic(rows: list[list[tuple]], width: float = 11.0, max_height: float = 3.2):
    """Rows of ``(PIL picture, title)`` in one matplotlib figure; in each row the pictures share one height and
    fill the width, so a wide grid and a tall one can sit in the same figure without either becoming tiny."""
    aspects = [[pic.size[0] / pic.size[1] for pic, _ in row] for row in rows]
    heights = [min(width / sum(a), max_height) + 0.4 for a in aspects]
    fig = plt.figure(figsize=(width, sum(heights)), layout="constrained")
    subfigs = fig.subfigures(len(rows), 1, height_ratios=heights, squeeze=False)[:, 0]
    for sub, row, a in zip(subfigs, rows, aspects):
        axes = sub.subplots(1, len(row), width_ratios=a, squeeze=False)[0]
        for ax, (pic, title) in zip(axes, row):
            ax.imshow(pic.convert("RGB"), interpolation="nearest")
            ax.set_title(title, fontsize=10)
            ax.axis("off")
    return fig


@section("inspect", "Inside the network", order=30)
def build(ctx: Context) -> list:
    torch.manual_seed(ctx.seed)
    lenet, _ = ctx.model(_LENET)
    net, prep = ctx.model(_NET)
    digits, digit_labels = zoo.digits("all")
    if ctx.quick:  # the scans below grow with the data; a stratified-enough slice keeps quick mode quick
        digits, digit_labels = digits[:400], digit_labels[:400]
    blocks: list = [Text("Before asking which pixels mattered, look at what the network is made of (its weights) and "
                         "what it computes (its activations), from LeNet on 32×32 digits to efficientnet-lite0 on "
                         "photos.")]

    # --- parameters -------------------------------------------------------------------------------------------
    sw = ctx.stopwatch()
    rows = [[(filter_grid(filters(lenet, "conv1"), scale=8), "LeNet conv1: 6 filters"),
             (filter_grid(filters(lenet, "conv2", filters=8), scale=8), "LeNet conv2: 8 filters (rows) × 6 inputs")],
            [(filter_grid(filters(net, "stem.conv"), scale=12), "efficientnet-lite0 stem: 32 RGB 3×3 filters")]]
    blocks.append(sw.figure(
        "Filters", _mosaic(rows),
        "Only a first layer can be read directly: its filters live in pixel space, so they look like edge, blob and "
        "colour detectors. A deeper filter is one grey square per input channel (white positive, black negative), "
        "which means little without knowing what those channels detect.",
        model=f"{_LENET}, {_NET}", method="filters", options="lenet conv1, conv2 filters=8; efficientnet stem.conv",
        seed=ctx.seed))

    sw = ctx.stopwatch()
    health = weight_health(net)
    blocks.append(sw.figure(
        "Weight health", weight_health_plot(health, title=f"{_NET}: every conv and linear layer"),
        "RMS weight and the high-frequency energy of each layer's kernels (white noise scores about 0.8, a smooth "
        "blob close to 0). A noisy or collapsed layer stands out from its neighbours; the zero filters and "
        "near-duplicate pairs counted per layer are capacity the network does not use.",
        model=_NET, method="weight_health", options="duplicate=0.99", seed=ctx.seed))

    sw = ctx.stopwatch()
    fit = breast_cancer_logistic(seed=ctx.seed)
    imp = linear_importance(fit.model, fit.names)
    blocks.append(sw.figure(
        "Linear model: feature importance", importance_plot(imp, top=15, title="breast cancer: logit of benign"),
        f"A logistic regression on standardised features (held-out accuracy {fit.accuracy:.1%}): |w| ranks the "
        "features and the sign says which class each one pushes to. This reading is only valid because the "
        "features share one scale, and correlated features split their weight.",
        model="logistic regression (scikit-learn)", method="linear_importance", options="top=15 C=1.0",
        seed=ctx.seed))

    # --- activations ------------------------------------------------------------------------------------------
    sw = ctx.stopwatch()
    digit = digits[:1]
    a_digit = activations(lenet, digit, "relu1")["relu1"][0]
    photo = prep(zoo.image("chelsea"))
    a_photo = activations(net, photo, "blocks.3")["blocks.3"][0]
    rows = [[(channel_grid(digit[0], ncol=1, scale=4), f"digit {int(digit_labels[0])}"),
             (channel_grid(a_digit, ncol=6, scale=4), "LeNet relu1: 6 maps")],
            [(tile(photo[0].permute(1, 2, 0).numpy()[None], 1), "chelsea"),
             (channel_grid(a_photo, pick_channels(a_photo, 24), ncol=8, scale=3),
              "efficientnet blocks.3: 24 strongest of 40 maps")]]
    blocks.append(sw.figure(
        "Activations", _mosaic(rows),
        "Feature maps of one input, on one shared scale (a silent channel stays black). Early maps are still "
        "images — edges and strokes in place — and most values are exactly zero after the ReLU; deeper maps get "
        "coarser and each channel lights up on fewer, more specific parts.",
        model=f"{_LENET}, {_NET}", method="activations", options="lenet relu1; efficientnet blocks.3, pick_channels "
        "n=24 how=energy", seed=ctx.seed))

    # --- statistics -------------------------------------------------------------------------------------------
    sw = ctx.stopwatch()
    stats = layer_stats(lenet, digits, _RELUS, progress=ctx.progress)
    blocks.append(sw.figure(
        "Layer statistics", histogram_plot(stats, title=f"{_LENET} on {len(digits)} digits"),
        "Histograms of the activation values per layer (symmetric log axis), with the fraction of dead units "
        "(never active on any digit) and the sparsity (fraction of zeros). Dead units are wasted capacity; a "
        "layer that is almost all zeros or has exploding values is worth a look before any attribution.",
        model=_LENET, method="layer_stats", options=f"layers={','.join(_RELUS)} threshold=0", seed=ctx.seed))
    blocks.append(sw.table(
        "Dead units and sparsity", ["layer", "dead units", "sparsity", "mean", "std"],
        [[n, f"{s.dead_fraction:.1%}", f"{s.sparsity:.1%}", f"{s.mean:.3f}", f"{s.std:.3f}"] for n, s in stats.items()],
        "The numbers behind the histograms.", model=_LENET, method="layer_stats", seed=ctx.seed))

    sw = ctx.stopwatch()
    epochs = 2 if ctx.quick else 6
    curves = sparsity_during_training(_RELUS, epochs=epochs, seed=ctx.seed, data=digits[:300] if ctx.quick else None)
    blocks.append(sw.figure(
        "Sparsity during training", sparsity_plot(curves),
        "A fresh LeNet retrained while measuring the fraction of zero activations after every epoch (epoch 0 is "
        "the initialisation). Sparsity does not simply rise with training: layers can get denser first and "
        "sparser later, so read it off the curves rather than assume it.",
        model=_LENET, method="sparsity_during_training", options=f"epochs={epochs}", seed=ctx.seed))

    # --- top-k dataset examples -------------------------------------------------------------------------------
    sw = ctx.stopwatch()
    res = topk(lenet, digits, "relu2", k=9, progress=ctx.progress)
    crops, proj = topk_examples(lenet, digits, res.head(6))
    blocks.append(sw.figure(
        "Top-9 digits per channel", topk_grid(crops, proj, scale=3),
        "For six channels of LeNet's relu2, the nine receptive-field crops (left) that activate it most over the "
        "dataset and their deconvnet projections (right). What the crops share is a hypothesis of what the "
        "channel detects; the projections show which pixels of each crop carried the activation. A grey "
        "projection row belongs to a dead channel, which is zero on every digit.",
        model=_LENET, method="topk, topk_examples", options=f"layer=relu2 k=9 units=6 data={len(digits)} digits",
        seed=ctx.seed))
    if not ctx.quick:
        sw = ctx.stopwatch()
        tiles = photo_tiles(size=112, stride=56)
        res = topk(net, tiles, "blocks.3", k=9, progress=ctx.progress)
        crops, proj = topk_examples(net, tiles, res.head(4))
        blocks.append(sw.figure(
            "Top-9 photo tiles per channel", topk_grid(crops, proj, scale=2),
            "The same for four channels of efficientnet-lite0's blocks.3 over tiles of the bundled photos: the "
            "receptive fields are 35 pixels wide, so a channel at this depth answers to textures and parts, not to "
            "whole objects.",
            model=_NET, method="topk, topk_examples",
            options=f"layer=blocks.3 k=9 units=4 tiles={len(tiles)} of 112 px",
            seed=ctx.seed))

    # --- hyperplanes ------------------------------------------------------------------------------------------
    sw = ctx.stopwatch()
    steps = 300 if ctx.quick else 1000
    run = hyperplanes(steps=steps, seed=ctx.seed)
    frames = hyperplane_frames(run, size=3.6, dpi=60)
    blocks.append(sw.figure(
        "Hidden units as lines", frames,
        "Each of the 20 hidden ReLUs of a 2-20-2 network is a line w·x + b = 0 in the input plane; the decision "
        "regions are built from the pieces they cut. The animation shows training on the two spirals: the lines "
        "move to where the classes meet, and the boundary becomes a polygon of their segments.",
        model="mlp-2d", method="hyperplanes", options=f"steps={steps} frames={len(frames)}", seed=ctx.seed))
    return blocks
