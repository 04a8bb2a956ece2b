"""Turning user images into model inputs in [0, 1], and back into pictures."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .images import ImageLike, read_image


@dataclass(frozen=True)
class Preprocess:
    """Resize the shorter side to ``resize``, centre-crop ``crop`` (or squash to it when
    ``center_crop`` is false), and return a ``(1, C, crop, crop)`` float tensor in [0, 1].

    >>> from seethrough.zoo import image
    >>> Preprocess(resize=256, crop=224)(image("coffee")).shape
    torch.Size([1, 3, 224, 224])
    """

    resize: int = 256
    crop: int = 224
    grayscale: bool = False
    center_crop: bool = True
    min_side: int = 32
    invert_light_background: bool = False
    interpolation: Image.Resampling = Image.Resampling.BILINEAR

    def __call__(self, src: ImageLike | torch.Tensor) -> torch.Tensor:
        if isinstance(src, torch.Tensor):
            src = _tensor_to_array(src)
        img = read_image(src, max_side=max(4 * self.resize, 1024))
        if min(img.size) < self.min_side:
            raise ValueError(
                f"image is {img.size[0]}×{img.size[1]} px; this model needs at least {self.min_side} px on the shorter side"
            )
        if self.center_crop:
            w, h = img.size
            scale = self.resize / min(w, h)
            img = img.resize((max(self.crop, round(w * scale)), max(self.crop, round(h * scale))), self.interpolation)
            w, h = img.size
            left, top = (w - self.crop) // 2, (h - self.crop) // 2
            img = img.crop((left, top, left + self.crop, top + self.crop))
        else:
            img = img.resize((self.crop, self.crop), self.interpolation)
        if self.grayscale:
            img = img.convert("L")
        a = np.asarray(img, dtype=np.float32) / 255.0
        if a.ndim == 2:
            a = a[None]
        else:
            a = a.transpose(2, 0, 1)
        t = torch.from_numpy(np.ascontiguousarray(a)).unsqueeze(0)
        if self.invert_light_background and t.mean() > 0.5:
            t = 1.0 - t  # training digits are light ink on black
        return t


def _tensor_to_array(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"preprocess takes one image, got a batch of {t.shape[0]}")
        t = t[0]
    if t.dim() == 3 and t.shape[0] in (1, 3, 4):
        t = t.permute(1, 2, 0)
    return t.float().numpy()


def to_image(x: torch.Tensor) -> Image.Image:
    """Turn a ``(1, C, H, W)`` or ``(C, H, W)`` tensor in [0, 1] into a PIL image.

    >>> to_image(torch.zeros(1, 3, 4, 5)).size
    (5, 4)
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"to_image expects a tensor, got {type(x).__name__}")
    t = x.detach().cpu().float()
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"to_image takes one image, got a batch of {t.shape[0]}; index it: x[i]")
        t = t[0]
    if t.dim() == 2:
        t = t[None]
    if t.dim() != 3 or t.shape[0] not in (1, 3):
        raise ValueError(f"to_image expects (1, C, H, W) or (C, H, W) with C in (1, 3), got {tuple(x.shape)}")
    a = (t.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
    return Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0))


def points(src) -> torch.Tensor:
    """Preprocessing of the 2-D toy model: an ``(N, 2)`` array-like → float tensor."""
    t = torch.as_tensor(np.asarray(src, dtype=np.float32))
    if t.dim() == 1:
        t = t[None]
    if t.dim() != 2 or t.shape[1] != 2:
        raise ValueError(f"mlp-2d takes points of shape (N, 2), got {tuple(t.shape)}")
    return t
