"""Tell a file this Pillow build cannot decode from a damaged one, and name the missing codec.

Both fail the same way inside Pillow (``decoder error -2``, ``Unsupported BMP compression``), but
they call for different actions: a corrupt scan must be rescanned, while a WebP-compressed TIFF
or a JPEG-compressed BMP is fine and only needs another converter (or a libtiff built with the
codec). So the compression is read from the file's own header and checked against what Pillow
and its libtiff can decode; the answer becomes ``unsupported_codec`` with the codec's number
and name, not ``corrupt_image``.

An arithmetic-coded JPEG (SOF9-SOF15) is the same case: libjpeg's arithmetic decoder cannot
resume when its input runs out, and Pillow feeds the decoder in 64 KiB blocks, so any such
file larger than one block fails as a "broken data stream" although ``djpeg`` reads it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from PIL import Image, TiffImagePlugin

from airflow_provider_delix.core.decoder_notes import tiff_codec_configured

__all__ = [
    "BMP_COMPRESSIONS",
    "TIFF_COMPRESSIONS",
    "bmp_codec_problem",
    "jpeg_codec_problem",
    "tiff_codec_problem",
]

# TIFF tag 259 values (TIFF 6.0, libtiff's tiff.h, and the registered private ones seen in scans).
TIFF_COMPRESSIONS: dict[int, str] = {
    1: "none",
    2: "CCITT RLE",
    3: "CCITT Group 3 fax",
    4: "CCITT Group 4 fax",
    5: "LZW",
    6: "old-style JPEG",
    7: "JPEG",
    8: "Adobe Deflate",
    32771: "raw 16",
    32773: "PackBits",
    32809: "ThunderScan",
    32946: "Deflate",
    33003: "Aperio JPEG 2000 YCbCr",
    33005: "Aperio JPEG 2000 RGB",
    34661: "JBIG",
    34676: "SGILog",
    34677: "SGILog24",
    34712: "JPEG 2000",
    34887: "LERC",
    34892: "lossy JPEG",
    34925: "LZMA",
    50000: "Zstandard",
    50001: "WebP",
    50002: "JPEG XL",
}

# biCompression of a Windows BMP header (BITMAPINFOHEADER and later).
BMP_COMPRESSIONS: dict[int, str] = {
    0: "BI_RGB",
    1: "BI_RLE8",
    2: "BI_RLE4",
    3: "BI_BITFIELDS",
    4: "BI_JPEG",
    5: "BI_PNG",
    6: "BI_ALPHABITFIELDS",
    11: "BI_CMYK",
    12: "BI_CMYKRLE8",
    13: "BI_CMYKRLE4",
}
_BMP_DECODABLE = frozenset({0, 1, 2, 3})  # what BmpImagePlugin reads
_TIFF_COMPRESSION_TAG = 259


def _codec_name(table: dict[int, str], value: int) -> str:
    return f"{value} ({table.get(value, 'unknown')})"


def bmp_codec_problem(data: bytes) -> str | None:
    """Why Pillow cannot decode this BMP's compression, or None (then it is not the reason)."""
    if len(data) < 34 or int.from_bytes(data[14:18], "little") < 40:
        return None  # an OS/2 core header has no compression field
    compression = int.from_bytes(data[30:34], "little")
    if compression in _BMP_DECODABLE:
        return None
    return f"BMP compression {_codec_name(BMP_COMPRESSIONS, compression)} cannot be decoded by Pillow"


def _first_ifd_compression(data: bytes) -> int | None:
    """Tag 259 of the first IFD, read by hand: Pillow refuses to open a scheme it does not know."""
    order = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\x00", b"\x00+")
    try:
        if big:
            offset = struct.unpack_from(order + "Q", data, 8)[0]
            count = struct.unpack_from(order + "Q", data, offset)[0]
            first, size, value_at = offset + 8, 20, 12
        else:
            offset = struct.unpack_from(order + "I", data, 4)[0]
            count = struct.unpack_from(order + "H", data, offset)[0]
            first, size, value_at = offset + 2, 12, 8
        for index in range(min(count, 4096)):
            entry = first + index * size
            tag, kind = struct.unpack_from(order + "HH", data, entry)
            if tag == _TIFF_COMPRESSION_TAG:
                value: int = struct.unpack_from(order + ("I" if kind == 4 else "H"), data, entry + value_at)[
                    0
                ]
                return value
    except struct.error:
        return None
    return 1  # no tag: uncompressed


