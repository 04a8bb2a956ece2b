"""How the optimised image is represented: plain pixels, or a decorrelated Fourier spectrum.

Both end in a sigmoid, so every image handed to the model is in [0, 1] whatever the
optimiser does. The Fourier parameterization (Olah et al., *Feature Visualization*, 2017)
scales each frequency by 1/f so that gradient steps change all frequencies at a similar
visual rate, and mixes colour channels through the square root of ImageNet's colour
correlation so that steps move along decorrelated colour axes. Each parameterization can
also *encode* an image, which is how optimisation starts from a photo.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

# Square root of ImageNet's colour correlation (the matrix Lucid and Lucent use).
_COLOR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=torch.float64)
_COLOR = _COLOR_SQRT / _COLOR_SQRT.norm(dim=0).max()
_FOURIER_GAIN = 4.0  # Lucid's "magic" divisor: keeps the initial image near mid-grey
_EPS = 1e-4


@dataclass
class Param:
    """An image parameterization: ``raw`` (the leaf the optimiser updates) and how to read it.

    >>> p = pixel((1, 3, 4, 4), generator=torch.Generator().manual_seed(0))
    >>> x = p.image()
    >>> bool((x > 0).all() and (x < 1).all())
    True
    """

    raw: torch.Tensor
    decode: Callable[[torch.Tensor], torch.Tensor]
    encode: Callable[[torch.Tensor], torch.Tensor]
    name: str

    def image(self) -> torch.Tensor:
        """The current image ``(N, C, H, W)`` in (0, 1), differentiable with respect to ``raw``."""
        return self.decode(self.raw)

    def set_image(self, x: torch.Tensor) -> None:
        """Overwrite the parameters so that :meth:`image` returns ``x`` (up to the sigmoid's clip)."""
        with torch.no_grad():
            self.raw.copy_(self.encode(x))


def _local(generator: torch.Generator | None) -> torch.Generator:
    """The generator to draw from: never torch's global one, so building a parameterization
    leaves the caller's random state as it was (no generator: a fixed seed-0 stream)."""
    return generator if generator is not None else torch.Generator().manual_seed(0)


def _logit(x: torch.Tensor) -> torch.Tensor:
    return torch.logit(x.clamp(_EPS, 1 - _EPS))


def pixel(shape: tuple[int, int, int, int], *, sd: float = 0.01, generator: torch.Generator | None = None,
          device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Param:
    """One free parameter per pixel and channel, through a sigmoid.

    >>> p = pixel((2, 1, 8, 8))
    >>> torch.allclose(pixel((2, 1, 8, 8)).encode(p.image()), p.raw, atol=1e-5)
    True
    """
    raw = (torch.randn(shape, generator=_local(generator), dtype=torch.float64) * sd).to(device=device, dtype=dtype)
    return Param(raw.requires_grad_(), torch.sigmoid, _logit, "pixel")


def _freqs(h: int, w: int, dtype: torch.dtype) -> torch.Tensor:
    fy = torch.fft.fftfreq(h, dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(w, dtype=torch.float64)[None, :]
    return (fx * fx + fy * fy).sqrt()


def fourier(shape: tuple[int, int, int, int], *, decorrelate: bool = True, decay: float = 1.0, sd: float = 0.01,
            generator: torch.Generator | None = None, device: torch.device | str | None = None,
            dtype: torch.dtype = torch.float32) -> Param:
    """A spectrum with 1/f^decay scaling and (for 3 channels) decorrelated colour, through a sigmoid.

    >>> p = fourier((1, 3, 16, 16), generator=torch.Generator().manual_seed(0))
    >>> x = torch.rand(1, 3, 16, 16) * 0.8 + 0.1
    >>> p.set_image(x)
    >>> torch.allclose(p.image(), x, atol=1e-4)
    True
    """
    n, c, h, w = shape
    scale = 1.0 / _freqs(h, w, dtype).clamp(min=1.0 / max(h, w)) ** decay
    scale = scale.to(device=device, dtype=dtype)[None, None, :, :, None]
    colour = decorrelate and c == 3
    mix = _COLOR.to(device=device, dtype=dtype)
    unmix = torch.linalg.inv(_COLOR).to(device=device, dtype=dtype)

    def decode(raw: torch.Tensor) -> torch.Tensor:
        spectrum = torch.view_as_complex((raw * scale).contiguous())
        img = torch.fft.irfft2(spectrum, s=(h, w), norm="ortho") / _FOURIER_GAIN
        if colour:
            img = torch.einsum("ij,njhw->nihw", mix, img)
        return torch.sigmoid(img)

    def encode(x: torch.Tensor) -> torch.Tensor:
        img = _logit(x.to(device=device, dtype=dtype))
        if colour:
            img = torch.einsum("ij,njhw->nihw", unmix, img)
        spectrum = torch.fft.rfft2(img * _FOURIER_GAIN, norm="ortho")
        return torch.view_as_real(spectrum) / scale

    raw = torch.randn((n, c, h, w // 2 + 1, 2), generator=_local(generator), dtype=torch.float64) * sd
    return Param(raw.to(device=device, dtype=dtype).requires_grad_(), decode, encode, "fourier" if colour or c != 3 else "fourier (no colour decorrelation)")


PARAMS = {"pixel": pixel, "fourier": fourier}


def make(kind: str, shape: tuple[int, int, int, int], **options) -> Param:
    """Build the parameterization called ``kind`` (``"pixel"`` or ``"fourier"``).

    >>> make("fourier", (1, 1, 8, 8)).image().shape
    torch.Size([1, 1, 8, 8])
    """
    if kind not in PARAMS:
        raise ValueError(f"unknown parameterization {kind!r}; choose one of {', '.join(map(repr, PARAMS))}")
    return PARAMS[kind](shape, **options)
