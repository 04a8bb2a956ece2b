"""Feature inversion quality per layer: SSIM with the original, plain objective vs Mahendran & Vedaldi's recipe.

Produces the SSIM-per-layer table of docs/optimize.md (EfficientNet-Lite0, chelsea at 128 px,
200 steps: the 224 px paper setting is too slow for a shared 2-core CPU; about 10 minutes
there with both recipes):

    OMP_NUM_THREADS=2 python benchmarks/bench_inversion.py [--size 128] [--steps 200] [--photo chelsea]
        [--layers stem blocks.2 ...] [--image docs/img/optimize-invert.png]

For every layer it prints the layer's stride, the SSIM (scikit-image's
``structural_similarity``, Gaussian window σ = 1.5, the same number as ``Inversion.similarity``)
and the layout correlation (``Inversion.layout``: brightness on a 16 × 16 grid) of the plain
objective (``seethrough.optimize.inversion.PLAIN``: no jitter, one scale, constant rate, small
TV) and of ``see.invert``'s default recipe, and the class EfficientNet gives the recipe's
reconstruction with its probability. The first line is the baseline a reconstruction that knows
nothing gets: a flat image of the photo's mean colour (SSIM about 0.3 on a smooth photo).
"""
import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from skimage.metrics import structural_similarity

import seethrough as see
from seethrough.optimize.inversion import PLAIN

LAYERS = ["stem", "blocks.2", "blocks.6", "blocks.9", "blocks.12", "pool", "classifier"]


def skimage_ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(structural_similarity(a.double().numpy(), b.double().numpy(), gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False, data_range=1.0, channel_axis=0))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--photo", default="chelsea")
    ap.add_argument("--layers", nargs="+", default=LAYERS)
    ap.add_argument("--image", default=None, help="also save the reconstructions as a gallery here")
    ap.add_argument("--no-plain", action="store_true", help="skip the plain objective")
    a = ap.parse_args()
    model, prep = see.zoo.load("efficientnet-lite0")
    labels = see.zoo.labels("efficientnet-lite0")
    x = F.interpolate(prep(see.zoo.image(a.photo)), size=a.size, mode="area").clamp(0, 1)
    with torch.no_grad():
        clean = model(x).softmax(1)
    c0 = int(clean.argmax())
    print(f"{a.photo} at {a.size} px: {labels[c0]} ({clean[0, c0]:.0%}); {a.steps} steps; torch threads {torch.get_num_threads()}")
    t = time.perf_counter()
    new = see.invert(model, x, a.layers, steps=a.steps, seed=0)
    t_new = time.perf_counter() - t
    plain = None
    if not a.no_plain:
        t = time.perf_counter()
        plain = see.invert(model, x, a.layers, steps=a.steps, seed=0, **PLAIN)
        print(f"time: {t_new:.0f} s (recipe), {time.perf_counter() - t:.0f} s (plain)")
    flat = x.mean((2, 3), keepdim=True).expand_as(x).contiguous()
    print(f"\na flat image of the photo's mean colour: SSIM {skimage_ssim(flat[0], x[0]):.2f}, layout 0")
    print("\n| layer | stride | SSIM plain | SSIM recipe | layout plain | layout recipe | class of the recipe's reconstruction |")
    print("|---|---|---|---|---|---|---|")
    for i, r in enumerate(new):
        with torch.no_grad():
            p = model(r.x).softmax(1)[0]
        c = int(p.argmax())
        s_new = skimage_ssim(r.x[0], x[0])
        assert abs(s_new - float(r.similarity[0])) < 1e-4  # our SSIM is scikit-image's
        s_plain = f"{skimage_ssim(plain[i].x[0], x[0]):.2f}" if plain else "-"
        l_plain = f"{float(plain[i].layout[0]):.2f}" if plain else "-"
        print(f"| `{r.layer}` | {r.settings['stride']:.0f} | {s_plain} | {s_new:.2f} | {l_plain} | {float(r.layout[0]):.2f} "
              f"| {labels[c]} ({p[c]:.0%}) |")
    if a.image:
        titles = ["original"] + [f"{r.layer}\nSSIM {float(r.similarity[0]):.2f}" for r in new]
        img = see.render.gallery(torch.cat([x, *(r.x for r in new)]), titles, cell=1.8)
        img.save(a.image, optimize=True)
        if Path(a.image).stat().st_size > 240_000:  # as docs/make_optimize_images.py: keep docs pictures small
            img.quantize(256, dither=Image.Dither.NONE).save(a.image, optimize=True)
        print("wrote", a.image)


if __name__ == "__main__":
    main()
