"""Upload checks: what a file is (by content, never by name) and whether Delix would keep it.

Decisions where the spec is silent (``docs/api.md``, limits and errors):

* The type is decided by magic bytes only; the file name and the part's Content-Type are
  ignored. Only PNG, JPEG and PDF are accepted; anything else, an empty part, an image Pillow
  cannot fully decode, or a PDF PDFium cannot open is ``MALFORMED_FILE``.
* A JPEG with an MPF (multi-picture) segment, as many phone cameras write, is a JPEG: Pillow
  names it ``MPO``, but the file starts with a JPEG SOI and its first frame decodes as a plain
  JPEG, which is what a JPEG reader (and so Delix) sees. Only that first frame is decoded.
* An image over 2 MB or a PDF over 8 MB is ``BAD_INPUT``: the ErrorEnum has no "too large"
  value and ``BAD_INPUT`` ("the file could not be processed") is the closest. Sizes are decimal
  (2 MB = 2_000_000 bytes). The size is checked before decoding, so an oversized corrupt image
  is ``BAD_INPUT``.
* A PDF over 150 pages is ``PAGE_COUNT_LIMIT_EXCEEDED``; a PDF with no page is ``MALFORMED_FILE``.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image

from airflow_provider_delix.api.models import MAX_IMAGE_BYTES, MAX_PDF_BYTES, MAX_PDF_PAGES, ErrorCode
from airflow_provider_delix.emulator import pdf

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
PDF_MAGIC = b"%PDF-"
# The Pillow formats a sniffed image may open as; anything else is a file of another type that
# happens to start with the same bytes.
PIL_FORMATS = {"png": frozenset({"PNG"}), "jpeg": frozenset({"JPEG", "MPO"})}


@dataclass(frozen=True)
class Accepted:
    kind: str  # "png", "jpeg" or "pdf"
    page_count: int

    @property
    def extension(self) -> str:
        return self.kind

    @property
    def is_pdf(self) -> bool:
        return self.kind == "pdf"


def sniff(data: bytes) -> str | None:
    """``png``, ``jpeg``, ``pdf`` or None. PDF readers allow junk before ``%PDF-`` in the first KB."""
    if data.startswith(PNG_MAGIC):
        return "png"
    if data.startswith(JPEG_MAGIC):
        return "jpeg"
    if PDF_MAGIC in data[:1024]:
        return "pdf"
    return None


def _image_decodes(data: bytes, expected: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.format not in PIL_FORMATS[expected]:
                    return False
                image.load()  # an MPO's first frame only: the JPEG a JPEG reader sees
    except Exception:  # Pillow raises many types for damaged files; all mean "malformed"
        return False
    return True


def check_upload(data: bytes) -> Accepted | ErrorCode:  # noqa: PLR0911 (one answer per rule)
    """Accepted (with page count) or the RejectedFile reason for one uploaded part."""
    kind = sniff(data)
    if kind is None:
        return ErrorCode.MALFORMED_FILE
    if kind == "pdf":
        if len(data) > MAX_PDF_BYTES:
            return ErrorCode.BAD_INPUT
        try:
            pages = pdf.page_count(data)
        except pdf.PdfError:
            return ErrorCode.MALFORMED_FILE
        if pages < 1:
            return ErrorCode.MALFORMED_FILE
        if pages > MAX_PDF_PAGES:
            return ErrorCode.PAGE_COUNT_LIMIT_EXCEEDED
        return Accepted(kind="pdf", page_count=pages)
    if len(data) > MAX_IMAGE_BYTES:
        return ErrorCode.BAD_INPUT
    if not _image_decodes(data, kind):
        return ErrorCode.MALFORMED_FILE
    return Accepted(kind=kind, page_count=1)
