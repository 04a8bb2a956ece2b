"""Safe handling of user-uploaded images for the local web explorer.

Everything here is a pure function over bytes (plus one async reader), so the
web layer stays thin and every rule can be tested without a server. The rules:

* the body size is capped twice: against the declared ``Content-Length``
  before anything is read, and while reading, because the header may lie or
  be absent;
* only PNG, JPEG and WebP are decoded, decided from the bytes themselves; the
  file name and the declared content type are never trusted;
* the pixel dimensions are checked from the header before any pixel data is
  decompressed, so a small file that expands to gigabytes is refused cheaply;
* truncated or corrupt files are errors, never silently half-decoded images;
* the result is always an upright RGB image (EXIF orientation applied,
  transparency composited over white).

Errors are :class:`UploadError` carrying the HTTP status to answer with
(400, 413 or 415), so the web layer only translates them.
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
import warnings
import zlib
from collections.abc import AsyncIterable

from PIL import Image, ImageOps, UnidentifiedImageError

from ..zoo import to_rgb

__all__ = [
    "FORMATS",
    "MAX_BYTES",
    "MAX_SIDE",
    "UploadError",
    "check_declared_length",
    "content_hash",
    "decode_image",
    "read_limited",
]

MAX_BYTES = 10 * 2**20
MAX_SIDE = 4096
FORMATS = ("PNG", "JPEG", "WEBP")

# Exceptions Pillow's decoders raise on bad data. They are not one hierarchy:
# the C decoders report through OSError, the Python chunk readers through
# SyntaxError/EOFError/struct.error, zlib through zlib.error.
_CORRUPT = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)

# RFC 9110: Content-Length = 1*DIGIT. int() would also accept "+5", " 5 ",
# "1_000" and non-ASCII digits, none of which a client may send.
_DIGITS = re.compile(r"[0-9]+")


class UploadError(ValueError):
    """An upload refused, with the HTTP status the web layer should answer.

    >>> e = UploadError(415, "not an image")
    >>> e.status, e.message, str(e), isinstance(e, ValueError)
    (415, 'not an image', 'not an image', True)
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return self.message


def _size_text(n: int) -> str:
    """Bytes as MiB for people; tiny sizes in bytes so a limit never reads "0.0 MiB"."""
    if n < 2**20 // 10:
        return f"{n} bytes"
    return f"{n / 2**20:.1f}".removesuffix(".0") + " MiB"


def check_declared_length(header: str | None, max_bytes: int = MAX_BYTES) -> None:
    """Check a ``Content-Length`` header before any of the body is read.

    ``None`` (no header, e.g. a chunked upload) passes: :func:`read_limited`
    still enforces the cap while reading. A value above ``max_bytes`` is a
    413; anything that is not a plain non-negative integer is a 400.

    >>> check_declared_length(None)
    >>> check_declared_length("2048")
    >>> try:
    ...     check_declared_length(str(11 * 2**20))
    ... except UploadError as e:
    ...     print(e.status, e)
    413 the upload is 11 MiB, over the 10 MiB limit
    >>> try:
    ...     check_declared_length("-5")
    ... except UploadError as e:
    ...     print(e.status)
    400
    """
    if header is None:
        return
    text = header.strip()
    if not _DIGITS.fullmatch(text):
        raise UploadError(400, f"invalid Content-Length header: {header[:40]!r}")
    size = int(text)
    if size > max_bytes:
        raise UploadError(
            413, f"the upload is {_size_text(size)}, over the {_size_text(max_bytes)} limit"
        )


async def read_limited(chunks: AsyncIterable[bytes], max_bytes: int = MAX_BYTES) -> bytes:
    """Read a body chunk by chunk, refusing it (413) as soon as it passes ``max_bytes``.

    The count is kept while reading, so a missing or lying ``Content-Length``
    cannot make the server buffer more than ``max_bytes`` plus one chunk. On
    refusal the source is closed (when it can be) so its producer stops too.

    >>> import asyncio
    >>> async def body(parts):
    ...     for part in parts:
    ...         yield part
    >>> asyncio.run(read_limited(body([b"ab", b"cd"]), max_bytes=4))
    b'abcd'
    >>> try:
    ...     asyncio.run(read_limited(body([b"ab", b"cd", b"e"]), max_bytes=4))
    ... except UploadError as e:
    ...     print(e.status)
    413
    """
    iterator = aiter(chunks)
    parts: list[bytes] = []
    total = 0
    try:
        async for chunk in iterator:
            total += len(chunk)
            if total > max_bytes:
                raise UploadError(
                    413,
                    f"the upload is over the {_size_text(max_bytes)} limit "
                    f"(stopped reading at {_size_text(total)})",
                )
            parts.append(bytes(chunk))
    finally:
        # Breaking out of `async for` does not close an async generator; an
        # unclosed one keeps its producer (the socket read) pending until GC.
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()
    return b"".join(parts)


