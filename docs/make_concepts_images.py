"""Regenerate the pictures of docs/concepts.md (python docs/make_concepts_images.py; a minute or two)."""
from pathlib import Path

import torch

import seethrough as see
from seethrough.zoo.logreg import retrainer

OUT = Path(__file__).parent / "img"


def save(fig, name: str) -> None:
    fig.savefig(OUT / f"concepts-{name}.png", dpi=72, bbox_inches="tight")
    print("wrote", OUT / f"concepts-{name}.png")


def tcav_images(x: torch.Tensor, xt: torch.Tensor, yt: torch.Tensor) -> None:
    """TCAV: the planted twin uses the striped patch for its 7s, the plain model does not. The random sets
    are digits carrying a control patch, as in the report and tests/test_concepts_planted.py."""
    from seethrough.zoo.planted import controls

    concept = see.concepts.stamp(x[:100], "stripes", seed=1)
    pool = see.concepts.stamp_mixed(x[200:], controls("stripes"), seed=7)
    for name, kw in (("tcav-planted", {"planted": "stripes:7"}), ("tcav-plain", {})):
        model, _ = see.zoo.load("lenet-digits", **kw)
        r = see.concepts.tcav(model, concept, xt[yt == 7], ["pool1", "pool2", "relu3"], 7, random_sets=10,
                              random_x=pool, concept="stripes")
        save(see.render.tcav_plot(r, title=f"'stripes' for class 7, {'planted twin' if kw else 'plain lenet-digits'}"), name)
        print(name, r.summary())


def main() -> None:
    OUT.mkdir(exist_ok=True)
    x, y = see.zoo.digits("train")
    xt, yt = see.zoo.digits("test")

    tcav_images(x, xt, yt)

    # Influence on logreg-digits: a misclassified digit, its helpful and harmful training digits, the LOO check.
    model, _ = see.zoo.load("logreg-digits")
    with torch.no_grad():
        t = int((model(xt).argmax(1) != yt).nonzero()[0])
    r = see.influence(model, (x, y), (xt[t:t + 1], yt[t:t + 1]), damping=see.zoo.LOGREG_L2)
    save(see.render.influence_gallery(r, k=6), "influence")
    save(see.render.loo_scatter(r.validate(12, retrainer(x, y))), "loo")

    # Distillation: a soft decision tree of lenet-digits, filters drawn as images.
    lenet, _ = see.zoo.load("lenet-digits")
    xa, ya = see.zoo.digits("all")
    save(see.render.tree_plot(see.distill(lenet, (xa, ya), method="soft-tree", depth=3)), "soft-tree")
    mlp, _ = see.zoo.load("mlp-2d")
    depths = [1, 2, 4, 6, 8, 10, 12]
    fits = [see.distill(mlp, see.zoo.toy_2d(400), depth=d) for d in depths]
    save(see.render.fidelity_plot(depths, [f.fidelity for f in fits], title="mlp-2d: tree fidelity against depth"),
         "fidelity")


if __name__ == "__main__":
    main()
