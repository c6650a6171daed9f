"""Bound the memory one page may take while it is prepared, whatever its pixel size.

A page is judged by its decoded size (pixels x the bytes Pillow stores per pixel, read from
the header before anything is decoded), and memory is kept bounded three ways:

* **Reduced decode.** A page over ``WORK_BYTES`` decoded is brought down by the smallest whole
  factor that fits before any mode conversion: a non-interlaced PNG strip by strip
  (``png_strips``), a JPEG by libjpeg's DCT scaling (``draft``: 1/2, 1/4, 1/8), anything else
  decoded whole and then reduced strip by strip -- only when the whole decode stays under
  ``WHOLE_BYTES``; over that the page is ``too_large`` with the figures, never a crash.
  Each strip is converted for OCR (transparency onto white, palette and 1-bit to 8-bit) and
  averaged down (``Image.reduce``) on its own, so only one strip is at full size at a time.
* **One large page at a time.** A page over ``LARGE_BYTES`` decoded holds a process-wide lock
  while it is decoded and encoded, so the preparation threads never work on two at once.
* The result is an ordinary page of at most ``WORK_BYTES``, which the normal ladder encodes.

A reduced page is never passed through byte for byte: the text on such a page is far above
the 300 dpi OCR reads well, and checking that the original decodes would cost its full size.
"""

from __future__ import annotations

import ctypes
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from PIL import Image

from airflow_provider_delix.core.codes import Reason
from airflow_provider_delix.core.normalize import _extrema, orientation
from airflow_provider_delix.core.png_strips import png_strips, strip_layout
from airflow_provider_delix.core.validation import ImageKind, InvalidInputError

__all__ = [
    "LARGE_BYTES",
    "WHOLE_BYTES",
    "WORK_BYTES",
    "decoded_bytes",
    "large_page",
    "load_reduced",
    "reduction",
]

MiB = 1024 * 1024
WORK_BYTES = 128 * MiB  # largest page worked on: 33 Mpx of RGB(A), 134 Mpx of gray or bilevel
WHOLE_BYTES = 384 * MiB  # largest decode of a format that has no reduced decode (TIFF, BMP, ...)
LARGE_BYTES = 64 * MiB  # pages over this are prepared one at a time
STRIP_BYTES = 4 * MiB  # decoded bytes per strip of a reduced decode

_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_large = threading.Lock()


def decoded_bytes(mode: str, size: tuple[int, int]) -> int:
    """What Pillow allocates for a page of this mode and size (RGB is stored in 4 bytes too)."""
    return size[0] * size[1] * _BYTES_PER_PIXEL.get(mode, 4)


def reduction(mode: str, size: tuple[int, int]) -> int:
    """The smallest whole factor (of width and height) that brings the page within ``WORK_BYTES``."""
    ratio = decoded_bytes(mode, size) / WORK_BYTES
    return 1 if ratio <= 1 else math.ceil(math.sqrt(ratio))


def _libc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


_trim = _libc_trim()


@contextmanager
def large_page(im: Image.Image) -> Iterator[None]:
    """Hold the large-page lock while a page over ``LARGE_BYTES`` is worked on.

    On leaving, glibc is asked to give freed memory back (``malloc_trim``): each preparation
    thread allocates from its own arena, and memory one thread freed is otherwise kept for
    that thread, so two threads taking turns on large pages would each keep a page's worth.
    """
    if decoded_bytes(im.mode, im.size) <= LARGE_BYTES:
        yield
        return
    with _large:
        try:
            yield
        finally:
            if _trim is not None:
                _trim(0)


def _reducible(im: Image.Image) -> Image.Image:
    """A strip in a mode ``Image.reduce`` averages: L, LA, RGB, RGBA, I or F."""
    if im.mode == "P":
        return im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("PA", "La", "RGBa"):
        return im.convert("RGBA")
    if im.mode == "1":
        return im.convert("L")
    if im.mode.startswith("I;16"):
        return im.convert("I")
    if im.mode not in ("L", "LA", "RGB", "RGBA", "I", "F"):
        return im.convert("RGB")  # CMYK, YCbCr, LAB, HSV
    return im


def _white(im: Image.Image) -> tuple[Image.Image, bool]:
    """Transparency composited onto white (and whether there was any); other modes as they are.

    Applied after ``reduce``, which averages LA/RGBA premultiplied: compositing the averages
    onto white gives the average of the composited pixels, at a fraction of the cost.
    """
    if im.mode not in ("LA", "RGBA"):
        return im, False
    alpha = im.getchannel("A")
    low, _ = _extrema(alpha)
    gray = im.mode == "LA"
    page = Image.new("L" if gray else "RGB", im.size, 255 if gray else (255, 255, 255))
    page.paste(im.convert("L" if gray else "RGB"), mask=alpha)
    return page, low < 255


