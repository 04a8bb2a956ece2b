"""Layers as embeddings: lenet-digits layer by layer, the t-SNE pitfalls, photo crops as thumbnails."""
from __future__ import annotations

import torch

from ... import zoo
from ...embed import collect, embed, max_perplexity, pca_reduce, photo_crops, project
from ...render import embedding, scatter, scatter_grid
from ..registry import Context, Text, section

_LAYERS = ["input", "pool1", "pool2", "relu3", "relu4", "fc3"]


@section("embed", "Layers as embeddings", order=40)
def build(ctx: Context) -> list:
    blocks: list = [Text(
        "Each layer's activations are a point cloud, one point per sample and one dimension per unit; a 2-D map "
        "of that cloud shows where the classes pull apart with depth. The separation scores are measured in the "
        "layer's own space (and again in the 2-D map), so they do not depend on how the picture was drawn.")]
    blocks += _layers(ctx)
    blocks.append(_pitfalls(ctx))
    blocks.append(_photos(ctx))
    return blocks


def _layers(ctx: Context) -> list:
    sw = ctx.stopwatch()
    model, _ = ctx.model("lenet-digits")
    if ctx.quick:  # the 360 test digits and the linear view: a second, not a minute
        x, y = zoo.digits("test")
        method, split = "pca", "test"
    else:
        x, y = zoo.digits("all")
        method, split = "tsne", "all"
    e = embed(model, (x, y), _LAYERS, method, classes=zoo.labels("lenet-digits"), seed=ctx.seed, progress=ctx.progress)
    fig = embedding(e, ncols=3)
    name = "t-SNE" if method == "tsne" else "PCA"
    o = e.options
    figure = sw.figure(
        f"lenet-digits layer by layer ({name}, {len(x)} digits)", fig,
        "Follow the colours from the pixels to the logits: the digits are easy, so even the pixels form rough "
        "groups, but the stray points thin out and the neighbour purity in the panel titles (measured in the layer "
        "itself, then in the 2-D map) rises with depth as the layers pull the classes apart.",
        model="lenet-digits", method=method, options=f"digits={split}, pca={o['pca']}, k={o['k']}, "
        f"purity_k={o['purity_k']}", seed=ctx.seed)
    rows = [[layer, f"{e.dims[layer]:,}", f"{s.knn:.1%}", f"{s.knn_2d:.1%}", f"{s.purity:.1%}", f"{s.purity_2d:.1%}"]
            for layer, s in e.separation.items()]
    table = sw.table(
        "Class separation per layer", ["layer", "dims", f"{o['k']}-NN accuracy", "in 2-D",
                                       f"{o['purity_k']}-NN purity", "in 2-D"], rows,
        "Leave-one-out k-NN accuracy is already high on raw pixels (the digits are easy); the neighbour purity "
        "climbs towards the logits. A 2-D score far from the layer's own says the map hides or exaggerates structure.",
        model="lenet-digits", method=method, seed=ctx.seed)
    return [figure, table]


def _pitfalls(ctx: Context):
    sw = ctx.stopwatch()
    model, _ = ctx.model("lenet-digits")
    x, y = zoo.digits("test")
    n = 200 if ctx.quick else 360
    x, y = x[:n], y[:n]
    perplexities = (2, 30, 100) if ctx.quick else (2, 5, 30, 50, 100)
    feats = pca_reduce(collect(model, x, ["relu3"], progress=False)["relu3"], 50, seed=ctx.seed)
    panels = [(f"perplexity {p}, seed {ctx.seed}",
               project(feats, "tsne", perplexity=min(p, max_perplexity(n)), seed=ctx.seed, init="random", pca=None))
              for p in perplexities]
    panels.append((f"perplexity 30, seed {ctx.seed + 1}",
                   project(feats, "tsne", perplexity=30, seed=ctx.seed + 1, init="random", pca=None)))
    fig = scatter_grid(panels, y, classes=zoo.labels("lenet-digits"), ncols=3 if len(panels) > 4 else 2, size=3.0,
                       point=6, suptitle=f"lenet-digits relu3, {n} digits")
    return sw.figure(
        "Pitfalls: perplexity and seed", fig,
        "The same layer and the same digits, only the perplexity and the random start change: cluster sizes and "
        "distances between clusters mean little, because t-SNE equalises densities and keeps neighbourhoods, not "
        "global geometry. A tiny perplexity shatters classes into fragments and the seed decides where clusters land; "
        "read neighbourhoods, and check geometry with PCA and the scores.",
        model="lenet-digits", method="tsne", options=f"layer=relu3, pca=50, init=random, n={n}, "
        f"perplexity={','.join(map(str, perplexities))}", seed=ctx.seed)


def _photos(ctx: Context):
    sw = ctx.stopwatch()
    model, _ = ctx.model("efficientnet-lite0")
    per, size = (8, 96) if ctx.quick else (10, 128)
    xc, yc, names = photo_crops(per, size, photos=ctx.photo_names(), seed=ctx.seed)
    perplexity = min(15.0, max_perplexity(len(xc)))
    ec = embed(model, (xc, yc), ["pool"], "tsne", perplexity=perplexity, seed=ctx.seed, progress=ctx.progress)
    sep = ec.separation["pool"]
    thumbs = torch.nn.functional.interpolate(xc, size=36, mode="bilinear", antialias=True)
    fig = scatter(ec["pool"], yc, classes=names, thumbnails=thumbs, zoom=0.8,
                  title=f"efficientnet-lite0 pool (1280 dims), {len(xc)} crops of {len(names)} photos; "
                        f"5-NN accuracy {sep.knn:.0%}")
    fig.set_size_inches(9 if not ctx.quick else 6, 8 if not ctx.quick else 5.5)
    return sw.figure(
        "Photo crops in EfficientNet's penultimate layer", fig,
        "Random crops of the bundled photos, drawn as themselves and framed in their photo's colour: crops of the "
        "same photo gather because the 1280 pooled features describe content (fur, cup, face), not position. "
        "Crops that stray to another photo's group show what the network finds alike.",
        model="efficientnet-lite0", method="tsne", options=f"layer=pool, {per} crops/photo at {size}px, "
        f"perplexity={perplexity:g}", seed=ctx.seed)
