"""Regenerate the pictures of docs/embed.md (python docs/make_embed_images.py; about a minute)."""
from pathlib import Path

import torch

import seethrough as see
from seethrough.embed import collect, pca_reduce, photo_crops, project

OUT = Path(__file__).parent / "img"


def save(fig, name: str) -> None:
    fig.savefig(OUT / f"embed-{name}.png", dpi=72, bbox_inches="tight")
    print("wrote", OUT / f"embed-{name}.png")


def main() -> None:
    OUT.mkdir(exist_ok=True)
    x, y = see.zoo.digits("all")
    xt, yt = x[:360], y[:360]
    model, _ = see.zoo.load("lenet-digits")

    # The course figure: all 1797 digits at the input, after each hidden stage and at the output.
    e = see.embed(model, (x, y), ["input", "pool1", "pool2", "relu3", "relu4", "fc3"], "tsne", classes=see.zoo.labels("lenet-digits"))
    save(see.render.embedding(e, ncols=3), "layers")

    # Pitfalls: one layer, 360 digits, five perplexities and a second seed (random start).
    feats = pca_reduce(collect(model, xt, ["relu3"])["relu3"], 50)
    panels = [(f"perplexity {p}, seed 0", project(feats, "tsne", perplexity=p, seed=0, init="random", pca=None)) for p in (2, 5, 30, 50, 100)]
    panels.append(("perplexity 30, seed 1", project(feats, "tsne", perplexity=30, seed=1, init="random", pca=None)))
    save(see.render.scatter_grid(panels, yt, ncols=3, size=3.0, point=6, suptitle="lenet-digits relu3, 360 digits"), "pitfalls")

    # PCA, t-SNE and UMAP of the same layer.
    methods = ["pca", "tsne"]
    try:
        import umap  # noqa: F401

        methods.append("umap")
    except ImportError:
        pass
    panels = [(m, see.embed(model, (x, y), ["relu3"], m)["relu3"]) for m in methods]
    save(see.render.scatter_grid(panels, y, size=3.2, point=3, suptitle="lenet-digits relu3, 1797 digits"), "methods")

    # EfficientNet-Lite0's penultimate features of random crops of the bundled photos.
    eff, _ = see.zoo.load("efficientnet-lite0")
    xc, yc, names = photo_crops(10, 128)
    ec = see.embed(eff, (xc, yc), ["pool"], "tsne", perplexity=15)
    thumbs = torch.nn.functional.interpolate(xc, size=36, mode="bilinear", antialias=True)
    fig = see.render.scatter(ec["pool"], yc, classes=names, thumbnails=thumbs, zoom=0.8,
                             title=f"efficientnet-lite0 pool (1280 dims), {len(xc)} crops of {len(names)} photos")
    fig.set_size_inches(9, 8)
    save(fig, "photos")


if __name__ == "__main__":
    main()