def tiff_compression(data: bytes, im: Image.Image | None) -> int | None:
    """The compression of the current page of ``im`` or, without it, of the file's first page."""
    if isinstance(im, TiffImagePlugin.TiffImageFile):
        value = im.tag_v2.get(_TIFF_COMPRESSION_TAG, 1)
        return value if isinstance(value, int) else None
    return _first_ifd_compression(data)


def tiff_codec_problem(compression: int | None) -> str | None:
    """Why this build cannot decode TIFF ``compression``, or None (able, or cannot tell)."""
    if compression is None:
        return None
    name = _codec_name(TIFF_COMPRESSIONS, compression)
    if compression not in TiffImagePlugin.COMPRESSION_INFO:
        return f"TIFF compression {name} is not one Pillow can decode"
    if compression == 1:
        return None  # Pillow reads uncompressed data itself
    if tiff_codec_configured(compression) is False:
        return f"TIFF compression {name} is not configured in this Pillow build's libtiff"
    return None


# Start-of-frame markers of arithmetic-coded JPEG processes (ITU T.81, table B.1).
_ARITHMETIC_FRAMES = {0xC9: "SOF9", 0xCA: "SOF10", 0xCB: "SOF11", 0xCD: "SOF13", 0xCE: "SOF14", 0xCF: "SOF15"}
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # DHT, JPG and DAC share the range
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})  # TEM, RSTn, SOI: no length field


def _header_markers(data: bytes) -> Iterator[tuple[int, int | None]]:
    """``(offset, marker)`` of each marker before the JPEG's scan, read by hand; the scan (0xDA)
    or the end (0xD9) is the last. A byte other than 0xFF where a marker must be is given as
    ``(offset, None)`` and ends the walk: damage, or stray bytes libjpeg skips. The one walk of
    a JPEG's header, for :func:`jpeg_frame_marker` and :func:`jpeg_header_flaw`."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            yield pos, None
            return
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        yield pos, marker
        if marker in (0xDA, 0xD9):
            return
        pos += 2 if marker in _STANDALONE else 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")


def jpeg_frame_marker(data: bytes) -> int | None:
    """The first start-of-frame marker (0xC0-0xCF); None if there is none before the scan."""
    for _, marker in _header_markers(data):
        if marker in _SOF:
            return marker
        if marker is None:
            return None  # not a marker where one must be: damage, left to the decoder
    return None


def jpeg_codec_problem(data: bytes) -> str | None:
    """Why Pillow cannot decode this JPEG's entropy coding, or None (then it is not the reason)."""
    marker = jpeg_frame_marker(data)
    if marker not in _ARITHMETIC_FRAMES:
        return None
    return (
        f"the JPEG uses arithmetic coding ({_ARITHMETIC_FRAMES[marker]}), which Pillow cannot decode "
        "past 64 KiB (libjpeg's arithmetic decoder cannot resume between the blocks Pillow feeds it) "
        "and many decoders not at all, so it is not sent; the file is fine: `jpegtran -outfile "
        "fixed.jpg file.jpg` converts it losslessly to Huffman coding"
    )


def jpeg_header_flaw(data: bytes) -> str | None:
    """What breaks the JPEG's marker syntax before its scan, or None when nothing does.

    libjpeg reads past stray bytes between header segments (and an ``FF 00`` where a marker
    should be) with only a warning ("Corrupt JPEG data: 4 extraneous bytes before marker"),
    which Pillow does not pass on; stricter decoders refuse the file (Leptonica did, for a
    tester's real files). Such a file is re-encoded rather than sent as it is.
    """
    for pos, marker in _header_markers(data):
        if marker is None:
            end = pos
            while end < len(data) and data[end] != 0xFF:
                end += 1
            return f"{end - pos} stray byte(s) between header segments at offset {pos}"
        if marker == 0x00:
            return f"an FF 00 where a header marker should be, at offset {pos}"
    return None
