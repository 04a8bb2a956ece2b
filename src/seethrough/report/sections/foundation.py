"""Model cards for the bundled models and top-5 predictions on the bundled photos."""
from __future__ import annotations

import torch

from ... import zoo
from ...inspect.summary import summary
from ...predict import predict
from ..registry import Context, Text, section

_INPUTS = {"efficientnet-lite0": (3, 224, 224), "lenet-digits": (1, 32, 32), "logreg-digits": (1, 32, 32), "mlp-2d": (2,), "mlp-breast-cancer": (30,)}


@section("model-card", "Model cards", order=0)
def model_cards(ctx: Context) -> list:
    blocks: list = [Text("Every leaf layer of each bundled model with its output shape per sample and its "
                         "parameter count; these names are what --layer accepts.")]
    for name, desc in zoo.models().items():
        if name not in _INPUTS:  # a zoo entry without a known input shape gets no card rather than a crash
            blocks.append(Text(f"{name}: {desc} (no model card: input shape unknown to the report)"))
            continue
        sw = ctx.stopwatch()
        model, _ = ctx.model(name)
        rows = [[i.name, i.kind, "×".join(map(str, i.output_shape)) if i.output_shape else "not called",
                 f"{i.params:,}"] for i in summary(model, torch.zeros(1, *_INPUTS[name]))]
        total = sum(p.numel() for p in model.parameters())
        if ctx.quick and len(rows) > 40:
            rows = rows[:20] + [["…", f"{len(rows) - 40} more layers", "", ""]] + rows[-20:]
        blocks.append(sw.table(f"{name}: {desc}", ["layer", "type", "output", "parameters"], rows,
                               f"{total:,} parameters in all.", model=name))
    return blocks


@section("predictions", "Predictions on the bundled photos", order=1)
def predictions(ctx: Context) -> list:
    sw = ctx.stopwatch()
    model, _ = ctx.model("efficientnet-lite0")
    names, x = ctx.photos()
    labels = zoo.labels("efficientnet-lite0")
    rows = []
    for name, preds in zip(names, predict(model, x, k=5, labels=labels)):
        rows.append([name] + [f"{p.label} ({p.index}) {p.probability:.1%}" for p in preds])
    from ...render import gallery

    thumbs = gallery(torch.nn.functional.interpolate(x, size=112, mode="bilinear", antialias=True),
                     [f"{n}: {r[1].split(' (')[0]}" for n, r in zip(names, rows)], cell=1.8)
    return [sw.figure("The bundled photos", thumbs, "Each photo as the model sees it (resized, centre-cropped "
                      "to 224) with its top-1 class.", model="efficientnet-lite0"),
            sw.table("Top-5 predictions", ["photo", "1", "2", "3", "4", "5"], rows,
                     "Softmax probabilities of efficientnet-lite0 (ImageNet weights).", model="efficientnet-lite0")]
