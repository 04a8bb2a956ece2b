"""The sections of a report for the user's own model (``seethrough report --model ./mymod.py:factory``).

They read nothing zoo-specific: the model card is one forward pass, the predictions and the
attribution maps run on the images the user gave (``--images``) or the bundled photos, with the
preprocessing ``--input-size/--channels`` describe. Every other section is built on the bundled
models and is skipped in such a report, with that reason on the page.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ... import zoo
from ..registry import Context, Text, section

_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def user_inputs(ctx: Context) -> tuple[list[str], torch.Tensor]:
    """``(names, images)`` for the user's model: its ``--images`` folder, else the bundled photos (two in quick)."""
    prep = ctx.user.preprocess
    if ctx.user_images is not None:
        folder = Path(ctx.user_images)
        if not folder.is_dir():
            raise ValueError(f"--images {folder} is not a folder of images")
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in _SUFFIXES)[: 2 if ctx.quick else 16]
        if not files:
            raise ValueError(f"no images ({', '.join(sorted(_SUFFIXES))}) under {folder}")
        return [p.stem for p in files], torch.cat([prep(p) for p in files])
    names = ctx.photo_names()
    return names, torch.cat([prep(zoo.image(n)) for n in names])


def _label(ctx: Context, c: int) -> str:
    labels = ctx.user.labels
    return labels[c] if labels and c < len(labels) else str(c)


@section("user-model", "Your model: layers and predictions", order=0, models="user")
def user_model(ctx: Context) -> list:
    from ...inspect.summary import summary
    from ...predict import predict

    sw = ctx.stopwatch()
    model, name = ctx.user.model, ctx.user.name
    names, x = user_inputs(ctx)
    rows = [[i.name, i.kind, "×".join(map(str, i.output_shape)) if i.output_shape else "not called", f"{i.params:,}"]
            for i in summary(model, x[:1])]
    total = sum(p.numel() for p in model.parameters())
    card = sw.table(f"{name}: layers", ["layer", "type", "output", "parameters"], rows,
                    f"Every leaf layer on a {tuple(x.shape[1:])} input, {total:,} parameters; these names are what "
                    "--layer accepts.", model=name)
    from ...hooks import forward
    from ...outputs import MODEL_HINT, class_output

    k = min(3, class_output(forward(model, x[:1]), hint=MODEL_HINT).shape[1])  # fewer for a model with < 3 classes
    preds = predict(model, x, k=k, labels=ctx.user.labels)
    table = sw.table("Top predictions", ["image", *[str(i + 1) for i in range(k)]],
                     [[n, *[f"{p.label} ({p.index}) {p.probability:.1%}" for p in ps]] for n, ps in zip(names, preds)],
                     f"Softmax probabilities of {name}.", model=name)
    return [card, table]


def _predicted(ctx: Context) -> tuple:
    """``(model, name, image names, images, predicted classes)`` of the user's model on its images."""
    from ...hooks import forward
    from ...outputs import MODEL_HINT, class_output

    model, name = ctx.user.model, ctx.user.name
    names, x = user_inputs(ctx)
    return model, name, names, x, class_output(forward(model, x), hint=MODEL_HINT).argmax(1)


@section("user-attribution", "Your model: every attribution method", order=20, models="user")
def user_attribution(ctx: Context) -> list:
    """Every registered image method (the registry, nothing hand-listed) at its defaults on the user's images."""
    from .catalogue import every_method

    sw = ctx.stopwatch()
    model, name, names, x, target = _predicted(ctx)
    figure, _ = every_method(ctx, sw, name, model, x, target)
    said = " · ".join(f"{n}: {_label(ctx, int(c))}" for n, c in zip(names, target.tolist()))
    return [Text(f"Every registered image attribution method of each image's predicted class ({said}), at its "
                 "default options; the CAM family explains the last convolution, `seethrough explain -m ... "
                 "--layer` picks another. A method that refuses the model says why under the panel."), figure]


@section("user-trust", "Your model: faithfulness and robustness", order=60, models="user")
def user_trust(ctx: Context) -> list:
    """Every registered metric on the saliency map and every registered attack, on the user's images."""
    from .catalogue import every_attack, every_metric

    sw = ctx.stopwatch()
    model, name, _, x, target = _predicted(ctx)
    return [every_metric(ctx, sw, name, model, x, target, {}), every_attack(ctx, sw, name, model, x, target)]
