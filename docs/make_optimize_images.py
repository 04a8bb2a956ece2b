"""Regenerate the pictures of docs/optimize.md with the public API (about 2 minutes on 2 CPU cores).

    python docs/make_optimize_images.py
"""
from pathlib import Path

import torch
from PIL import Image

import seethrough as see

OUT = Path(__file__).parent / "img"


def save(img, name):
    OUT.mkdir(exist_ok=True)
    path = OUT / f"optimize-{name}.png"
    img.save(path, optimize=True)
    if path.stat().st_size > 240_000:  # keep docs pictures small: a 256-colour palette is plenty here
        img.quantize(256, dither=Image.Dither.NONE).save(path, optimize=True)
    print(path, f"{path.stat().st_size // 1024} KB")


def main():
    model, prep = see.zoo.load("efficientnet-lite0")
    labels = see.zoo.labels("efficientnet-lite0")

    classes = [700, 37, 258, 121]
    v = see.visualize(model, [f"logit:{c}" for c in classes], size=160, steps=128, priors={"tv": 0.2}, seed=0)
    with torch.no_grad():
        pred = model(v.x).argmax(1).tolist()
    save(see.render.gallery(v.x, [f"{labels[c][:16]}\n→ {labels[p][:16]}" for c, p in zip(classes, pred)], cell=2.0),
         "classes")

    raw = see.visualize(model, "logit:258", size=160, param="pixel", transforms=None, steps=128, seed=0)
    save(see.render.gallery(torch.cat([raw.x, v.x[2:3]]), ["pixels, no priors", "Fourier + transforms"], cell=2.4),
         "pixel-vs-fourier")

    objs = ["channel:stem:20", "channel:blocks.4:10", "channel:blocks.10:17", "channel:head:700"]
    ch = see.visualize(model, objs, size=128, steps=96, seed=0)
    save(see.render.gallery(ch.x, [o[8:] for o in objs], cell=2.0), "channels")

    lenet, _ = see.zoo.load("lenet-digits")
    d = see.visualize(lenet, [f"logprob:{c}" for c in range(10)], size=32, steps=64, priors={"tv": 0.5, "l2": 0.1}, seed=0)
    save(see.render.gallery(d.x, [str(c) for c in range(10)], ncol=10, cell=1.0), "digits")

    photo = prep(see.zoo.image("chelsea"))
    dr = see.dream(model, photo, "blocks.10", steps=12, octaves=3, step_size=0.015, seed=0)
    save(see.render.gallery(torch.cat([photo, dr.x]), ["chelsea", "DeepDream, blocks.10"], cell=3.0), "dream")
    # optimize-invert.png comes with the SSIM table from the same run:
    #     python benchmarks/bench_inversion.py --image docs/img/optimize-invert.png


if __name__ == "__main__":
    main()
