"""Regenerate the pictures of the analysis sections of docs/scan.md (about 10 minutes on 2 CPU cores).

    python docs/make_scan_analyses_images.py            # all
    python docs/make_scan_analyses_images.py atlas      # one of: probe, dissection, atlas, activation

Settings (stated in the captions of docs/scan.md):
* probe: ``Probe(n=16, size=64, seed=0)``, its 16 images;
* dissection: EfficientNet-Lite0, layers blocks.1, blocks.3, blocks.5, blocks.8, ``Probe(n=300, size=224)``,
  top 0.5 % thresholds, IoU ≥ 0.04; the best-labelled unit of each layer with its top-6 probe crops;
* unit atlas: lenet-digits conv2 scanned over scikit-learn's digits (test split, 360), 8 units, top-9
  receptive-field crops, feature visualisation ``channel:conv2:u`` with 128 steps, seed 0;
* activation atlas: lenet-digits relu2 over the digits (all 1,797), 4 positions per image (7,188 vectors),
  UMAP, a 10×10 grid, cells with ≥ 8 samples, 128 steps per cell; class atlases for predicted 0 and 7.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

import seethrough as see  # noqa: E402
from seethrough.scan.activation_atlas import activation_atlas  # noqa: E402
from seethrough.scan.atlas import unit_records, write_atlas  # noqa: E402
from seethrough.scan.concepts import Probe  # noqa: E402
from seethrough.scan.dissect import dissect  # noqa: E402

OUT = Path(__file__).parent / "img"


def save(img: Image.Image, name: str) -> None:
    path = OUT / f"scan-{name}"
    img.save(path, optimize=True)
    print(path, path.stat().st_size // 1024, "KB")


def _label(img: Image.Image, text: str) -> Image.Image:
    canvas = Image.new("RGB", (max(img.width, 6 * len(text) + 4), img.height + 14), "white")
    canvas.paste(img.convert("RGB"), (0, 14))
    ImageDraw.Draw(canvas).text((2, 1), text, fill=(0, 0, 0))
    return canvas


def _row(images: list[Image.Image], gap: int = 8) -> Image.Image:
    h = max(i.height for i in images)
    canvas = Image.new("RGB", (sum(i.width for i in images) + gap * (len(images) - 1), h), "white")
    x = 0
    for i in images:
        canvas.paste(i.convert("RGB"), (x, 0))
        x += i.width + gap
    return canvas


def _column(images: list[Image.Image], gap: int = 6) -> Image.Image:
    w = max(i.width for i in images)
    canvas = Image.new("RGB", (w, sum(i.height for i in images) + gap * (len(images) - 1)), "white")
    y = 0
    for i in images:
        canvas.paste(i.convert("RGB"), (0, y))
        y += i.height + gap
    return canvas


def probe() -> None:
    p = Probe(n=16, size=64)
    x = torch.stack([p[i][0] for i in range(16)])
    save(see.render.tile(x.permute(0, 2, 3, 1).numpy(), 8, pad=2, scale=1), "probe.png")


def dissection() -> None:
    model, _ = see.zoo.load("efficientnet-lite0")
    layers = ["blocks.1", "blocks.3", "blocks.5", "blocks.8"]
    pr = Probe(n=300, size=224)
    d = dissect(model, layers, pr, accumulators=("topk",), batch_size=16)
    save(see.render.dissection_plot(d, title="EfficientNet-Lite0 on the probe (300 × 224 px): units with a concept, IoU ≥ 0.04"),
         "dissection-efficientnet.png")
    res = d.scan  # pass 1 also kept each unit's top-9 probe images
    rows = []
    for layer in layers:
        index, value = d.best(layer)
        u = int(value.argmax())
        r = unit_records(res, layer, [u], model, visualize=False)[0]
        strip = see.render.tile(r.images[:6].permute(0, 2, 3, 1).numpy(), 6, pad=2)
        how = Image.Resampling.BILINEAR if strip.height > 64 else Image.Resampling.NEAREST
        strip = strip.resize((round(strip.width * 64 / strip.height), 64), how)
        concept, iou = d.concepts[int(index[u])], float(value[u])
        verdict = "" if iou >= d.iou_threshold else ", below 0.04: not labelled"
        rows.append(_label(strip, f"{layer} unit {u}: {concept} (IoU {iou:.3f}{verdict})"))
    save(_column(rows), "dissection-units.png")


def atlas() -> None:
    model, _ = see.zoo.load("lenet-digits")
    res = see.scan(model, see.scan.digits_source(), ["conv2"], ("topk", "hist", "dead", "moments"), batch_size=64)
    recs = unit_records(res, "conv2", list(range(8)), model, steps=128)
    cells = []
    for r in recs:
        vis = see.render.scan.unit_image(r.visualization, 96)
        top = see.render.tile(r.images[:, 0].numpy(), 3, pad=1, scale=2)
        state = "dead" if r.dead else "alive"
        cells.append(_label(_row([vis, top.resize((96, 96), Image.Resampling.NEAREST)], gap=4), f"unit {r.unit} · {state}"))
    save(_column([_row(cells[:4]), _row(cells[4:])]), "atlas-lenet-conv2.png")
    with tempfile.TemporaryDirectory() as tmp:  # the static pages, written and checked, not committed
        index = write_atlas(res, model, tmp, units_per_layer=4, steps=8)
        print("atlas pages:", len(list(Path(tmp).rglob("*.html"))), index.name)


def activation() -> None:
    model, _ = see.zoo.load("lenet-digits")
    res = see.scan(model, see.scan.digits_source("all"), ["relu2"], ("positions",),
                   options={"positions": {"size": 10_000, "per_example": 4}}, batch_size=64)
    full = activation_atlas(model, res, "relu2", grid=10, min_count=8, steps=128)
    print("layout:", full.settings)
    pics = [_label(full.image(cell=40), f"relu2, all images ({full.settings['samples']} vectors, {full.settings['method']})")]
    for c in (0, 7):
        a = activation_atlas(model, res, "relu2", grid=10, min_count=8, steps=128, cls=c)
        pics.append(_label(a.image(cell=40), f"predicted {c} ({a.settings['samples']} vectors)"))
    save(_row(pics, gap=12), "activation-atlas-lenet.png")


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    todo = {"probe": probe, "dissection": dissection, "atlas": atlas, "activation": activation}
    for name in sys.argv[1:] or todo:
        todo[name]()
