"""Concept sets that work offline: procedural textures, crops of the bundled photos, stamped patches,
and random sets drawn from a pool."""
from __future__ import annotations

import torch

# The patterns live in the zoo (the planted twin is trained on them); re-exported under their old names.
from ..deprecation import renamed
from ..zoo.patterns import COLOURS, KINDS, pattern, procedural, stamp, stamp_mixed  # noqa: F401


def crops(photo: str, boxes: list[tuple[int, int, int, int]], size: int = 224) -> torch.Tensor:
    """Crops ``(left, top, right, bottom)`` of a bundled photo, resized to ``size``: a concept chosen by hand.

    >>> crops("chelsea", [(0, 0, 100, 100)], size=32).shape
    torch.Size([1, 3, 32, 32])
    """
    from ..zoo import image, to_image  # noqa: F401  (to_image documents the inverse)
    import numpy as np

    img = image(photo).convert("RGB")
    out = []
    for box in boxes:
        c = img.crop(tuple(box)).resize((size, size))
        out.append(torch.from_numpy(np.asarray(c, dtype=np.float32) / 255.0).permute(2, 0, 1))
    if not out:
        raise ValueError("crops needs at least one box (left, top, right, bottom)")
    return torch.stack(out)


@renamed(n="n_samples")
def random_sets(pool: torch.Tensor, count: int, n_samples: int, *, seed: int = 0) -> list[torch.Tensor]:
    """``count`` seeded random subsets of ``n_samples`` inputs each from ``pool`` (the random concepts of TCAV).

    >>> [tuple(s.shape) for s in random_sets(torch.arange(10), 2, 3)]
    [(3,), (3,)]
    """
    if len(pool) < n_samples:
        raise ValueError(f"the random pool has {len(pool)} inputs; each random set needs {n_samples}")
    gen = torch.Generator().manual_seed(seed)
    return [pool[torch.randperm(len(pool), generator=gen)[:n_samples]] for _ in range(count)]
