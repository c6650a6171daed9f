"""Turn one decoded page into bytes the image-extraction endpoint accepts, keeping OCR quality.

The API takes only PNG and JPEG up to ``MAX_IMAGE_BYTES`` (docs/api.md, "Limits"). Pages that are
already such files are passed through untouched by the caller; everything else goes down a
ladder that gives up as little quality as possible, cheapest loss last:

1. lossless: PNG (level 6), after reducing the mode only where that is exact (RGB that is
   really gray -> L, <= 256 colours -> palette, pure black/white L -> 1 bit); then, only when it
   can plausibly close the gap, PNG with ``optimize=True, compress_level=9`` (slow: seconds on a
   large page, and it rarely gains more than ~10% over level 6);
2. JPEG at quality 92, 85, 75 (grayscale JPEG when the content is gray);
3. downscaling by 0.85x steps with JPEG q75, never below ``MIN_LONG_SIDE`` pixels on the long
   side (text below that is too small to OCR reliably) -> ``too_large``.

Before encoding, the page is put in a mode OCR engines read well: EXIF orientation applied,
CMYK -> RGB, 16/32-bit -> 8-bit (stretched by the page's maximum so 12-bit scans are not
black), transparency flattened onto white (transparent backgrounds with black text would
otherwise become black on black).

What was done is recorded as a comma-separated list of steps, e.g. ``tiff_page->png``,
``png->jpeg_q85``, ``exif_rotate,jpeg->jpeg_q92``, ``png->jpeg_q75,downscale_0.72``. The exact
mode reductions are not recorded: they change the encoding, not a single pixel.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageChops, ImageOps

from airflow_provider_delix.api.models import MAX_IMAGE_BYTES
from airflow_provider_delix.core.png_strips import png_chunks
from airflow_provider_delix.core.validation import ImageKind, InvalidInputError, Reason

__all__ = [
    "DOWNSCALE_STEP",
    "JPEG_QUALITIES",
    "MIN_LONG_SIDE",
    "EncodedPage",
    "encode_page",
    "needs_rework",
    "to_ocr_mode",
]

JPEG_QUALITIES = (92, 85, 75)
DOWNSCALE_STEP = 0.85
MIN_LONG_SIDE = 1000
# Try the slow optimised PNG only when the lossless size is within this factor of the limit.
PNG_OPTIMIZE_MAX_RATIO = 1.10

SOURCE_LABELS: dict[ImageKind, str] = {
    "png": "png",
    "jpeg": "jpeg",
    "tiff": "tiff_page",
    "bmp": "bmp",
    "webp": "webp",
    "gif": "gif_frame",
    "pdf": "pdf",
    "jpeg2000": "jpeg2000",
    "heic": "heic",
}

_ORIENTATION_TAG = 0x0112
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_HIGH_DEPTH_MODES = {"I", "F", "I;16", "I;16L", "I;16B", "I;16N"}


@dataclass(frozen=True, slots=True)
class EncodedPage:
    """Upload-ready bytes of one page and what was done to get them."""

    data: bytes
    extension: str  # "png" or "jpg"
    normalization: str


def orientation(im: Image.Image) -> int:
    """EXIF orientation (1 = upright); a broken EXIF block counts as upright, not as corrupt.

    Only an EXIF block (a JPEG's APP1, a PNG's or WebP's ``eXIf``) or a TIFF's own tag counts.
    Pillow also reads an orientation from XMP and from ImageMagick's "Raw profile type exif"
    text chunk; viewers and browsers ignore both and show the pixels as stored, so turning the
    page by them sent scans upside down (a tester's real files). Such a value is also taken out
    of Pillow's cached EXIF: its TIFF loader turns the page by that cache while loading.
    """
    try:
        exif = im.getexif()
        value = exif.get(_ORIENTATION_TAG, 1)
        if value not in range(2, 9):
            return 1
        if _in_exif_block(im):
            return int(value)
        exif.pop(_ORIENTATION_TAG, None)
        return 1
    except Exception:
        return 1


def _in_exif_block(im: Image.Image) -> bool:
    """Whether the image's own EXIF block (or TIFF tags) holds an orientation, not only XMP."""
    tags = getattr(im, "tag_v2", None)
    if tags is not None and _ORIENTATION_TAG in tags:
        return True
    raw = im.info.get("exif")
    if not raw:
        return False
    exif = Image.Exif()
    exif.load(raw)
    return _ORIENTATION_TAG in exif


def has_transparency(im: Image.Image) -> bool:
    """Whether any pixel is actually see-through (an all-opaque alpha channel does not count)."""
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode not in _ALPHA_MODES:
        return False
    low, _ = _extrema(im.getchannel("A"))
    return low < 255


def drop_zero_alpha(im: Image.Image) -> tuple[Image.Image, list[str]]:
    """A BMP's alpha that is zero everywhere carries nothing: drop it rather than composite.

    Many writers (Windows tools saving 32-bit BMPs) leave the fourth byte zero, and BMP viewers
    ignore it; Pillow reads it as alpha. Compositing it onto white would send Delix a blank
    page, and pay for it. (A PNG's alpha is meant: an all-transparent PNG stays blank.)
    """
    if im.mode != "RGBA" or _extrema(im.getchannel("A"))[1] > 0:
        return im, []
    return im.convert("RGB"), ["zero_alpha->dropped"]


def needs_rework(im: Image.Image) -> bool:
    """Whether a decodable PNG/JPEG under the size limit must still be re-encoded.

    Only for things that hurt OCR: a rotated page (EXIF orientation), CMYK (not every decoder
    reads it), or real transparency (its hidden colour is often black).
    """
    return im.mode == "CMYK" or orientation(im) != 1 or has_transparency(im)


def _extrema(band: Image.Image) -> tuple[float, float]:
    """``getextrema`` of a single-band image (typed: Pillow's stub also covers multi-band)."""
    low, high = band.getextrema()
    assert not isinstance(low, tuple) and not isinstance(high, tuple)
    return float(low), float(high)


def _to_8bit(im: Image.Image) -> Image.Image:
    """Stretch 16/32-bit values by the page's range, so a 12-bit scan is not nearly black."""
    if im.mode.startswith("I;16"):
        im = im.convert("I")
    low, high = _extrema(im)
    if im.mode == "I" and low >= 0 and high <= 255:
        return im.convert("L")
    floor = min(low, 0.0)
    scale = 255.0 / (high - floor) if high > floor else 1.0
    return im.point(lambda v: v * scale - floor * scale).convert("L")


def _flatten(im: Image.Image) -> Image.Image:
    """Composite onto white: the usual page colour, and what viewers show for transparency."""
    gray = im.mode in ("LA", "La")
    rgba = im.convert("LA" if gray else "RGBA")
    page = Image.new("L" if gray else "RGB", rgba.size, 255 if gray else (255, 255, 255))
    page.paste(rgba.convert("L" if gray else "RGB"), mask=rgba.getchannel("A"))
    return page


def to_ocr_mode(im: Image.Image) -> tuple[Image.Image, list[str]]:
    """Upright page in mode 1, L, P or RGB, plus the steps that changed it."""
    steps: list[str] = []
    if orientation(im) != 1:
        transposed = ImageOps.exif_transpose(im)
        if transposed is not None:
            im = transposed
            steps.append("exif_rotate")
    mode = im.mode
    if mode in ("1", "L", "RGB") or (mode == "P" and "transparency" not in im.info):
        return im, steps
    if mode in _HIGH_DEPTH_MODES:
        steps.append("16bit->8bit" if mode.startswith("I;16") else f"{mode.lower()}->8bit")
        return _to_8bit(im), steps
    if mode == "P" or mode in _ALPHA_MODES:
        if has_transparency(im):
            steps.append("alpha->white")
            return _flatten(im), steps
        return im.convert("L" if mode in ("LA", "La") else "RGB"), steps
    steps.append(f"{mode.lower()}->rgb")  # CMYK, YCbCr, LAB, HSV
    return im.convert("RGB"), steps


def _is_gray(im: Image.Image) -> bool:
    red, green, blue = im.split()
    return (
        ImageChops.difference(red, green).getbbox() is None
        and ImageChops.difference(green, blue).getbbox() is None
    )


def reduce_lossless(im: Image.Image) -> tuple[Image.Image, list[str]]:
    """Smaller PNG modes, applied only when they are exact for this content."""
    steps: list[str] = []
    if im.mode == "RGB":
        if _is_gray(im):
            im = im.convert("L")
            steps.append("rgb->gray")
        else:
            colors = im.getcolors(256)
            if colors is not None:
                paletted = im.convert("P", palette=Image.Palette.ADAPTIVE, colors=len(colors))
                if ImageChops.difference(paletted.convert("RGB"), im).getbbox() is None:
                    return paletted, [*steps, "rgb->palette"]
    if im.mode == "L":
        levels = im.getcolors(2)
        if levels is not None and {value for _, value in levels} <= {0, 255}:
            im = im.convert("1", dither=Image.Dither.NONE)
            steps.append("gray->bilevel")
    return im, steps


def _dpi(im: Image.Image, factor: float = 1.0) -> tuple[float, float] | None:
    """The page's DPI, kept so OCR engines size text right (Tesseract guesses 70 dpi without)."""
    dpi = im.info.get("dpi")
    try:
        return (float(dpi[0]) * factor, float(dpi[1]) * factor) if dpi else None
    except (TypeError, ValueError, IndexError, ZeroDivisionError):
        return None


def _save(im: Image.Image, fmt: str, dpi: tuple[float, float] | None, **options: Any) -> bytes:
    buffer = io.BytesIO()
    if dpi:
        options["dpi"] = dpi
    if fmt == "PNG":
        # A page in OCR mode is opaque. A source's colour key (tRNS in gray or RGB) would be
        # written again, and a mode reduction (RGB -> L) moves it onto a colour the page has.
        options.setdefault("transparency", None)
    im.save(buffer, fmt, **options)
    return buffer.getvalue()


def _jpeg_ready(im: Image.Image) -> Image.Image:
    """JPEG holds L or RGB; gray content goes out as a (smaller) grayscale JPEG."""
    if im.mode in ("1", "L"):
        return im.convert("L")
    rgb = im.convert("RGB") if im.mode != "RGB" else im
    return rgb.convert("L") if _is_gray(rgb) else rgb


def _label(pre: list[str], source: str, result: str, extra: list[str] | None = None) -> str:
    return ",".join([*pre, f"{source}->{result}", *(extra or [])])


def png_deflated_size(data: bytes) -> int | None:
    """What a PNG's pixels take, deflated (its IDAT chunks), if at zlib's default level or above.

    The zlib header of the first IDAT chunk says the level (its FLEVEL bits: 2 = default, 3 =
    best). Only then does that size stand for what a re-encode at the default level would give:
    a PNG written with little or no compression (scanners' fast mode, ``compress_level=0``) can
    shrink tenfold, losslessly, and must not go straight to JPEG. The IDAT chunks, not the file:
    a small image can carry megabytes of metadata (XMP, text chunks) that a re-encode drops.
    None for those and for a damaged file (it is re-encoded to find out).
    """
    total, seen = 0, False
    for tag, start, length in png_chunks(data):
        if start + 4 > len(data):  # a header cut off at the end of the file
            break
        if tag == b"IDAT":
            if not seen and (length < 2 or data[start + 1] >> 6 < 2):
                return None
            seen, total = True, total + length
    return total + 1024 if seen else None  # and the few header chunks a re-encode writes


def encode_page(
    im: Image.Image,
    kind: ImageKind,
    *,
    pre_steps: list[str] | None = None,
    original_size: int | None = None,
) -> EncodedPage:
    """Walk the ladder (module docstring) until the page fits ``MAX_IMAGE_BYTES``.

    ``im`` must be in OCR mode (``to_ocr_mode``) with ``pre_steps`` what that did.
    ``original_size`` is the size of the source when it already is a PNG deflated at the default
    level or above (:func:`png_deflated_size`), with the pixels unchanged: it lets the ladder
    skip re-encoding at the default level. Raises ``InvalidInputError(too_large)``.
    """
    pre = list(pre_steps or [])
    source = SOURCE_LABELS[kind]
    dpi = _dpi(im)
    if kind != "jpeg":  # re-encoding a lossy source losslessly only makes it bigger
        reduced, reductions = reduce_lossless(im)
        lossless_size = original_size
        if reductions or original_size is None or original_size <= MAX_IMAGE_BYTES:
            data = _save(reduced, "PNG", dpi)
            if len(data) <= MAX_IMAGE_BYTES:
                return EncodedPage(data, "png", _label(pre, source, "png"))
            lossless_size = len(data)
        if lossless_size is not None and lossless_size <= MAX_IMAGE_BYTES * PNG_OPTIMIZE_MAX_RATIO:
            data = _save(reduced, "PNG", dpi, optimize=True, compress_level=9)
            if len(data) <= MAX_IMAGE_BYTES:
                return EncodedPage(data, "png", _label(pre, source, "png_opt"))
        del reduced

    base = _jpeg_ready(im)
    size = 0
    for quality in JPEG_QUALITIES:
        data = _save(base, "JPEG", dpi, quality=quality, optimize=True)
        if len(data) <= MAX_IMAGE_BYTES:
            return EncodedPage(data, "jpg", _label(pre, source, f"jpeg_q{quality}"))
        size = len(data)

    # Encoded size follows the pixel count, so start at the step that should fit, but never
    # skip past the smallest allowed size.
    quality = JPEG_QUALITIES[-1]
    long_side = max(base.size)
    last_step = math.floor(math.log(MIN_LONG_SIDE / long_side) / math.log(DOWNSCALE_STEP)) if long_side else 0
    step = max(1, math.ceil(math.log(math.sqrt(MAX_IMAGE_BYTES / size)) / math.log(DOWNSCALE_STEP)))
    step = min(step, last_step)
    while step <= last_step and step >= 1:
        factor = DOWNSCALE_STEP**step
        small = base.resize(
            (round(base.width * factor), round(base.height * factor)),
            Image.Resampling.LANCZOS,
            reducing_gap=3.0,
        )
        data = _save(small, "JPEG", _dpi(im, factor), quality=quality, optimize=True)
        del small
        if len(data) <= MAX_IMAGE_BYTES:
            return EncodedPage(
                data, "jpg", _label(pre, source, f"jpeg_q{quality}", [f"downscale_{factor:.2f}"])
            )
        size = len(data)
        step += 1
    raise InvalidInputError(
        Reason.TOO_LARGE,
        f"{base.width}x{base.height} px is still over {MAX_IMAGE_BYTES} bytes ({size} bytes) as JPEG "
        f"q{quality} when downscaled to {MIN_LONG_SIDE} px on the long side",
    )
