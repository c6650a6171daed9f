"""Decide, before any API call is spent, whether an input can become an uploadable page.

Every image-extraction call costs credits (about 200 per page), so anything the API would
reject, or that would OCR to nothing, is caught here and reported as an ``invalid`` row with a
short, stable reason code (for filtering and dashboards) and a one-line human message (never a
stack trace). Types are detected by magic bytes, not file names: archives are full of ``.jpg``
files that are really TIFFs and of extension-less exports.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

from PIL import Image

from airflow_provider_delix.api.models import MAX_IMAGE_BYTES
from airflow_provider_delix.core import codecs
from airflow_provider_delix.core.codes import Reason

__all__ = [
    "ImageKind",
    "InvalidInputError",
    "Reason",
    "check_pixels",
    "check_supported",
    "codec_problem",
    "decode_errors",
    "describe_non_image",
    "detect_kind",
    "heif_plugin",
    "open_image",
    "short_error",
]

ImageKind = Literal["png", "jpeg", "pdf", "tiff", "bmp", "webp", "gif", "jpeg2000", "heic"]

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
    "jpeg2000": "JPEG2000",
    "heic": "HEIF",  # registered by pillow-heif, see heif_plugin
}

HEIC_EXTRA = "airflow-provider-delix[heic]"


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
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", 0, "jpeg2000"),  # JP2/JPX container: signature box
    (b"\xff\x4f\xff\x51", 0, "jpeg2000"),  # a raw J2K codestream: SOC then SIZ marker
)

# ISO-BMFF brands of HEVC-coded HEIF (phones' .heic). "mif1"/"msf1" are generic HEIF brands that
# AVIF files use too, so those count only without an AV1 brand among the compatible ones.
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"})
_GENERIC_HEIF_BRANDS = frozenset({b"mif1", b"msf1"})
_AV1_BRANDS = frozenset({b"avif", b"avis"})


def _is_heic(data: bytes) -> bool:
    if data[4:8] != b"ftyp":
        return False
    box = min(max(int.from_bytes(data[:4], "big"), 16), len(data), 256)
    brands = {data[i : i + 4] for i in range(16, box - 3, 4)}
    major = data[8:12]
    return major in _HEIC_BRANDS or (major in _GENERIC_HEIF_BRANDS and not brands & _AV1_BRANDS)


def detect_kind(data: bytes) -> ImageKind | None:
    """The file type from its first bytes, or ``None`` when it is none of the kinds we handle."""
    for signature, offset, kind in _SIGNATURES:
        if data[offset : offset + len(signature)] == signature and (kind != "webp" or data[:4] == b"RIFF"):
            return kind
    if _is_heic(data):
        return "heic"
    # "BM" alone is too weak (plain text can start with it): require the BMP header's size.
    if data[:2] == b"BM" and len(data) >= 26:
        return "bmp"
    # The PDF header may follow a little junk (PDF readers look in the first 1024 bytes).
    return "pdf" if b"%PDF-" in data[:1024] else None


# Recognised non-image (or not-supported image) signatures, only to make messages helpful.
_OTHER_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"PK\x03\x04", 0, "application/zip"),
    (b"\x1f\x8b", 0, "application/gzip"),
    (b"ftypavif", 4, "image/avif"),
    (b"ftypmif1", 4, "image/avif"),  # a generic HEIF brand that detect_kind did not take as HEIC
    (b"8BPS", 0, "image/vnd.adobe.photoshop"),
    (b"<?xml", 0, "application/xml"),
    (b"<svg", 0, "image/svg+xml"),
    (b"\xff\x0a", 0, "image/jxl"),  # a bare JPEG XL codestream
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", 0, "image/jxl"),  # JPEG XL in its container
    (b"\x00\x00\x01\x00", 0, "image/vnd.microsoft.icon"),
)
_NETPBM = re.compile(rb"P[1-7]\s")


def _guess_other_type(data: bytes) -> str:
    for signature, offset, mime in _OTHER_SIGNATURES:
        if data[offset : offset + len(signature)] == signature:
            return mime
    if _NETPBM.match(data):  # PBM/PGM/PPM/PAM: a magic of two characters and whitespace
        return "image/x-portable-anymap"
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
            "webp, gif, jpeg2000, heic)",
        )
    if kind == "heic" and not heif_plugin():
        raise InvalidInputError(
            Reason.UNSUPPORTED_TYPE,
            f"image/heic needs the pillow-heif plugin, which is not installed: install {HEIC_EXTRA}",
        )
    return kind


_heif_lock = threading.Lock()


def heif_plugin() -> bool:
    """Whether HEIC can be read: registers pillow-heif's Pillow plugin on first use, if importable.

    Lazily, so that installing the extra is all it takes (no import-time side effect for
    everyone else); the import is tried every time, which is only a ``sys.modules`` look-up.
    """
    try:
        import pillow_heif
    except ImportError:
        return False
    with _heif_lock:
        if PIL_FORMATS["heic"] not in Image.OPEN:
            pillow_heif.register_heif_opener()
    return True


# "<_io.BytesIO object at 0x7f...>" in a library's message: a new address on every run.
_OBJECT_REPR = re.compile(r"<([\w.]+) object at 0x[0-9a-fA-F]+>")


def short_error(exc: BaseException, limit: int = 200) -> str:
    """``Type: message`` on one line, truncated: what a row may carry instead of a traceback.

    Object reprs with a memory address (Pillow's "cannot identify image file <_io.BytesIO
    object at 0x...>") become "<data>": the same damage gives the same message on every run,
    so rows can be grouped by it.
    """
    text = _OBJECT_REPR.sub("<data>", " ".join(str(exc).split())) or "no details"
    line = f"{type(exc).__name__}: {text}"
    return line if len(line) <= limit else line[: limit - 3] + "..."


@contextmanager
def decode_errors(what: str, codec: Callable[[], str | None] | None = None) -> Iterator[None]:
    """Turn anything Pillow raises on bad content into an ``InvalidInputError``.

    Pillow signals corrupt data with many exception types (``OSError``, ``SyntaxError``,
    ``ValueError``, ``struct.error``, ``EOFError``, ``IndexError``...), so all of them are
    caught; decompression bombs and allocation failures are ``too_large`` instead. ``codec``
    says, after a failure, whether the file's compression is one this build cannot decode:
    then the file is ``unsupported_codec`` (fine, only unreadable here), not ``corrupt_image``.
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
        problem = codec() if codec is not None else None
        if problem is not None:
            raise InvalidInputError(Reason.UNSUPPORTED_CODEC, f"{what}: {problem}") from None
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


def codec_problem(data: bytes, kind: ImageKind, im: Image.Image | None = None) -> str | None:
    """Why this build cannot decode the file's (or ``im``'s current page's) compression, if so."""
    if kind == "bmp":
        return codecs.bmp_codec_problem(data)
    if kind == "tiff":
        return codecs.tiff_codec_problem(codecs.tiff_compression(data, im))
    if kind == "jpeg":
        return codecs.jpeg_codec_problem(data)
    return None


def open_image(data: bytes, kind: ImageKind) -> Image.Image:
    """Open (lazily: headers only) with the plugin of the detected kind, mapping errors."""
    name = "JPEG 2000" if kind == "jpeg2000" else kind.upper()
    with decode_errors(f"not a readable {name}", codec=lambda: codec_problem(data, kind)):
        im = Image.open(io.BytesIO(data), formats=[PIL_FORMATS[kind]])
        check_pixels(im, "the image")
    # Asked before decoding: an arithmetic-coded JPEG opens fine and fails only when decoded,
    # as a "broken data stream" that would call a sound file damaged.
    problem = codecs.jpeg_codec_problem(data) if kind == "jpeg" else None
    if problem is not None:
        im.close()
        raise InvalidInputError(Reason.UNSUPPORTED_CODEC, problem)
    return im


def fits_api(data: bytes) -> bool:
    """Whether bytes are small enough for the image endpoint (docs/api.md, "Limits")."""
    return len(data) <= MAX_IMAGE_BYTES
