"""Decode a PNG a strip of rows at a time, so a huge one never sits in memory at full size.

Pillow decodes a PNG whole: an 11000 x 16000 RGBA file of 0.7 MB becomes 704 MB of pixels
before anything can shrink it. A non-interlaced PNG is one zlib stream of rows, each row
filtered against the one above it, so it can be read in strips instead:

* ``zlib.decompressobj`` yields the filtered rows of one strip (``max_length``, never more);
* the rows are un-filtered by Pillow's own PNG decoder: they go into a tiny PNG of the same
  row width in bytes and the same bytes per pixel (gray, gray+alpha, RGB or RGBA at 8 bits,
  whose pixels Pillow hands back unchanged), preceded by the previous strip's last row,
  unfiltered, as a row with filter type 0; that row restores the context the filters need;
* the raw rows are unpacked with the file's real mode (``Image.frombytes``), palette included.

Interlaced files and 16-bit RGB / RGBA (6 and 8 bytes per pixel, which no 8-bit PNG colour
type reproduces) are not handled here: ``strip_layout`` says ``None`` and the caller decodes
them whole, within its own limit.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from PIL import Image, PngImagePlugin

__all__ = ["PngLayout", "png_chunks", "png_strips", "strip_layout"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel
# Bytes per pixel -> the 8-bit colour type whose pixels Pillow returns exactly as stored.
_IDENTITY_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}


@dataclass(frozen=True, slots=True)
class PngLayout:
    """What strip decoding needs from a PNG's chunks."""

    width: int
    height: int
    bit_depth: int
    colour_type: int
    idat: bytes  # the IDAT chunks' data, concatenated (the zlib stream)
    palette: bytes | None  # PLTE
    transparency: bytes | None  # tRNS
    exif: bytes | None  # eXIf, wherever it is (Pillow only sees it before IDAT without loading)

    @property
    def row_bytes(self) -> int:
        return (self.width * self.bit_depth * _CHANNELS[self.colour_type] + 7) // 8

    @property
    def pixel_bytes(self) -> int:
        """The ``bpp`` of the PNG filters: bytes per complete pixel, at least 1."""
        return max(1, self.bit_depth * _CHANNELS[self.colour_type] // 8)


def png_chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """``(type, offset of its data, declared length)`` of each chunk of a PNG, up to ``IEND``.

    Only the chunk headers are read (no CRC check, no copy). A declared length past the end of
    the file is given as declared: the caller bounds what it reads. The one walk of a PNG's
    chunks, for the strip decoder here and the checks of ``normalize`` and ``prepare``.
    """
    pos = len(_SIGNATURE)
    while pos + 8 <= len(data):
        length, tag = struct.unpack_from(">I4s", data, pos)
        yield tag, pos + 8, length
        if tag == b"IEND":
            return
        pos += 12 + length


def strip_layout(data: bytes) -> PngLayout | None:
    """The layout of a PNG that can be decoded in strips, or None (then decode it whole)."""
    if not data.startswith(_SIGNATURE):
        return None
    chunks: dict[bytes, bytes] = {}
    idat: list[bytes] = []
    for tag, start, length in png_chunks(data):
        body = data[start : start + length]
        if tag == b"IDAT":
            idat.append(body)
        elif tag in (b"IHDR", b"PLTE", b"tRNS", b"eXIf") and tag not in chunks:
            chunks[tag] = body
    header = chunks.get(b"IHDR", b"")
    if len(header) != 13 or not idat:
        return None
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if interlace or colour not in _CHANNELS or (depth, colour) not in PngImagePlugin._MODES:
        return None
    layout = PngLayout(
        width,
        height,
        depth,
        colour,
        b"".join(idat),
        chunks.get(b"PLTE"),
        chunks.get(b"tRNS"),
        chunks.get(b"eXIf"),
    )
    return layout if layout.pixel_bytes in _IDENTITY_TYPES and width and height else None


def _chunk(tag: bytes, *parts: bytes) -> list[bytes]:
    size = sum(len(part) for part in parts)
    crc = zlib.crc32(tag)
    for part in parts:
        crc = zlib.crc32(part, crc)
    return [struct.pack(">I", size), tag, *parts, struct.pack(">I", crc)]


def _unfilter(layout: PngLayout, rows: bytes, previous: bytes | None) -> Image.Image:
    """``rows`` (filtered, one filter byte each) unfiltered by Pillow, given the strip above.

    Comes back as an 8-bit L, LA, RGB or RGBA image ``row_bytes / pixel_bytes`` wide whose
    pixels are the raw bytes of the rows (the previous strip's last row not included).
    """
    bpp = layout.pixel_bytes
    packer = zlib.compressobj(0)  # stored: Pillow's decoder only needs a valid zlib stream
    parts = []
    count = len(rows) // (layout.row_bytes + 1)
    if previous is not None:
        parts.append(packer.compress(b"\x00" + previous))
        count += 1
    parts += [packer.compress(rows), packer.flush()]
    header = struct.pack(">IIBBBBB", layout.row_bytes // bpp, count, 8, _IDENTITY_TYPES[bpp], 0, 0, 0)
    png = b"".join([_SIGNATURE, *_chunk(b"IHDR", header), *_chunk(b"IDAT", *parts), *_chunk(b"IEND")])
    del parts
    with Image.open(io.BytesIO(png), formats=["PNG"]) as im:
        return im.crop((0, 0 if previous is None else 1, im.width, im.height))


def _filtered(layout: PngLayout, rows_per_strip: int) -> Iterator[bytes]:
    """The filtered rows, ``rows_per_strip`` at a time (the last strip may be shorter)."""
    stride = layout.row_bytes + 1
    inflater = zlib.decompressobj()
    pending = layout.idat
    left = layout.height
    while left:
        want = min(rows_per_strip, left) * stride
        got = inflater.decompress(pending, want)
        pending = inflater.unconsumed_tail
        while len(got) < want:  # only when the stream ends early or comes in odd pieces
            piece = inflater.decompress(pending, want - len(got))
            pending = inflater.unconsumed_tail
            if not piece:
                done = layout.height - left + len(got) // stride
                raise ValueError(f"PNG data ends after row {done} of {layout.height}")
            got += piece
        left -= want // stride
        yield got


def png_strips(layout: PngLayout, rows_per_strip: int) -> Iterator[Image.Image]:
    """The image as strips of ``rows_per_strip`` rows (last one shorter), in the file's own mode.

    Palette images carry their palette and ``tRNS`` as ``info["transparency"]``, as Pillow's
    own loader sets them. Damaged data raises (``zlib.error``, ``ValueError``, ``OSError``).
    """
    mode, rawmode = PngImagePlugin._MODES[(layout.bit_depth, layout.colour_type)]
    identity = layout.bit_depth == 8 and layout.colour_type != 3  # Pillow's pixels are the raw bytes
    previous: bytes | None = None
    for rows in _filtered(layout, rows_per_strip):
        raw = _unfilter(layout, rows, previous)
        del rows
        previous = raw.crop((0, raw.height - 1, raw.width, raw.height)).tobytes()
        if identity:
            yield raw
            continue
        height = raw.height
        strip = Image.frombytes(mode, (layout.width, height), raw.tobytes(), "raw", rawmode)
        if mode == "P" and layout.palette is not None:
            strip.putpalette(layout.palette, "RGB")
            if layout.transparency is not None:
                strip.info["transparency"] = layout.transparency
        yield strip
