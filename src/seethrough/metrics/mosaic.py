"""Mosaics of labelled photos: a localisation benchmark with a known answer.

A ``grid``×``grid`` mosaic puts photos of *different* classes side by side; explaining the
class of one tile, the map should point into that tile (the ground-truth mask).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from ..deprecation import renamed


@dataclass
class Mosaics:
    """``images (M, C, H, W)``; ``targets (M,)`` the class to explain; ``masks (M, 1, H, W)`` its tile;
    ``sources (M, grid²)`` indices of the photos used, row by row; ``tile (M,)`` the target tile."""

    images: torch.Tensor
    targets: torch.Tensor
    masks: torch.Tensor
    sources: torch.Tensor
    tile: torch.Tensor
    grid: int


@renamed(n="n_samples")
def mosaic(images: torch.Tensor, labels: torch.Tensor, grid: int = 2, n_samples: int | None = None, seed: int = 0) -> Mosaics:
    """Seeded ``grid``×``grid`` mosaics of photos with pairwise different labels, each tile the photo
    shrunk (area average) to ``H/grid``×``W/grid`` so a mosaic has the size of one photo.

    ``n_samples`` mosaics (default: one per photo, that photo being the target tile).

    >>> x, y = torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 3])
    >>> m = mosaic(x, y, grid=2)
    >>> tuple(m.images.shape), m.masks[0].float().mean().item()
    ((4, 3, 16, 16), 0.25)
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(f"images must be a tensor (N, C, H, W), got {getattr(images, 'shape', type(images).__name__)}")
    if images.shape[0] == 0:
        raise ValueError("images is empty: a mosaic needs labelled photos")
    labels = torch.as_tensor(labels)
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels must have one class per image ({images.shape[0]}), got shape {tuple(labels.shape)}")
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 2:
        raise ValueError(f"grid must be an int >= 2 (tiles per side), got {grid!r}")
    _, c, h, w = images.shape
    if h % grid or w % grid or h // grid < 8 or w // grid < 8:
        raise ValueError(f"grid={grid} does not fit {h}×{w} images: each side must divide by the grid into tiles "
                         f"of at least 8 pixels (e.g. grid=2 for 224×224)")
    classes = labels.unique()
    if len(classes) < grid * grid:
        raise ValueError(f"a {grid}×{grid} mosaic needs {grid * grid} different labels; the images have {len(classes)}")
    n_samples = images.shape[0] if n_samples is None else n_samples
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive int (number of mosaics), got {n_samples!r}")
    th, tw = h // grid, w // grid
    tiles = F.interpolate(images, size=(th, tw), mode="area")
    gen = torch.Generator().manual_seed(seed)
    out, targets, masks, sources, where = [], [], [], [], []
    for k in range(n_samples):
        first = k % images.shape[0]
        others = [j for j in torch.randperm(images.shape[0], generator=gen).tolist() if j != first]
        chosen, used = [first], {int(labels[first])}
        for j in others:
            if int(labels[j]) not in used and len(chosen) < grid * grid:
                chosen.append(j)
                used.add(int(labels[j]))
        order = torch.randperm(grid * grid, generator=gen)  # where each chosen photo goes
        picture = torch.empty(c, h, w, dtype=images.dtype)
        placed = [0] * (grid * grid)
        for src_pos, slot in enumerate(order.tolist()):
            r, q = divmod(slot, grid)
            picture[:, r * th:(r + 1) * th, q * tw:(q + 1) * tw] = tiles[chosen[src_pos]]
            placed[slot] = chosen[src_pos]
        slot = int(order[0])
        r, q = divmod(slot, grid)
        mask = torch.zeros(1, h, w, dtype=torch.bool)
        mask[:, r * th:(r + 1) * th, q * tw:(q + 1) * tw] = True
        out.append(picture); targets.append(int(labels[first])); masks.append(mask)
        sources.append(placed); where.append(slot)
    return Mosaics(torch.stack(out).to(images.device), torch.tensor(targets), torch.stack(masks).to(images.device),
                   torch.tensor(sources), torch.tensor(where), grid)
