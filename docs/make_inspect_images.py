"""Regenerate the pictures of docs/inspect.md (about 2-3 minutes on 2 CPU cores).

    python docs/make_inspect_images.py
"""
from pathlib import Path

import seethrough as see
from seethrough.inspect import (breast_cancer_logistic, linear_importance, pick_channels, sparsity_during_training,
                                topk_examples)
from seethrough.inspect.data import photo_tiles

OUT = Path(__file__).parent / "img"


def save(picture, name: str) -> None:
    path = OUT / f"inspect-{name}"
    if hasattr(picture, "savefig"):
        picture.savefig(path, dpi=90)
    else:
        picture.save(path, optimize=True)
    print(path, path.stat().st_size // 1024, "KB")


def main() -> None:
    OUT.mkdir(exist_ok=True)
    lenet, _ = see.zoo.load("lenet-digits")
    net, prep = see.zoo.load("efficientnet-lite0")
    digits, labels = see.zoo.digits("all")

    # Parameters
    save(see.render.filter_grid(see.filters(lenet, "conv2", filters=8), scale=8), "filters-lenet-conv2.png")
    save(see.render.filter_grid(see.filters(net, "stem.conv"), scale=12), "filters-efficientnet-stem.png")
    save(see.render.weight_health_plot(see.weight_health(net)), "weight-health-efficientnet.png")
    fit = breast_cancer_logistic()
    save(see.render.importance_plot(linear_importance(fit.model, fit.names), top=15), "linear-breast-cancer.png")

    # Activations
    a = see.activations(lenet, digits[:1], "relu1")["relu1"][0]
    save(see.render.channel_grid(a, ncol=6), "activations-lenet-relu1.png")
    photo = prep(see.zoo.image("chelsea"))
    a = see.activations(net, photo, "blocks.3")["blocks.3"][0]
    save(see.render.channel_grid(a, pick_channels(a, 24), ncol=8, scale=3), "activations-efficientnet-blocks3.png")

    # Statistics
    relus = ["relu1", "relu2", "relu3", "relu4"]
    save(see.render.histogram_plot(see.layer_stats(lenet, digits, relus)), "stats-lenet.png")
    save(see.render.sparsity_plot(sparsity_during_training(relus, epochs=6)), "sparsity-training.png")

    # Top-k
    res = see.topk(lenet, digits, "relu2", k=9)
    c, p = topk_examples(lenet, digits, res.head(6))
    save(see.render.topk_grid(c, p, scale=3), "topk-lenet-relu2.png")
    tiles = photo_tiles(size=112, stride=56)
    res = see.topk(net, tiles, "blocks.3", k=9)
    c, p = topk_examples(net, tiles, res.head(4))
    save(see.render.topk_grid(c, p, scale=2), "topk-efficientnet-blocks3.png")

    # Hyperplanes
    run = see.hyperplanes(steps=1000)
    frames = see.render.hyperplane_frames(run, size=2.8, dpi=55)  # GIF < 250 KB
    see.render.save_gif(frames, OUT / "inspect-hyperplanes.gif")
    print(OUT / "inspect-hyperplanes.gif", (OUT / "inspect-hyperplanes.gif").stat().st_size // 1024, "KB")
    save(frames[6], "hyperplanes-step77.png")
    save(frames[-1], "hyperplanes-final.png")


if __name__ == "__main__":
    main()
