"""Regenerate docs/img/attribution-*.png with the public API (run from the repository root)."""
from pathlib import Path

import torch

import seethrough as see

OUT = Path(__file__).parent / "img"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    model, prep = see.zoo.load("efficientnet-lite0")
    x = prep(see.zoo.image("chelsea"))  # (1, 3, 224, 224) in [0, 1]
    cat = 285  # Egyptian cat
    maps = {name: see.attribute(model, x, name, target=cat) for name in
            ("saliency", "smoothgrad", "integrated-gradients", "guided-backprop", "deeplift", "lrp", "gradcam", "guided-gradcam")}
    see.render.panel(x, maps, title="EfficientNet-Lite0 · Egyptian cat", tile=1.5).save(OUT / "attribution-panel.png")
    see.render.overlay(x, maps["gradcam"]).save(OUT / "attribution-gradcam.png")

    # integrated gradients: the completeness gap shrinks as the number of steps grows
    rows = []
    for steps in (4, 16, 64):
        res = see.integrated_gradients(model, x, cat, steps=steps)
        rows.append((f"IG, {steps} steps, gap {res.relative_gap.item():.1%}", res.attribution))
    see.render.panel(x, rows, tile=1.8).save(OUT / "attribution-ig-steps.png")

    # the same methods for the second most probable class: which maps change?
    with torch.no_grad():
        second = int(model(x).topk(2).indices[0, 1])
    label = see.zoo.labels("efficientnet-lite0")[second]
    other = {f"{n} → {label}": see.attribute(model, x, n, target=second) for n in ("guided-backprop", "gradcam", "lrp")}
    see.render.panel(x, other, tile=1.8).save(OUT / "attribution-second-class.png")


if __name__ == "__main__":
    main()
