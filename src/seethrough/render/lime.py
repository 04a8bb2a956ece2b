"""Pictures of superpixel explanations: LIME's top superpixels and the superpixel borders."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image


def _rgb(x: torch.Tensor, index: int) -> np.ndarray:
    img = x[index] if x.dim() == 4 else x
    img = img.detach().float().clamp(0, 1).cpu()
    if img.shape[0] == 1:
        img = img.expand(3, -1, -1)
    return img.permute(1, 2, 0).numpy()


def lime_mask(x: torch.Tensor, explanation: Any, k: int = 5, *, index: int = 0, positive_only: bool = True,
              background: float = 0.5) -> Image.Image:
    """The ``k`` superpixels with the largest weights shown, the rest grey - the picture of
    Ribeiro et al.'s "Why should I trust you?" (the guitar and the dog).

    ``explanation`` is what :func:`seethrough.lime` or :func:`seethrough.kernel_shap` return;
    ``index`` picks the image of the batch. With ``positive_only=False`` the ``k`` superpixels
    of largest absolute weight are kept and those against the class get a red border.

    >>> import torch, seethrough as see
    >>> x = torch.rand(1, 3, 32, 32)
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3072, 2))
    >>> e = see.lime(net, x, segments="grid", n_segments=16, n_samples=50)
    >>> see.render.lime_mask(x, e, k=3).size
    (32, 32)
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k (how many superpixels to show) must be a positive int, got {k!r}")
    weights = explanation.weights[index, : explanation.n_features[index]].detach().cpu()
    seg = explanation.segments[index].cpu()
    order = (weights if positive_only else weights.abs()).argsort(descending=True)[:k]
    if positive_only:
        order = order[weights[order] > 0]
    keep = torch.isin(seg, order).numpy()
    img = _rgb(x, index)
    out = np.where(keep[..., None], img, background)
    if not positive_only:
        from skimage.segmentation import find_boundaries

        against = torch.isin(seg, order[weights[order] < 0]).numpy()
        edge = find_boundaries(np.where(against, seg.numpy() + 1, 0), mode="inner") & against
        out[edge] = (0.85, 0.1, 0.1)
    return Image.fromarray((out * 255).round().astype(np.uint8))


def superpixel_boundaries(x: torch.Tensor, segments: torch.Tensor, *, index: int = 0,
                          color: tuple[float, float, float] = (1.0, 0.9, 0.0)) -> Image.Image:
    """The image with the borders of its superpixels drawn (scikit-image's ``mark_boundaries``).

    >>> import torch, seethrough as see
    >>> x = torch.rand(1, 3, 16, 16)
    >>> see.render.superpixel_boundaries(x, see.superpixels(x, "grid", n_segments=4)).size
    (16, 16)
    """
    from skimage.segmentation import mark_boundaries

    seg = segments[index] if segments.dim() == 3 else segments
    out = mark_boundaries(_rgb(x, index), seg.cpu().numpy(), color=color)
    return Image.fromarray((out.clip(0, 1) * 255).round().astype(np.uint8))
