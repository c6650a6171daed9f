"""Huge-pixel, small-byte PNGs (the memory tests), written row by row so the test never holds them.

An 11000 x 16000 RGBA page is 704 MB of pixels but well under 1 MB as a PNG when it is mostly
one colour: exactly the kind of file that used to take gigabytes to prepare. The rows are
streamed through ``zlib`` here, so making one costs the test process a few MB, not 704.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

_ROWS_PER_BLOCK = 64
SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {"L": 0, "RGB": 2, "LA": 4, "RGBA": 6}
_BLACK: dict[str, int | tuple[int, ...]] = {"L": 0, "RGB": (0, 0, 0), "LA": (0, 255), "RGBA": (0, 0, 0, 255)}


def _chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))


def _deflated(block: bytes, cache: dict[int, bytes]) -> bytes:
    """Raw deflate of one block, byte-aligned and independent (full flush): reusable anywhere."""
    if id(block) not in cache:
        packer = zlib.compressobj(6, zlib.DEFLATED, -15)
        cache[id(block)] = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    return cache[id(block)]


def _zlib_stream(blocks: list[bytes]) -> bytes:
    """A zlib stream of the blocks, each distinct block object compressed once (seconds saved)."""
    cache: dict[int, bytes] = {}
    checksum = 1
    parts = [b"\x78\x9c"]
    for block in blocks:
        parts.append(_deflated(block, cache))
        checksum = zlib.adler32(block, checksum)
    parts.append(b"\x03\x00")  # an empty final block
    parts.append(struct.pack(">I", checksum))
    return b"".join(parts)


def _text_band(width: int, mode: str, text: str, background: tuple[int, ...] | int) -> Image.Image:
    """Black text on ``background``, scaled so each letter is some 120 px high."""
    small = Image.new(mode, (max(1, width // 8), 40), background)
    ImageDraw.Draw(small).text((20, 8), text, fill=_BLACK[mode], font=ImageFont.load_default(24))
    return small.resize((small.width * 8, small.height * 8), Image.Resampling.NEAREST).crop(
        (0, 0, width, 320)
    )


def huge_png(
    path: Path,
    size: tuple[int, int] = (11000, 16000),
    mode: str = "RGBA",
    *,
    transparent: bool = True,
    text: str = "DELIX 11000x16000",
    bands: int = 3,
) -> Path:
    """A PNG of ``size`` in ``mode``: plain background (see-through when asked) with text bands.

    ``bands`` copies of the text are spread down the page; everything else is one colour, which
    deflate squeezes about 1000:1.
    """
    width, height = size
    channels = len(mode)
    alpha = mode.endswith("A")
    background: tuple[int, ...] = (255,) * (channels - 1) + ((0,) if transparent and alpha else (255,))
    band = _text_band(width, mode, text, background if channels > 1 else background[0])
    band_rows = [band.crop((0, y, width, y + 1)).tobytes() for y in range(band.height)]
    plain = bytes(background) * width
    starts = {(index + 1) * height // (bands + 1) for index in range(bands)}
    blocks: list[bytes] = []  # groups of rows: a plain group is one object, reused
    plain_block = (b"\x00" + plain) * _ROWS_PER_BLOCK
    y = 0
    while y < height:
        start = next((s for s in sorted(starts) if y <= s < y + _ROWS_PER_BLOCK), None)
        if start is None and y + _ROWS_PER_BLOCK <= height:
            blocks.append(plain_block)
            y += _ROWS_PER_BLOCK
            continue
        rows = [b"\x00" + plain] * ((start if start is not None else height) - y)
        if start is not None:
            rows += [b"\x00" + row for row in band_rows[: height - start]]
        blocks.append(b"".join(rows))
        y += len(rows)
    with path.open("wb") as out:
        out.write(SIGNATURE)
        out.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, _COLOUR_TYPES[mode], 0, 0, 0)))
        out.write(_chunk(b"pHYs", struct.pack(">IIB", 11811, 11811, 1)))  # 300 dpi
        out.write(_chunk(b"IDAT", _zlib_stream(blocks)))
        out.write(_chunk(b"IEND", b""))
    return path
