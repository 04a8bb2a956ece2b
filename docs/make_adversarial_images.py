"""Regenerate the pictures of docs/adversarial.md: ``python docs/make_adversarial_images.py``."""
import io
from pathlib import Path

import matplotlib.pyplot as plt
from PIL import Image

import seethrough as see
from seethrough.adversarial import robust_digits_model

OUT = Path(__file__).parent / "img"


def save(fig, name):
    OUT.mkdir(exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, dpi=72)
    plt.close(fig)
    # A 256-colour palette keeps the photo figures well under 250 KB.
    Image.open(buf).convert("RGB").quantize(256).save(OUT / name, optimize=True)


def main():
    model, prep = see.zoo.load("efficientnet-lite0")
    labels = see.zoo.labels("efficientnet-lite0")
    x = prep(see.zoo.image("chelsea"))
    save(see.render.attack_figure(see.attack(model, x, "pgd", eps=1), 0, labels), "adversarial-chelsea-pgd.png")
    save(see.render.attack_figure(see.attack(model, x, "pgd", target=859, eps=4, steps=20), 0, labels),
         "adversarial-chelsea-toaster.png")

    lenet, _ = see.zoo.load("lenet-digits")
    xd, yd = see.zoo.digits("test")
    patch = see.train_patch(lenet, xd[:100], target=8, steps=400, n_samples=32, step_size=0.1, scale=(0.35, 0.45))
    print(f"patch: {patch.success:.1%} of held-out placements, random-noise patch {patch.random_success:.1%}")
    save(see.render.patch_figure(patch, xd[:100], see.zoo.labels("lenet-digits")), "adversarial-patch.png")

    eps = [0, 8, 16, 32, 48]
    before = see.robust_accuracy(lenet, xd[:200], yd[:200], eps)
    after = see.robust_accuracy(robust_digits_model(eps=32), xd[:200], yd[:200], eps)
    print("robust accuracy before", [round(v, 3) for v in before.tolist()], "after", [round(v, 3) for v in after.tolist()])
    save(see.render.robustness_plot(eps, {"lenet-digits": before, "adversarially trained": after}),
         "adversarial-defence.png")


if __name__ == "__main__":
    main()
