"""Many views of few photos: seeded random square crops, for embedding a handful of images."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..deprecation import renamed


@renamed(n="n_samples")
def random_crops(
    image: torch.Tensor,
    n_samples: int,
    size: int = 128,
    *,
    scale: tuple[float, float] = (0.25, 0.8),
    seed: int = 0,
) -> torch.Tensor:
    """``n_samples`` random square crops of ``image`` ``(C, H, W)`` or ``(1, C, H, W)``, each
    resized to ``size × size``; the crop side is a uniform fraction in ``scale`` of the
    shorter image side. Returns ``(n_samples, C, size, size)``; the same seed gives the same crops.

    >>> img = torch.rand(3, 40, 60)
    >>> c = random_crops(img, 4, 16, seed=0)
    >>> c.shape, torch.equal(c, random_crops(img, 4, 16, seed=0))
    (torch.Size([4, 3, 16, 16]), True)
    """
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image must be a (C, H, W) tensor in [0, 1], got {type(image).__name__}; convert a PIL image with a zoo preprocess")
    if image.dim() == 4 and image.shape[0] == 1:
        image = image[0]
    if image.dim() != 3:
        raise ValueError(f"image must have shape (C, H, W) or (1, C, H, W), got {tuple(image.shape)}")
    n = n_samples
    if isinstance(n, bool) or not isinstance(n, int) or n < 1 or isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"n_samples and size must be positive ints, got n_samples={n!r}, size={size!r}")
    lo, hi = scale
    if not 0 < lo <= hi <= 1:
        raise ValueError(f"scale must be (low, high) with 0 < low <= high <= 1, got {scale!r}")
    g = torch.Generator().manual_seed(seed)
    _, h, w = image.shape
    side = ((lo + (hi - lo) * torch.rand(n, generator=g)) * min(h, w)).long().clamp(min=1)
    u = torch.rand(n, 2, generator=g)
    out = []
    for s, (a, b) in zip(side.tolist(), u.tolist()):  # n small crops of one image: cheap, no model pass
        top, left = int(a * (h - s + 1)), int(b * (w - s + 1))
        crop = image[None, :, top:top + s, left:left + s]
        out.append(F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False, antialias=True))
    return torch.cat(out).clamp(0, 1)


def photo_crops(n_per_photo: int = 16, size: int = 128, *, photos: list[str] | None = None,
                seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Random crops of the bundled photos: ``(x (N, 3, size, size), photo index (N,), photo names)``.

    Each photo is first centre-cropped to a 320-pixel square; photo ``i`` uses seed ``seed + i``.

    >>> x, y, names = photo_crops(2, 32, photos=["chelsea", "coffee"])
    >>> x.shape, y.tolist(), names
    (torch.Size([4, 3, 32, 32]), [0, 0, 1, 1], ['chelsea', 'coffee'])
    """
    from .. import zoo

    names = list(photos) if photos is not None else zoo.images()
    square = zoo.Preprocess(resize=320, crop=320)
    xs = [random_crops(square(zoo.image(name)), n_per_photo, size, seed=seed + i) for i, name in enumerate(names)]
    y = torch.arange(len(names)).repeat_interleave(n_per_photo)
    return torch.cat(xs), y, names
