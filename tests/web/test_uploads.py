"""Upload handling: size caps before and while reading, format sniffing, bomb and corruption guards, RGB output."""
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from .conftest import run_async
from seethrough.web.uploads import (
    MAX_BYTES,
    UploadError,
    check_declared_length,
    content_hash,
    decode_image,
    read_limited,
)


def _encode(img: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _zero_grey_png(width: int, height: int) -> bytes:
    """An all-black 8-bit greyscale PNG built chunk by chunk, never holding the raw pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit, greyscale, no interlace
    row = b"\x00" + bytes(width)  # filter byte "None", then the pixels
    compressor = zlib.compressobj(9)
    block = row * 200
    parts = [compressor.compress(block) for _ in range(height // 200)]
    parts.append(compressor.compress(row * (height % 200)))
    parts.append(compressor.flush())
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", b"".join(parts))
        + _chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def bomb_png() -> bytes:
    data = _zero_grey_png(20000, 20000)
    assert len(data) < 2**20  # the point: a small upload that expands to 400 MB
    return data


@pytest.fixture
def no_pixel_decoding(monkeypatch):
    """Make any pixel decoding fail loudly, so a test proves a refusal came from the header alone."""

    def load(self):
        raise AssertionError(f"pixels of a {self.size} image were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)


def _status(call) -> UploadError:
    with pytest.raises(UploadError) as info:
        call()
    return info.value


# --- size caps on the body ---------------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "0", "100", str(MAX_BYTES), f" {MAX_BYTES} "])
def test_declared_length_within_the_limit_passes(header):
    check_declared_length(header)


def test_declared_length_over_the_limit_is_413_naming_size_and_limit():
    err = _status(lambda: check_declared_length(str(11 * 2**20)))
    assert err.status == 413
    assert "11 MiB" in err.message and "10 MiB" in err.message
    assert _status(lambda: check_declared_length(str(MAX_BYTES + 1))).status == 413


@pytest.mark.parametrize("header", ["abc", "-5", "", "+5", "1e6", "5, 5", "1_000", "\u0665"])
def test_declared_length_that_is_not_a_plain_number_is_400(header):
    assert _status(lambda: check_declared_length(header)).status == 400


class _Body:
    """An async body of 1 MiB chunks that counts what was consumed and whether it was closed."""

    def __init__(self, total_chunks: int, chunk: int = 2**20):
        self.total_chunks, self.chunk = total_chunks, chunk
        self.consumed = 0
        self.closed = False

    async def stream(self):
        try:
            while self.consumed < self.total_chunks:
                self.consumed += 1
                yield bytes([self.consumed % 256]) * self.chunk
        finally:
            self.closed = True


def test_read_limited_stops_at_the_first_chunk_over_the_limit():
    # A lying/absent Content-Length: the client would send 50 MiB (finite, so a broken reader fails, not OOMs).
    body = _Body(total_chunks=50)

    async def main():
        with pytest.raises(UploadError) as info:
            await read_limited(body.stream(), max_bytes=10 * 2**20)
        # Checked inside the loop: asyncio.run closes leftover generators itself on shutdown.
        return info.value, body.closed

    err, closed_by_reader = run_async(main)
    assert err.status == 413
    assert body.consumed == 11  # the eleventh MiB is the first one over 10 MiB
    assert closed_by_reader


def test_read_limited_returns_the_exact_bytes_up_to_and_at_the_limit():
    body = _Body(total_chunks=10)
    data = run_async(lambda: read_limited(body.stream(), max_bytes=10 * 2**20))
    assert len(data) == 10 * 2**20
    assert data == b"".join(bytes([i]) * 2**20 for i in range(1, 11))

    async def parts():
        for part in (b"ab", bytearray(b"cd"), b"", b"e"):
            yield part

    assert run_async(lambda: read_limited(parts(), max_bytes=5)) == b"abcde"


def test_content_hash_is_a_short_stable_key():
    key = content_hash(b"some image")
    assert key == content_hash(b"some image")
    assert len(key) == 16 and int(key, 16) >= 0
    assert key != content_hash(b"some image!")


# --- dimension and bomb guards -----------------------------------------------------------------------


def test_small_file_with_huge_dimensions_is_413_without_decoding(bomb_png, no_pixel_decoding):
    err = _status(lambda: decode_image(bomb_png))
    assert err.status == 413
    # Refused from the header: the message reports the 20000×20000 pixel count it read there.
    assert str(20000 * 20000) in err.message


def test_bomb_is_refused_by_our_own_side_check_even_below_pillows_limit(no_pixel_decoding):
    err = _status(lambda: decode_image(_zero_grey_png(5000, 3)))
    assert err.status == 413
    assert "5000" in err.message and "4096" in err.message


def test_side_limit_is_configurable(no_pixel_decoding):
    assert _status(lambda: decode_image(_zero_grey_png(65, 10), max_side=64)).status == 413


def test_within_max_side_but_over_max_pixels_is_413(no_pixel_decoding):
    data = _encode(Image.new("RGB", (100, 100)), "PNG")
    err = _status(lambda: decode_image(data, max_side=100, max_pixels=9999))
    assert err.status == 413
    assert "10000" in err.message and "9999" in err.message


def test_exactly_at_the_limits_decodes():
    img = decode_image(_zero_grey_png(64, 64), max_side=64, max_pixels=64 * 64)
    assert img.size == (64, 64) and img.mode == "RGB"


# --- format sniffing ---------------------------------------------------------------------------------

_SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>'
_PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(_encode(Image.new("RGB", (8, 8), "red"), "GIF"), id="gif"),
        pytest.param(_encode(Image.new("RGB", (8, 8), "red"), "BMP"), id="bmp"),
        pytest.param(_encode(Image.new("RGB", (8, 8), "red"), "TIFF"), id="tiff"),
        pytest.param(_encode(Image.new("RGB", (8, 8), "red"), "PPM"), id="ppm"),
        pytest.param(_encode(Image.new("RGB", (8, 8), "red"), "ICO"), id="ico"),
        pytest.param(_SVG, id="svg"),
        pytest.param(_PDF, id="pdf"),
        pytest.param(b"hello, I am a text file named cat.png\n", id="text"),
        pytest.param(b"\x89PNG", id="png-signature-only"),
    ],
)
def test_anything_but_png_jpeg_webp_is_415_whatever_it_is_called(data):
    # Pillow itself could decode GIF/BMP/TIFF/PPM/ICO: only the format restriction refuses them.
    err = _status(lambda: decode_image(data))
    assert err.status == 415
    assert "PNG, JPEG or WebP" in err.message


def test_empty_file_is_400():
    err = _status(lambda: decode_image(b""))
    assert err.status == 400 and err.message == "the file is empty"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_truncated_file_is_400_and_never_half_decoded(fmt):
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = _encode(Image.fromarray(noise), fmt)
    err = _status(lambda: decode_image(data[: len(data) // 2]))
    assert err.status == 400
    assert "truncated or corrupt" in err.message
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


# --- decoding to RGB ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_supported_formats_decode_to_rgb_of_the_right_size(fmt):
    img = decode_image(_encode(Image.new("RGB", (37, 21), (200, 30, 40)), fmt))
    assert img.mode == "RGB" and img.size == (37, 21)
    r, g, b = img.getpixel((18, 10))
    assert r > 150 and g < 80 and b < 80


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_transparent_pixels_become_white_not_their_hidden_colour(fmt):
    rgba = np.zeros((4, 6, 4), dtype=np.uint8)
    rgba[:, :3] = (10, 20, 30, 0)  # transparent, hidden colour dark
    rgba[:, 3:] = (10, 20, 30, 255)  # opaque, same colour
    params = {"lossless": True} if fmt == "WEBP" else {}  # lossy WebP would shift the exact colours
    img = decode_image(_encode(Image.fromarray(rgba, "RGBA"), fmt, **params))
    assert img.mode == "RGB"
    assert img.getpixel((0, 0)) == (255, 255, 255)
    assert img.getpixel((5, 3)) == (10, 20, 30)


def test_half_transparent_pixels_are_blended_over_white():
    img = decode_image(_encode(Image.new("RGBA", (2, 2), (0, 0, 0, 128)), "PNG"))
    value = img.getpixel((0, 0))[0]
    assert 120 <= value <= 135  # 255·(1 − 128/255) ≈ 127


def test_palette_with_transparency_and_greyscale_alpha_become_rgb_over_white():
    pal = Image.new("P", (4, 4), 1)
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pal.putpixel((0, 0), 0)
    img = decode_image(_encode(pal, "PNG", transparency=0))
    assert img.mode == "RGB"
    assert img.getpixel((0, 0)) == (255, 255, 255) and img.getpixel((1, 1)) == (255, 0, 0)

    la = decode_image(_encode(Image.new("LA", (3, 3), (0, 0)), "PNG"))
    assert la.mode == "RGB" and la.getpixel((1, 1)) == (255, 255, 255)


@pytest.mark.parametrize("mode", ["P", "L", "1"])
def test_palette_and_greyscale_become_rgb(mode):
    img = decode_image(_encode(Image.new("RGB", (5, 4), (255, 255, 255)).convert(mode), "PNG"))
    assert img.mode == "RGB" and img.size == (5, 4)
    assert img.getpixel((2, 2)) == (255, 255, 255)


def test_16_bit_greyscale_is_rescaled_not_clipped():
    data = _encode(Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.uint16)), "PNG")
    img = decode_image(data)
    assert img.mode == "RGB"
    assert [img.getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]


def test_cmyk_jpeg_becomes_rgb():
    img = decode_image(_encode(Image.new("CMYK", (6, 6), (0, 255, 255, 0)), "JPEG"))
    assert img.mode == "RGB"
    r, g, b = img.getpixel((3, 3))
    assert r > 200 and g < 60 and b < 60


def test_exif_orientation_is_applied():
    stored = Image.new("RGB", (40, 20), (255, 0, 0))
    stored.paste((0, 0, 255), (20, 0, 40, 20))  # stored: red left, blue right
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    img = decode_image(_encode(stored, "JPEG", exif=exif.tobytes(), quality=95))
    assert img.size == (20, 40)  # sides swapped relative to the stored pixels
    top, bottom = img.getpixel((10, 5)), img.getpixel((10, 35))
    assert top[0] > 200 and top[2] < 60  # the stored left edge is now the top
    assert bottom[2] > 200 and bottom[0] < 60


def test_result_is_independent_of_the_upload_buffer():
    data = bytearray(_encode(Image.new("RGB", (4, 4), (1, 2, 3)), "PNG"))
    img = decode_image(bytes(data))
    data[:] = b"\x00" * len(data)
    assert img.getpixel((0, 0)) == (1, 2, 3)
    assert not hasattr(img, "fp") or img.fp is None
