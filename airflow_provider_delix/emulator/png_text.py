"""Ground truth inside PNGs: the expected text of a page, carried in the file itself.

Why a module of its own: protocol tests need a page's exact expected text without running OCR.
:func:`embed_ground_truth` / :func:`read_ground_truth` keep it in an ``iTXt`` chunk keyed
``delix:text`` -- the chunk the emulator's ``groundtruth`` backend returns verbatim, so a test
can compare text byte for byte. Chunks are edited, never re-encoded, so pixels and compressed
size stay exactly as they were (which the oversize PNG relies on).
"""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

TEXT_KEY = "delix:text"
"""PNG text-chunk keyword holding the page's expected text (read by the ``groundtruth`` backend)."""
FAIL_KEY = "delix:fail"
"""PNG text-chunk keyword; value ``1`` makes the ``groundtruth`` backend fail the page."""
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunk(ctype: bytes, body: bytes) -> bytes:
    return (
        struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body) & 0xFFFFFFFF)
    )


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, body) of every chunk, up to IEND or the end of the data; ValueError if not a PNG."""
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG (bad signature)")
    out: list[tuple[bytes, bytes]] = []
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        ctype = data[pos + 4 : pos + 8]
        out.append((ctype, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
        if ctype == b"IEND":
            break
    return out


def _text_of(ctype: bytes, body: bytes) -> tuple[str, str] | None:
    """(keyword, text) of a tEXt/zTXt/iTXt chunk, or None for other or malformed chunks."""
    try:
        key, _, rest = body.partition(b"\0")
        if ctype == b"tEXt":
            raw = rest
        elif ctype == b"zTXt":
            raw = zlib.decompress(rest[1:])
        elif ctype == b"iTXt":
            compressed = rest[0] == 1
            _lang, _, rest = rest[2:].partition(b"\0")
            _translated, _, raw = rest.partition(b"\0")
            raw = zlib.decompress(raw) if compressed else raw
        else:
            return None
        text = raw.decode("utf-8") if ctype == b"iTXt" else raw.decode("latin-1")
    except (zlib.error, IndexError, UnicodeDecodeError):
        return None
    return key.decode("latin-1"), text


def _itxt(key: str, text: str) -> bytes:
    """An uncompressed iTXt chunk: UTF-8 by definition, unlike tEXt (Latin-1)."""
    return png_chunk(b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + text.encode("utf-8"))


def encode_png(image: Image.Image, *, compress_level: int = 9) -> bytes:
    buf = io.BytesIO()
    dpi = image.info.get("dpi")
    if dpi is not None:
        image.save(buf, "PNG", compress_level=compress_level, dpi=dpi)
    else:
        image.save(buf, "PNG", compress_level=compress_level)
    return buf.getvalue()


def with_text_chunks(data: bytes, extra: list[bytes], drop: set[str]) -> bytes:
    """The PNG with text chunks keyed in ``drop`` removed and ``extra`` chunks inserted after IHDR.

    Editing chunks, not re-encoding, keeps the pixels and the compressed size exactly as they
    were (which matters for the oversize PNG). Early placement lets streaming readers see the
    text before the image data.
    """
    chunks = png_chunks(data)
    if not chunks or chunks[0][0] != b"IHDR":
        raise ValueError("not a PNG (no IHDR chunk first)")
    out = bytearray(PNG_SIGNATURE)
    out += png_chunk(*chunks[0])
    out += b"".join(extra)
    for ctype, body in chunks[1:]:
        parsed = _text_of(ctype, body)
        if parsed is not None and parsed[0] in drop:
            continue
        out += png_chunk(ctype, body)
    return bytes(out)


def embed_ground_truth(png_bytes_or_image: bytes | Image.Image, text: str) -> bytes:
    """PNG bytes carrying ``text`` (UTF-8) in an iTXt chunk keyed ``delix:text``.

    Accepts PNG bytes (chunks are edited in place, pixels untouched) or a Pillow image (saved
    as PNG, keeping ``info["dpi"]``). An existing ``delix:text`` chunk is replaced, so the
    file never holds two contradicting answers.
    """
    data = png_bytes_or_image if isinstance(png_bytes_or_image, bytes) else encode_png(png_bytes_or_image)
    return with_text_chunks(data, [_itxt(TEXT_KEY, text)], {TEXT_KEY})


def read_ground_truth(png_bytes: bytes) -> str | None:
    """The ``delix:text`` of a PNG (from tEXt, zTXt or iTXt), or None if absent or not a PNG."""
    try:
        chunks = png_chunks(png_bytes)
    except ValueError:
        return None
    for ctype, body in chunks:
        parsed = _text_of(ctype, body)
        if parsed is not None and parsed[0] == TEXT_KEY:
            return parsed[1]
    return None
