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


def layout_correlation(a: torch.Tensor, b: torch.Tensor, *, cells: int = 16) -> torch.Tensor:
    """Pearson correlation per image ``(N,)`` of the two batches' brightness on a coarse
    ``cells × cells`` grid (channel mean, area-averaged): does the reconstruction put light and
    dark where the original has them? A flat image scores 0 (SSIM gives it about 0.3 on a
    smooth photo, which is why both are reported for inversions).

    >>> x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    >>> layout_correlation(x, 2 * x).tolist(), layout_correlation(x, torch.full_like(x, 0.5)).tolist()
    ([1.0, 1.0], [0.0, 0.0])
    """
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"layout_correlation compares two image batches of one shape (N, C, H, W); got {tuple(a.shape)} and {tuple(b.shape)}")
    if min(a.shape[-2:]) < cells:
        raise ValueError(f"a {a.shape[-2]}×{a.shape[-1]} image is smaller than the {cells}×{cells} grid; use fewer cells")
    ga = F.adaptive_avg_pool2d(a.mean(1, keepdim=True), cells).flatten(1)
    gb = F.adaptive_avg_pool2d(b.mean(1, keepdim=True), cells).flatten(1)
    ga, gb = ga - ga.mean(1, keepdim=True), gb - gb.mean(1, keepdim=True)
    den = ga.norm(dim=1) * gb.norm(dim=1)
    r = (ga * gb).sum(1) / den.clamp_min(1e-12)
    return torch.where(den > 1e-12, r, torch.zeros_like(r)).clamp(-1, 1)