def _reduce_strips(
    strips: Iterator[Image.Image], size: tuple[int, int], factor: int
) -> tuple[Image.Image, bool]:
    """Reduce each strip and make it opaque, pasted into one page ``factor`` times smaller."""
    out: Image.Image | None = None
    transparent = False
    top = 0
    for strip in strips:
        small, alpha = _white(_reducible(strip).reduce(factor))
        del strip
        transparent |= alpha
        if out is None:
            out = Image.new(small.mode, (-(-size[0] // factor), -(-size[1] // factor)))
        out.paste(small, (0, top))
        top += small.height
    assert out is not None
    return out, transparent


def _rows_per_strip(im: Image.Image, factor: int) -> int:
    rows = max(1, STRIP_BYTES // max(1, decoded_bytes(im.mode, (im.width, 1))))
    return max(factor, rows // factor * factor)  # whole groups of ``factor`` rows


def _whole_strips(im: Image.Image, rows: int) -> Iterator[Image.Image]:
    for top in range(0, im.height, rows):
        yield im.crop((0, top, im.width, min(im.height, top + rows)))


def _too_large(im: Image.Image, what: str) -> InvalidInputError:
    need = decoded_bytes(im.mode, im.size) // MiB
    return InvalidInputError(
        Reason.TOO_LARGE,
        f"{what} is {im.width}x{im.height} px ({im.mode}): decoding it whole takes {need} MiB, over the "
        f"{WHOLE_BYTES // MiB} MiB allowed per page, and this format cannot be decoded reduced "
        "(save it as a non-interlaced PNG or a JPEG, or scan at a lower resolution)",
    )


def _jpeg_draft(im: Image.Image, factor: int) -> int:
    """Let libjpeg decode at 1/2, 1/4 or 1/8 (the smallest power of two >= ``factor``, at most 8)."""
    scale = min(8, 1 << (factor - 1).bit_length())
    before = im.width
    im.draft(None, (max(1, im.width // scale), max(1, im.height // scale)))
    return max(1, round(before / im.width))


def load_reduced(im: Image.Image, data: bytes, kind: ImageKind, what: str) -> tuple[Image.Image, list[str]]:
    """The page of ``im`` (opened, not loaded) decoded within ``WORK_BYTES``, and the steps taken.

    Call it only when ``reduction`` is above 1. The page comes back upright, in L, RGB, I or F
    with no transparency, its DPI divided by the factor, ready for ``to_ocr_mode``/``encode_page``.
    Damaged data raises whatever the decoder raises (the caller maps it to a reason).
    """
    size, upright = im.size, 1
    # Read again once the pixels are loaded: Pillow's TIFF plugin turns the page upright while
    # loading it (and drops the tag) in recent versions, not in older ones, so only what the
    # loaded page still carries is left to do; the value before loading only tells that it was.
    stored = orientation(im) if kind != "png" else 1
    dpi = im.info.get("dpi")
    factor = reduction(im.mode, im.size)
    scaled = 1
    layout = strip_layout(data) if kind == "png" else None
    if layout is not None:
        if layout.exif:
            try:
                exif = Image.Exif()
                exif.load(layout.exif)
                value = exif.get(0x0112, 1)
            except Exception:  # a broken eXIf chunk counts as upright, as orientation() says
                value = 1
            upright = int(value) if value in range(1, 9) else 1
        strips = png_strips(layout, _rows_per_strip(im, factor))
        page, transparent = _reduce_strips(strips, size, factor)
        scaled = factor
    else:
        if kind == "jpeg":
            scaled = _jpeg_draft(im, factor)
        if decoded_bytes(im.mode, im.size) > WHOLE_BYTES:
            raise _too_large(im, what)
        im.load()
        upright = orientation(im)  # a PNG's eXIf chunk after the pixels is only seen now, too
        rest = reduction(im.mode, im.size)
        if rest > 1 or im.mode not in ("L", "RGB"):
            page, transparent = _reduce_strips(_whole_strips(im, _rows_per_strip(im, rest)), im.size, rest)
            scaled *= rest
        else:
            page, transparent = im, False  # a JPEG that libjpeg's scaling brought within the limit
    steps = [f"reduce_1/{scaled}"]
    if upright in _TRANSPOSE:
        page = page.transpose(_TRANSPOSE[upright])
    if upright in _TRANSPOSE or stored in _TRANSPOSE:  # turned by us or by Pillow while loading
        steps.insert(0, "exif_rotate")
    if transparent:
        steps.append("alpha->white")
    page.info = {}
    try:
        if dpi:
            page.info["dpi"] = (float(dpi[0]) / scaled, float(dpi[1]) / scaled)
    except (TypeError, ValueError, IndexError):
        pass
    return page, steps
