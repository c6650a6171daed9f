"""Decide, before any API call is spent, whether an input can become an uploadable page.

Every image-extraction call costs credits (about 200 per page), so anything the API would
reject, or that would OCR to nothing, is caught here and reported as an ``invalid`` row with a
short, stable reason code (for filtering and dashboards) and a one-line human message (never a
stack trace). Types are detected by magic bytes, not file names: archives are full of ``.jpg``
files that are really TIFFs and of extension-less exports.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from PIL import Image

from airflow_provider_delix.api.models import MAX_IMAGE_BYTES
from airflow_provider_delix.core.codes import Reason

__all__ = [
    "ImageKind",
    "InvalidInputError",
    "Reason",
    "check_pixels",
    "check_supported",
    "decode_errors",
    "describe_non_image",
    "detect_kind",
    "open_image",
    "short_error",
]

ImageKind = Literal["png", "jpeg", "pdf", "tiff", "bmp", "webp", "gif"]

# Pillow's plugin name per kind: opening with ``formats=`` stops a file sniffed as one type
# from being parsed by another plugin.
PIL_FORMATS: dict[ImageKind, str] = {
    "png": "PNG",
    "jpeg": "JPEG",
    "tiff": "TIFF",
    "bmp": "BMP",
    "webp": "WEBP",
    "gif": "GIF",
    "pdf": "PDF",
}


class InvalidInputError(Exception):
    """An input (or one page of it) that must not be sent to the API."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


# (signature, offset) -> kind, checked in order. TIFF has four (byte order x classic/BigTIFF).
_SIGNATURES: tuple[tuple[bytes, int, ImageKind], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "png"),
    (b"\xff\xd8\xff", 0, "jpeg"),
    (b"II*\x00", 0, "tiff"),
    (b"MM\x00*", 0, "tiff"),
    (b"II+\x00", 0, "tiff"),
    (b"MM\x00+", 0, "tiff"),
    (b"GIF87a", 0, "gif"),
    (b"GIF89a", 0, "gif"),
    (b"WEBP", 8, "webp"),  # after "RIFF" + size, checked below
)


def detect_kind(data: bytes) -> ImageKind | None:
    """The file type from its first bytes, or ``None`` when it is none of the kinds we handle."""
    for signature, offset, kind in _SIGNATURES:
        if data[offset : offset + len(signature)] == signature and (kind != "webp" or data[:4] == b"RIFF"):
            return kind
    # "BM" alone is too weak (plain text can start with it): require the BMP header's size.
    if data[:2] == b"BM" and len(data) >= 26:
        return "bmp"
    # The PDF header may follow a little junk (PDF readers look in the first 1024 bytes).
    return "pdf" if b"%PDF-" in data[:1024] else None


# Recognised non-image (or not-supported image) signatures, only to make messages helpful.
_OTHER_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"PK\x03\x04", 0, "application/zip"),
    (b"\x1f\x8b", 0, "application/gzip"),
    (b"ftypheic", 4, "image/heic"),
    (b"ftypheix", 4, "image/heic"),
    (b"ftypmif1", 4, "image/heif"),
    (b"ftypavif", 4, "image/avif"),
    (b"\x00\x00\x00\x0cjP  ", 0, "image/jp2"),
    (b"\xff\x4f\xff\x51", 0, "image/jp2"),
    (b"8BPS", 0, "image/vnd.adobe.photoshop"),
    (b"<?xml", 0, "application/xml"),
    (b"<svg", 0, "image/svg+xml"),
)


def _guess_other_type(data: bytes) -> str:
    for signature, offset, mime in _OTHER_SIGNATURES:
        if data[offset : offset + len(signature)] == signature:
            return mime
    sample = data[:4096]
    if b"\x00" not in sample:
        try:
            sample.decode("utf-8")
        except UnicodeDecodeError as exc:
            # A multi-byte character cut by the sample's end must not make text look binary.
            if len(data) > len(sample) and exc.start >= len(sample) - 3:
                return "text/plain"
        else:
            return "text/plain"
    return "application/octet-stream"


def _preview(data: bytes) -> str:
    """The first bytes as printable text (escapes for the rest), safe for a one-line message."""
    text = data[:24].decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def describe_non_image(data: bytes) -> str:
    """What a file that is not one of our kinds looks like, for a one-line message."""
    return f'{_guess_other_type(data)}, starts with "{_preview(data)}"'


def check_supported(data: bytes) -> ImageKind:
    """Return the image kind, or raise for empty files, non-images and PDFs."""
    if not data:
        raise InvalidInputError(Reason.EMPTY_FILE, "the file is empty (0 bytes)")
    kind = detect_kind(data)
    if kind == "pdf":
        raise InvalidInputError(
            Reason.PDF_NOT_SUPPORTED,
            "PDFs go to document extraction, not image extraction (the API answers WRONG_FILE_TYPE)",
        )
    if kind is None:
        mime = _guess_other_type(data)
        what = "is not a supported image type" if mime.startswith("image/") else "is not an image"
        raise InvalidInputError(
            Reason.UNSUPPORTED_TYPE,
            f'{mime} {what}: starts with "{_preview(data)}" (accepted: png, jpeg; converted: tiff, bmp, '
            "webp, gif)",
        )
    return kind


def short_error(exc: BaseException, limit: int = 200) -> str:
    """``Type: message`` on one line, truncated: what a row may carry instead of a traceback."""
    text = " ".join(str(exc).split()) or "no details"
    line = f"{type(exc).__name__}: {text}"
    return line if len(line) <= limit else line[: limit - 3] + "..."


@contextmanager
def decode_errors(what: str) -> Iterator[None]:
    """Turn anything Pillow raises on bad content into an ``InvalidInputError``.

    Pillow signals corrupt data with many exception types (``OSError``, ``SyntaxError``,
    ``ValueError``, ``struct.error``, ``EOFError``, ``IndexError``...), so all of them are
    caught; decompression bombs and allocation failures are ``too_large`` instead.
    """
    try:
        yield
    except InvalidInputError:
        raise
    except Image.DecompressionBombError as exc:
        raise InvalidInputError(Reason.TOO_LARGE, f"{what}: {short_error(exc)}") from None
    except MemoryError:
        raise InvalidInputError(Reason.TOO_LARGE, f"{what}: not enough memory to decode it") from None
    except Exception as exc:
        raise InvalidInputError(Reason.CORRUPT_IMAGE, f"{what}: {short_error(exc)}") from None


def check_pixels(im: Image.Image, what: str) -> None:
    """Apply Pillow's decompression-bomb limit to every frame, not only to the first.

    ``Image.open`` checks the first frame only; a later TIFF page or GIF frame can declare any
    size. The limit follows Pillow's own (``2 * MAX_IMAGE_PIXELS``) so a user who raised it to
    read huge maps gets the same behaviour here.
    """
    limit = Image.MAX_IMAGE_PIXELS
    pixels = im.width * im.height
    if limit is not None and pixels > 2 * limit:
        raise InvalidInputError(
            Reason.TOO_LARGE, f"{what} has {pixels} pixels, over the safety limit of {2 * limit}"
        )


def open_image(data: bytes, kind: ImageKind) -> Image.Image:
    """Open (lazily: headers only) with the plugin of the detected kind, mapping errors."""
    with decode_errors(f"not a readable {kind.upper()}"):
        im = Image.open(io.BytesIO(data), formats=[PIL_FORMATS[kind]])
        check_pixels(im, "the image")
        return im


def fits_api(data: bytes) -> bool:
    """Whether bytes are small enough for the image endpoint (spec section 2)."""
    return len(data) <= MAX_IMAGE_BYTES
