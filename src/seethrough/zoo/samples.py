"""Labelled real photos for the faithfulness and localisation metrics.

The MIT-licensed ``foolbox`` wheel ships 20 ImageNet validation photos with their class in
the file name (``foolbox/data/imagenet_07_609.jpg`` is class 609). We read those files by
path: foolbox's attack code (and its eagerpy import) never runs.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import torch

_NAME = re.compile(r"imagenet_(\d+)_(\d+)\.jpg$")


def _foolbox_data() -> Path:
    # find_spec locates the installed package without executing its __init__.
    spec = importlib.util.find_spec("foolbox")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("see.zoo.imagenet_samples() reads the photos bundled with foolbox; "
                         "install it with `pip install foolbox`")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def imagenet_sample_files() -> list[tuple[Path, int]]:
    """``[(path, ImageNet class), …]`` of the 20 photos, in file order.

    >>> files = imagenet_sample_files()
    >>> len(files), files[0][1]
    (20, 243)
    """
    found = sorted((int(m.group(1)), p, int(m.group(2))) for p in _foolbox_data().glob("imagenet_*.jpg")
                   if (m := _NAME.search(p.name)))
    if not found:
        raise ValueError(f"no ImageNet sample photos in {_foolbox_data()}; reinstall foolbox")
    return [(p, label) for _, p, label in found]


def imagenet_samples(size: int = 224, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The labelled ImageNet photos as ``(images (N, 3, size, size) in [0, 1], labels int64)``.

    Each photo is resized and centre-cropped like efficientnet-lite0's preprocessing
    (shorter side to ``size * 8 / 7``, centre crop ``size``); ``n`` keeps the first ``n``.

    >>> x, y = imagenet_samples(size=64, n=3)
    >>> tuple(x.shape), y.tolist()
    ((3, 3, 64, 64), [243, 559, 438])
    """
    from .images import read_image
    from .preprocess import Preprocess

    if isinstance(size, bool) or not isinstance(size, int) or size < 32:
        raise ValueError(f"size must be an int >= 32 (pixels), got {size!r}")
    files = imagenet_sample_files()
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(files):
            raise ValueError(f"n must be an int in 1..{len(files)}, got {n!r}")
        files = files[:n]
    prep = Preprocess(resize=round(size * 8 / 7), crop=size, min_side=32)
    x = torch.cat([prep(read_image(p)) for p, _ in files])
    return x, torch.tensor([label for _, label in files], dtype=torch.int64)
