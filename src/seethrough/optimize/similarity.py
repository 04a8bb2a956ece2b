"""Image similarity for judging reconstructions: SSIM (Wang et al., 2004), in torch."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .priors import gaussian_kernel


def ssim(a: torch.Tensor, b: torch.Tensor, *, sigma: float = 1.5, data_range: float = 1.0) -> torch.Tensor:
    """Mean structural similarity per image ``(N,)`` of two batches ``(N, C, H, W)``.

    Gaussian window σ = 1.5 truncated at 3.5σ (11 taps), statistics over valid windows only,
    channels averaged - the same numbers as scikit-image's ``structural_similarity(a, b,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1,
    channel_axis=0)``.

    >>> x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> ssim(x, x).tolist()
    [1.0, 1.0]
    """
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"ssim compares two image batches of one shape (N, C, H, W); got {tuple(a.shape)} and {tuple(b.shape)}")
    r = int(3.5 * sigma + 0.5)
    k1 = gaussian_kernel(sigma, a.dtype, a.device, radius=r)
    h, w = a.shape[-2:]
    if min(h, w) < 2 * r + 1:
        raise ValueError(f"ssim needs images of at least {2 * r + 1}×{2 * r + 1} px, got {h}×{w}")
    c = a.shape[1]
    kx = k1.view(1, 1, 1, -1).expand(c, 1, 1, -1)
    ky = k1.view(1, 1, -1, 1).expand(c, 1, -1, 1)

    def filt(z):
        return F.conv2d(F.conv2d(z, kx, groups=c), ky, groups=c)

    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a ** 2
    var_b = filt(b * b) - mu_b ** 2
    cov = filt(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(1)
