"""The pointing game (Zhang et al., 2016): does the map's maximum fall on the object?"""
from __future__ import annotations

import torch

from .result import ScoreResult


def pointing_game(attribution: torch.Tensor, mask: torch.Tensor, tolerance: int = 0) -> ScoreResult:
    """Hit (1.0) when the map's maximum (summed over channels) lies in ``mask`` or within
    ``tolerance`` pixels of it (Zhang et al. use 15 on 224×224), else 0.0. ``baseline`` is the
    chance of a hit for a uniformly random point: the (dilated) mask's area fraction.

    >>> a = torch.zeros(1, 1, 4, 4); a[0, 0, 0, 1] = 1
    >>> m = torch.zeros(1, 1, 4, 4, dtype=torch.bool); m[..., :2, :2] = True
    >>> r = pointing_game(a, m)
    >>> r.values.tolist(), r.baseline.tolist()
    ([1.0], [0.25])
    """
    if not isinstance(attribution, torch.Tensor) or attribution.dim() != 4:
        raise ValueError(f"attribution must be a map (N, C, H, W), got {getattr(attribution, 'shape', type(attribution).__name__)}")
    if not isinstance(mask, torch.Tensor) or mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[0] != attribution.shape[0] \
            or mask.shape[-2:] != attribution.shape[-2:]:
        raise ValueError(f"mask must be (N, 1, H, W) matching the map {tuple(attribution.shape)}, "
                         f"got {tuple(getattr(mask, 'shape', ()))}")
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 0:
        raise ValueError(f"tolerance must be an int >= 0 (pixels), got {tolerance!r}")
    m = mask.bool()
    if tolerance:
        k = 2 * tolerance + 1
        m = torch.nn.functional.max_pool2d(m.float(), k, stride=1, padding=tolerance) > 0
    a = attribution.detach().sum(1).flatten(1)
    hit = m.flatten(1).gather(1, a.argmax(1, keepdim=True))[:, 0]
    return ScoreResult("pointing_game", hit.float(), m.flatten(1).float().mean(1), {"tolerance": tolerance}, seed=None)
