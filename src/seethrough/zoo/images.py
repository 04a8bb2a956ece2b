"""Bundled photos and robust image reading (any mode, any size, any file) into RGB PIL."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, UnidentifiedImageError

ImageLike = Union[Image.Image, np.ndarray, str, os.PathLike]

# scikit-image ships these RGB photos inside its wheel, so they load with no network.
_PHOTOS = {
    "astronaut": "astronaut.png",
    "chelsea": "chelsea.png",
    "coffee": "coffee.png",
    "rocket": "rocket.jpg",
    "hubble_deep_field": "hubble_deep_field.jpg",
    "immunohistochemistry": "ihc.png",
    "motorcycle": "motorcycle_left.png",
    "retina": "retina.jpg",
}

# Decoding a huge photo at full size only to shrink it to 224 px wastes memory: cap early.
MAX_SIDE = 2048


def _skimage_dir() -> Path:
    import skimage.data

    return Path(skimage.data.__file__).parent


def images() -> list[str]:
    """Names of the bundled photos.

    >>> "chelsea" in images()
    True
    """
    return sorted(_PHOTOS)


def image(name: str) -> Image.Image:
    """A bundled photo as an RGB PIL image.

    >>> image("chelsea").size
    (451, 300)
    """
    if name not in _PHOTOS:
        import difflib

        close = difflib.get_close_matches(name, list(_PHOTOS), n=3)
        raise ValueError(f"unknown image {name!r}; bundled photos: {', '.join(images())}" + (f" (closest: {', '.join(close)})" if close else ""))
    return read_image(_skimage_dir() / _PHOTOS[name])


def image_file(name: str) -> Path:
    """The file of a bundled photo (what the CLI reads where an image path is given a photo's name).

    >>> image_file("chelsea").name
    'chelsea.png'
    """
    if name not in _PHOTOS:
        raise ValueError(f"unknown image {name!r}; bundled photos: {', '.join(images())}")
    return _skimage_dir() / _PHOTOS[name]


def read_image(src: ImageLike, max_side: int = MAX_SIDE) -> Image.Image:
    """Read a path, PIL image or array into an RGB PIL image with sides ≤ ``max_side``.

    Grayscale, RGBA (composited on white), palette, 16-bit and float images are
    converted rather than rejected; unreadable files are a ``ValueError``.

    >>> read_image(np.zeros((10, 12), dtype=np.uint8)).mode
    'RGB'
    """
    if isinstance(src, (str, os.PathLike)):
        img = _open(Path(src), max_side)
    elif isinstance(src, Image.Image):
        img = src
    elif isinstance(src, np.ndarray):
        img = _from_array(src)
    else:
        raise TypeError(f"expected a PIL image, a numpy array or a file path, got {type(src).__name__}")
    img = to_rgb(img)
    if max(img.size) > max_side:
        img = img.copy()
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return img


def _open(path: Path, max_side: int) -> Image.Image:
    if not path.exists():
        raise ValueError(f"no such image file: {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not an image file")
    try:
        img = Image.open(path)
        # JPEG can decode directly at 1/2, 1/4, 1/8 scale: bounded memory for huge photos.
        img.draft("RGB", (max_side, max_side))
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"cannot read {path} as an image ({e.__class__.__name__}); give a PNG, JPEG or other PIL-readable file") from e
    except Image.DecompressionBombError as e:
        raise ValueError(f"{path} is too large to decode safely ({e})") from e
    return img


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; transparency (an alpha channel, or a PNG
    transparency key on a palette, grey or RGB image) is composited on white.

    >>> to_rgb(Image.new("LA", (1, 1), (0, 0))).getpixel((0, 0))
    (255, 255, 255)
    """
    if img.mode == "RGB" and "transparency" not in img.info:
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return to_rgb(_from_array(np.asarray(img)))
    if img.mode in ("RGBA", "LA", "PA", "P") or "transparency" in img.info:
        # Dropping alpha would show whatever colour the encoder left under transparent pixels.
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return img.convert("RGB")


def _from_array(a: np.ndarray) -> Image.Image:
    a = np.asarray(a)
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
        a = np.moveaxis(a, 0, -1)  # CHW → HWC
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
        raise ValueError(f"an image array must be (H, W), (H, W, 3) or (H, W, 4), got shape {a.shape}")
    if a.size == 0:
        raise ValueError("the image array is empty")
    if a.dtype == np.uint8:
        u8 = a
    elif a.dtype == np.bool_:
        u8 = a.astype(np.uint8) * 255
    elif np.issubdtype(a.dtype, np.integer):
        top = 65535 if a.max() > 255 else 255
        u8 = np.clip(a.astype(np.float64) / top * 255 + 0.5, 0, 255).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ValueError("the image array contains NaN or infinite values")
        if a.min() < 0 or a.max() > 1:
            raise ValueError(f"a float image array must lie in [0, 1], got [{a.min():.3g}, {a.max():.3g}]; divide by 255 for 8-bit data")
        u8 = (a * 255 + 0.5).astype(np.uint8)
    else:
        raise TypeError(f"unsupported image array dtype {a.dtype}")
    return Image.fromarray(u8)
