"""Make the pictures of docs/trust.md with the public API.

    python docs/make_trust_images.py          # the settings the guide quotes
    python docs/make_trust_images.py --quick  # fewer digits and steps (a busy machine)
    python docs/make_trust_images.py --lenet  # only the lenet-digits pictures (the sanity strips)
"""
import argparse
from pathlib import Path

import torch

import seethrough as see

OUT = Path(__file__).parent / "img"


def save(img, name):
    OUT.mkdir(exist_ok=True)
    path = OUT / f"trust-{name}.png"
    img.save(path, optimize=True)
    print(path, f"{path.stat().st_size // 1024} KB")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--lenet", action="store_true", help="only the lenet-digits pictures")
    args = parser.parse_args()
    lenet, _ = see.zoo.load("lenet-digits")
    x, y = see.zoo.digits("test")
    n = 4 if args.quick else 16
    r = see.sanity.randomization(lenet, x[:n], "guided-backprop", y[:n], seed=0)
    save(see.render.sanity_figure(r, title="guided back-propagation on lenet-digits: randomising the layers "
                                           "from the output down"), "sanity-guided")
    r = see.sanity.randomization(lenet, x[:n], "saliency", y[:n], seed=0, abs=False)
    save(see.render.sanity_figure(r, title="the signed gradient on lenet-digits"), "sanity-gradient")
    if args.lenet:
        return

    model, prep = see.zoo.load("efficientnet-lite0")
    photo = prep(see.zoo.image("chelsea"))
    with torch.no_grad():
        target = model(photo).argmax(1)
    steps = 8 if args.quick else 32
    curves = {}
    for method in ("gradcam", "saliency"):
        a = see.attribute(model, photo, method, target=target)
        opts = dict(steps=steps, patch=14, seed=0)
        curves[method] = {"deletion": see.metrics.deletion(model, photo, a, target, **opts),
                          "insertion": see.metrics.insertion(model, photo, a, target, **opts)}
    save(see.render.faithfulness_figure(curves, title="efficientnet-lite0 · chelsea (Egyptian cat)"), "faithfulness")
    a, badge = see.attribute(model, photo, "gradcam", target=target, trust=True)
    save(see.render.badge_strip(photo, a, badge), "badge-gradcam")


if __name__ == "__main__":
    main()
