"""Make the pictures of docs/perturbation.md with the public API.

    python docs/make_perturbation_images.py          # 224×224, the settings the guide quotes
    python docs/make_perturbation_images.py --quick  # 128×128 and fewer samples (a busy machine)
"""
import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import seethrough as see  # noqa: E402

OUT = Path(__file__).parent / "img"


def save(fig, name):
    OUT.mkdir(exist_ok=True)
    path = OUT / f"perturbation-{name}.png"
    fig.savefig(path, dpi=72, bbox_inches="tight")
    plt.close(fig)
    print(path, f"{path.stat().st_size // 1024} KB")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    q = parser.parse_args().quick
    model, prep = see.zoo.load("efficientnet-lite0")
    labels = see.zoo.labels("efficientnet-lite0")
    x = prep(see.zoo.image("chelsea"))
    if q:
        x = torch.nn.functional.interpolate(x, size=(128, 128), mode="area")
    target = model(x).argmax(1)
    n = 0.25 if q else 1.0
    runs = {
        "occlusion": {"window": x.shape[-1] // 7, "stride": x.shape[-1] // 14},
        "lime": {"n_samples": int(1000 * n)},
        "kernel-shap": {"n_samples": int(1000 * n)},
        "rise": {"n_samples": int(2000 * n)},
    }
    explanation = see.lime(model, x, target, **runs["lime"])
    maps = {m: explanation.map if m == "lime" else see.attribute(model, x, m, target, **o) for m, o in runs.items()}

    fig, axes = plt.subplots(1, 5, figsize=(15, 3.3))
    axes[0].imshow(x[0].permute(1, 2, 0).numpy())
    axes[0].set_title(f"chelsea: {labels[target[0]]}")
    for ax, (m, a) in zip(axes[1:], maps.items()):
        a = a[0, 0] - (a[0, 0].mean() if m == "rise" else 0)
        lim = a.abs().max().item()
        ax.imshow(x[0].mean(0).numpy(), cmap="gray")
        ax.imshow(a.numpy(), cmap="bwr", vmin=-lim, vmax=lim, alpha=0.6)
        ax.set_title(m + (" (minus its mean)" if m == "rise" else ""))
    for ax in axes:
        ax.axis("off")
    save(fig, "methods")

    fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
    pictures = [see.render.superpixel_boundaries(x, explanation.segments), see.render.lime_mask(x, explanation, k=5),
                see.render.lime_mask(x, explanation, k=8, positive_only=False)]
    titles = ["SLIC superpixels", "lime_mask: top 5 for the class", "top 8 by |weight|\n(red border: against the class)"]
    for ax, pic, title in zip(axes, pictures, titles):
        ax.imshow(pic)
        ax.set_title(title)
        ax.axis("off")
    save(fig, "lime")


if __name__ == "__main__":
    main()