def content_hash(data: bytes) -> str:
    """A short stable key for stored uploads: the first 16 hex digits of SHA-256.

    64 bits is plenty to tell apart the uploads of one local session, and
    short enough to sit in a URL.

    >>> content_hash(b"")
    'e3b0c44298fc1c14'
    >>> len(content_hash(b"image bytes"))
    16
    """
    return hashlib.sha256(data).hexdigest()[:16]


def decode_image(
    data: bytes, *, max_side: int = MAX_SIDE, max_pixels: int | None = None
) -> Image.Image:
    """Decode an uploaded PNG, JPEG or WebP into an upright RGB image.

    The format is sniffed from the bytes; nothing else is ever decoded (415).
    Dimensions come from the header and are checked before any pixel data is
    decompressed: a side over ``max_side`` or more than ``max_pixels`` pixels
    (default ``max_side * max_side``) is a 413. Pillow's own global limit
    (``Image.MAX_IMAGE_PIXELS``) still applies on top and is also a 413.
    Empty, truncated or corrupt data is a 400.

    >>> buf = io.BytesIO()
    >>> Image.new("RGBA", (3, 2), (0, 0, 0, 0)).save(buf, "PNG")
    >>> img = decode_image(buf.getvalue())
    >>> img.mode, img.size, img.getpixel((0, 0))
    ('RGB', (3, 2), (255, 255, 255))
    >>> try:
    ...     decode_image(b"GIF89a...")
    ... except UploadError as e:
    ...     print(e.status)
    415
    """
    if not data:
        raise UploadError(400, "the file is empty")
    limit_pixels = max_side * max_side if max_pixels is None else max_pixels

    # Pillow signals "large, maybe a bomb" with a warning; as an upload limit
    # it must be an error. catch_warnings swaps process-wide filters (not
    # thread-safe before Python 3.14); the explicit pixel check below is the
    # real guard, this only covers callers who raise max_pixels past Pillow's.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            # formats= keeps every other Pillow decoder (and its attack
            # surface: GIF, BMP, TIFF, EPS via Ghostscript...) out of reach.
            img = Image.open(io.BytesIO(data), formats=list(FORMATS))
        except UnidentifiedImageError:
            raise UploadError(
                415,
                "not a PNG, JPEG or WebP image (the file's name and declared type "
                "are not trusted); convert it to one of those formats and upload again",
            ) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise UploadError(413, f"the image is too large to decode safely: {e}") from None
        except _CORRUPT as e:
            raise UploadError(400, f"the image is truncated or corrupt: {e}") from None

        with img:
            # Image.open only parsed the header: these sizes cost nothing yet.
            width, height = img.size
            if width > max_side or height > max_side:
                raise UploadError(
                    413,
                    f"the image is {width}\u00d7{height} pixels; "
                    f"the largest side allowed is {max_side}",
                )
            if width * height > limit_pixels:
                raise UploadError(
                    413,
                    f"the image is {width}\u00d7{height} = {width * height} pixels; "
                    f"at most {limit_pixels} are allowed",
                )
            try:
                # With ImageFile.LOAD_TRUNCATED_IMAGES at its default (False)
                # a short file raises here instead of padding with grey.
                img.load()
            except _CORRUPT as e:
                raise UploadError(400, f"the image is truncated or corrupt: {e}") from None
            return to_rgb(_upright(img))  # the zoo's conversion: alpha over white, 16-bit rescaled


def _upright(img: Image.Image) -> Image.Image:
    """Apply EXIF orientation; a malformed EXIF block only loses the rotation.

    Orientation is presentation metadata: refusing an otherwise good photo
    because a camera wrote a broken maker note would be worse than showing it
    as stored.
    """
    try:
        return ImageOps.exif_transpose(img)
    except (*_CORRUPT, KeyError, TypeError):
        return img.copy()
