"""Concepts for network dissection that need no download: colours, patterns, textures.

Bau et al. (2017) dissect units against Broden, a large densely labelled data set. Here
every concept is computed or drawn, so its per-pixel mask is exact:

* **colour** (11 basic colour terms, as Broden's colour labels): every pixel of every image is
  labelled by its nearest colour prototype in CIE Lab;
* **pattern**: stripes in four orientations, dots and checkerboards, each at three scales;
* **texture**: scikit-image's bundled brick, grass and gravel photographs.

Real photos rarely contain stripes, so the :class:`Probe` data set composes *mosaics*: each
image is cut into four rectangles, each filled with one pattern or texture (or a plain
colour) drawn in two colours, and the rectangle's label is exact. A share of the probe
is real photos (the bundled ones, random crops), which are labelled with colours only; on
them the pattern and texture categories count as *not annotated* (they enter no IoU union).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

# sRGB focal colours of the 11 basic colour terms (Berlin & Kay), approximate.
COLORS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0), "grey": (128, 128, 128), "white": (255, 255, 255), "red": (200, 30, 30),
    "orange": (240, 140, 20), "yellow": (245, 225, 30), "green": (40, 160, 50), "blue": (30, 70, 200),
    "purple": (120, 40, 150), "pink": (240, 150, 180), "brown": (120, 70, 30),
}
TEXTURES = ("brick", "grass", "gravel")
CATEGORIES = ("color", "pattern", "texture")
_ANGLES = {"v": 0.0, "d45": 45.0, "h": 90.0, "d135": 135.0}  # stripes-v: vertical bands (they vary along x)
_PLAIN = 0.2  # share of mosaic rectangles that are a plain colour (no pattern, no texture)


def srgb_to_lab(x: torch.Tensor) -> torch.Tensor:
    """``(..., 3, H, W)`` sRGB in [0, 1] → CIE L*a*b* (D65), same shape.

    >>> srgb_to_lab(torch.ones(1, 3, 1, 1)).flatten().round().abs().tolist()   # white: L = 100, a = b = 0
    [100.0, 0.0, 0.0]
    """
    lin = torch.where(x <= 0.04045, x / 12.92, ((x.clamp_min(0) + 0.055) / 1.055) ** 2.4)
    m = torch.tensor([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                      [0.0193339, 0.1191920, 0.9503041]], dtype=x.dtype, device=x.device)
    xyz = torch.einsum("ij,...jhw->...ihw", m, lin)
    white = torch.tensor([0.95047, 1.0, 1.08883], dtype=x.dtype, device=x.device).view(3, 1, 1)
    t = xyz / white
    f = torch.where(t > (6 / 29) ** 3, t.clamp_min(1e-12) ** (1 / 3), t / (3 * (6 / 29) ** 2) + 4 / 29)
    fx, fy, fz = f.unbind(-3)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], -3)


def color_labels(x: torch.Tensor) -> torch.Tensor:
    """``(N, C, H, W)`` images in [0, 1] (C = 1 or 3) → ``(N, H, W)`` index into :data:`COLORS` of
    each pixel's nearest colour prototype in Lab (Euclidean, CIE76).

    >>> color_labels(torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)).item() == list(COLORS).index("red")
    True
    """
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"colour labels need images (N, 1 or 3, H, W), got shape {tuple(x.shape)}")
    x = x.float().clamp(0, 1).expand(-1, 3, -1, -1)
    lab = srgb_to_lab(x).flatten(2).transpose(1, 2)  # (N, HW, 3)
    protos = _prototypes_lab()
    # argmin |lab - p|² = argmin (|p|² - 2 lab·p): one matrix product instead of K differences
    d = protos.pow(2).sum(1) - 2 * lab @ protos.T  # (N, HW, K)
    return d.argmin(2).view(x.shape[0], *x.shape[2:])


@lru_cache(maxsize=1)
def _prototypes_lab() -> torch.Tensor:
    rgb = torch.tensor(list(COLORS.values()), dtype=torch.float32).T.reshape(1, 3, len(COLORS), 1) / 255
    return srgb_to_lab(rgb)[0, :, :, 0].T.contiguous()  # (K, 3)


@lru_cache(maxsize=8)
def _coords(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    r = torch.arange(size, dtype=torch.float32) + 0.5
    return torch.meshgrid(r, r, indexing="ij")


def stripes(size: int, period: float, angle: float, phase: float = 0.0) -> torch.Tensor:
    """``(size, size)`` in {0, 1}: bands of width ``period / 2``; ``angle`` 0 = vertical bands.

    >>> stripes(4, 2, 0).tolist()[0]
    [1.0, 0.0, 1.0, 0.0]
    """
    yy, xx = _coords(size)
    th = math.radians(angle)
    u = xx * math.cos(th) + yy * math.sin(th) + phase
    return (u.remainder(period) < period / 2).float()


def dots(size: int, spacing: float, phase: tuple[float, float] = (0.0, 0.0)) -> torch.Tensor:
    """``(size, size)`` in {0, 1}: discs of radius ``0.3 · spacing`` on a square grid.

    >>> dots(10, 10)[4].tolist()
    [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    """
    yy, xx = _coords(size)
    dy = (yy + phase[0]).remainder(spacing) - spacing / 2
    dx = (xx + phase[1]).remainder(spacing) - spacing / 2
    return (dy * dy + dx * dx < (0.3 * spacing) ** 2).float()


def checker(size: int, cell: float, phase: tuple[float, float] = (0.0, 0.0)) -> torch.Tensor:
    """``(size, size)`` in {0, 1}: a checkerboard of ``cell``-pixel squares.

    >>> checker(4, 2).tolist()[0], checker(4, 2).tolist()[2]
    ([0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0])
    """
    yy, xx = _coords(size)
    return ((torch.floor((yy + phase[0]) / cell) + torch.floor((xx + phase[1]) / cell)).remainder(2) == 1).float()


@lru_cache(maxsize=None)
def _texture(name: str) -> torch.Tensor:
    import numpy as np
    import skimage.data

    return torch.from_numpy(np.asarray(getattr(skimage.data, name)(), dtype=np.float32) / 255.0)


@lru_cache(maxsize=4)
def _photos(size: int) -> tuple[torch.Tensor, ...]:
    """The bundled photos as ``(3, h, w)`` tensors with the short side ``2 · size`` (cached)."""
    import numpy as np

    from ..zoo import image, images

    out = []
    for name in images():
        img = image(name)
        scale = 2 * size / min(img.size)
        img = img.resize((max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale))))
        out.append(torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous())
    return tuple(out)


def pattern_scales(size: int) -> tuple[int, int, int]:
    """The three pattern scales (px) at a probe size: size/16, size/8, size/4.

    >>> pattern_scales(64)
    (4, 8, 16)
    """
    return tuple(max(2, round(size / d)) for d in (16, 8, 4))


@lru_cache(maxsize=8)
def concept_list(size: int) -> tuple[tuple[str, str], ...]:
    """``(name, category)`` of every concept at a probe size, colours first.

    >>> [n for n, c in concept_list(64) if c == "pattern"][:5]
    ['stripes-v-4', 'stripes-d45-4', 'stripes-h-4', 'stripes-d135-4', 'dots-4']
    """
    out = [(c, "color") for c in COLORS]
    for s in pattern_scales(size):
        out += [(f"stripes-{a}-{s}", "pattern") for a in _ANGLES] + [(f"dots-{s}", "pattern"), (f"checker-{s}", "pattern")]
    return tuple(out + [(t, "texture") for t in TEXTURES])


@lru_cache(maxsize=8)
def _index(size: int) -> dict[str, int]:
    return {n: k for k, (n, _) in enumerate(concept_list(size))}


_CACHE_BYTES = 64 << 20  # drawn probe images kept in memory (a 600-image 64-px probe is 29 MB)


class _Cache(OrderedDict):
    bytes = 0


_CACHE: "_Cache" = _Cache()
_RGB = torch.tensor(list(COLORS.values()), dtype=torch.float32) / 255


def _fill(kind: str, size: int, g: torch.Generator) -> torch.Tensor:
    """One concept drawn over the whole ``size``² canvas, values in [0, 1] (1 = foreground)."""
    u = lambda: float(torch.rand((), generator=g))  # noqa: E731
    if kind in TEXTURES:
        tex = _texture(kind)
        side = min(tex.shape[0], size)
        top, left = int(u() * (tex.shape[0] - side + 1)), int(u() * (tex.shape[1] - side + 1))
        t = tex[top:top + side, left:left + side]
        if side < size:
            t = F.interpolate(t[None, None], size=(size, size), mode="bilinear", align_corners=False)[0, 0]
        return (t - t.min()) / (t.max() - t.min()).clamp_min(1e-6)
    shape, rest = kind.split("-", 1)
    if shape == "stripes":
        angle, scale = rest.split("-")
        return stripes(size, float(scale), _ANGLES[angle], u() * float(scale))
    scale = float(rest)
    phase = (u() * scale, u() * scale)
    return dots(size, scale, phase) if shape == "dots" else checker(size, scale, phase)


@dataclass(frozen=True, eq=True)
class Probe(Dataset):
    """A deterministic probe data set of ``n`` images ``size``² (mosaics and, a ``photos`` share, photo crops).

    ``probe[i]`` → ``(x (channels, size, size) in [0, 1], None, name)``; image ``i`` depends only on
    ``(seed, i)``. :meth:`label_planes` gives the exact per-pixel concept labels.

    >>> p = Probe(n=8, size=32)
    >>> x, _, name = p[3]
    >>> x.shape, torch.equal(x, p[3][0]), len(p.concepts)
    (torch.Size([3, 32, 32]), True, 32)
    """

    n: int = 600
    size: int = 64
    photos: float = 0.1
    channels: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        for what, v, lo in (("n", self.n, 1), ("size", self.size, 16)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"probe {what} must be an int >= {lo}, got {v!r}")
        if not 0 <= self.photos <= 1:
            raise ValueError(f"photos is the share of photo images, a number in [0, 1], got {self.photos!r}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (gray) or 3 (RGB), got {self.channels!r}")

    @property
    def concepts(self) -> tuple[str, ...]:
        return tuple(n for n, _ in concept_list(self.size))

    @property
    def concept_categories(self) -> tuple[str, ...]:
        return tuple(c for _, c in concept_list(self.size))

    @property
    def categories(self) -> tuple[str, ...]:
        return CATEGORIES

    @property
    def spec(self) -> dict:
        """A JSON-able description that rebuilds the probe (``Probe(**spec["options"])``)."""
        return {"kind": "probe", "options": {"n": self.n, "size": self.size, "photos": self.photos,
                                             "channels": self.channels, "seed": self.seed}}

    def __len__(self) -> int:
        return self.n

    def _generator(self, i: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1_000_003 + i)

    def _layout(self, i: int, g: torch.Generator):
        """Photo or mosaic; for a mosaic its 4 rectangles ``(top, left, bottom, right, kind, fg, bg)``."""
        if float(torch.rand((), generator=g)) < self.photos:
            return None
        s = self.size
        cy, cx = (int(s * (0.3 + 0.4 * float(torch.rand((), generator=g)))) for _ in range(2))
        kinds = [n for n, c in concept_list(s) if c != "color"]  # cached list: cheap
        rects = []
        for t, l, b, r in ((0, 0, cy, cx), (0, cx, cy, s), (cy, 0, s, cx), (cy, cx, s, s)):
            plain = float(torch.rand((), generator=g)) < _PLAIN
            kind = None if plain else kinds[int(torch.randint(len(kinds), (), generator=g))]
            fg, bg = torch.randperm(len(COLORS), generator=g)[:2].tolist()
            rects.append((t, l, b, r, kind, fg, bg))
        return rects

    def _draw(self, i: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Image ``i`` and its pattern plane, from a small in-memory cache: dissection reads the probe
        once per pass, and drawing costs more than the forward of a small network."""
        key = (self, int(i) if isinstance(i, (int, torch.Tensor)) else i)
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return hit
        drawn = self._render(i)
        _CACHE[key] = drawn
        _CACHE.bytes += drawn[0].numel() * 4
        while _CACHE.bytes > _CACHE_BYTES and len(_CACHE) > 1:
            _, (old, _) = _CACHE.popitem(last=False)
            _CACHE.bytes -= old.numel() * 4
        return drawn

    def _render(self, i: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not (isinstance(i, int) or (isinstance(i, torch.Tensor) and i.dim() == 0)) or not 0 <= int(i) < self.n:
            raise IndexError(f"probe index {i!r} out of range 0..{self.n - 1}")
        i = int(i)
        g = self._generator(i)
        s = self.size
        rects = self._layout(i, g)
        protos = _RGB
        if rects is None:
            photos = _photos(s)
            ph = photos[int(torch.randint(len(photos), (), generator=g))]
            side = int(min(ph.shape[1:]) * (0.5 + 0.5 * float(torch.rand((), generator=g))))
            top = int(torch.randint(ph.shape[1] - side + 1, (), generator=g))
            left = int(torch.randint(ph.shape[2] - side + 1, (), generator=g))
            x = F.interpolate(ph[None, :, top:top + side, left:left + side], size=(s, s), mode="bilinear",
                              antialias=True, align_corners=False)[0].clamp(0, 1)
            return self._channels(x), None
        x = torch.zeros(3, s, s)
        patch = torch.full((s, s), -1, dtype=torch.long)
        index = _index(s)
        for t, l, b, r, kind, fg, bg in rects:
            jitter = (torch.rand(2, 3, generator=g) - 0.5) * 0.06  # small: each colour stays nearest its prototype
            cf, cb = (protos[fg] + jitter[0]).clamp(0, 1), (protos[bg] + jitter[1]).clamp(0, 1)
            if kind is None:
                x[:, t:b, l:r] = cb.view(3, 1, 1)
                continue
            m = _fill(kind, s, g)[t:b, l:r]
            x[:, t:b, l:r] = m * cf.view(3, 1, 1) + (1 - m) * cb.view(3, 1, 1)
            patch[t:b, l:r] = index[kind]
        # Sensor-like pixel noise: no two pixels of a plain patch tie, so a unit's top quantile
        # is a real fraction of the pixels; 0.02 moves no pixel near another colour prototype.
        x = (x + 0.02 * torch.randn(x.shape, generator=g)).clamp(0, 1)
        return self._channels(x), patch

    def _channels(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels == 1:
            return (0.2126 * x[0] + 0.7152 * x[1] + 0.0722 * x[2])[None].clamp(0, 1)
        return x

    def __getitem__(self, i: int) -> tuple[torch.Tensor, None, str]:
        x, patch = self._draw(i)
        return x.clone(), None, f"{'mosaic' if patch is not None else 'photo'}-{int(i):05d}"

    def label_planes(self, ids: torch.Tensor, inputs: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact labels for examples ``ids``: ``planes (B, 2, size, size)`` of concept indices (−1:
        none) — plane 0 the colour of each pixel (computed from ``inputs`` when given, the images
        the model saw), plane 1 the mosaic's pattern/texture — and ``annotated (B, 3)``: whether
        each category is labelled on each image (patterns and textures are not, on photos).

        >>> p = Probe(n=4, size=32, photos=0.0)
        >>> planes, annotated = p.label_planes(torch.tensor([0, 1]))
        >>> planes.shape, annotated.tolist()
        (torch.Size([2, 2, 32, 32]), [[True, True, True], [True, True, True]])
        """
        ids = torch.as_tensor(ids, dtype=torch.long).reshape(-1)
        drawn = [self._draw(int(i)) for i in ids] if inputs is None else [(None, self._patch(int(i))) for i in ids]
        imgs = inputs if inputs is not None else torch.stack([d[0] for d in drawn])
        colour = color_labels(imgs.float())
        none = torch.full((self.size, self.size), -1, dtype=torch.long)
        patch = torch.stack([d[1] if d[1] is not None else none for d in drawn])
        mosaic = torch.tensor([d[1] is not None for d in drawn])
        annotated = torch.stack([torch.ones_like(mosaic), mosaic, mosaic], 1)
        return torch.stack([colour, patch], 1), annotated

    def _patch(self, i: int) -> torch.Tensor | None:
        """The pattern/texture plane alone: the layout is drawn first, so no fill is needed."""
        rects = self._layout(i, self._generator(i))
        if rects is None:
            return None
        patch = torch.full((self.size, self.size), -1, dtype=torch.long)
        index = _index(self.size)
        for t, l, b, r, kind, _, _ in rects:
            if kind is not None:
                patch[t:b, l:r] = index[kind]
        return patch
