"""Everything the emulator does with PDFs, behind one process-wide lock.

PDFium is not thread-safe (pypdfium2 says so explicitly), and the server is threaded, so
every call into it goes through ``_PDFIUM``. The work done under the lock is short: opening
a document is lazy, and rendering one page is tens of milliseconds.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections import OrderedDict
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

_PDFIUM = threading.Lock()


class PdfError(ValueError):
    """PDFium could not open the document."""


def page_count(data: bytes) -> int:
    with _PDFIUM:
        try:
            doc = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            raise PdfError(str(exc)) from None
        try:
            return len(doc)
        finally:
            doc.close()


def text_layer(data: bytes, page_number: int) -> str:
    """The embedded text of one page (1-based), line ends normalised to ``\\n``."""
    with _PDFIUM:
        doc = pdfium.PdfDocument(data)
        try:
            page = doc[page_number - 1]
            textpage = page.get_textpage()
            text = str(textpage.get_text_range())
            textpage.close()
            page.close()
        finally:
            doc.close()
    return text.replace("\r\n", "\n").replace("\r", "\n")


def render_page_pgm(data: bytes, page_number: int, dpi: int = 300) -> bytes:
    """One page as a grayscale PGM image: Tesseract reads it from stdin with no decoding cost."""
    with _PDFIUM:
        doc = pdfium.PdfDocument(data)
        try:
            page = doc[page_number - 1]
            bitmap = page.render(scale=dpi / 72, grayscale=True)
            image = bitmap.to_pil().convert("L")  # copies out of PDFium's buffer while locked
            bitmap.close()
            page.close()
        finally:
            doc.close()
    width, height = image.size
    pixels: bytes = image.tobytes()
    return b"P5\n%d %d\n255\n" % (width, height) + pixels


def _lone_image(page: Any) -> Any | None:
    """The page's only object if it is an image -- a scan, a packed image -- else None.

    One test for both readers of scanned pages below, so the Tesseract backend and the
    groundtruth backend agree on which pages are scans. A page with text or several objects is
    not one: the caller renders it, or reads its text layer.
    """
    objects = list(page.get_objects())
    if len(objects) != 1 or objects[0].type != pdfium_c.FPDF_PAGEOBJ_IMAGE:
        return None
    return objects[0]


def _embedded_jpeg(image: Any) -> bytes | None:
    """The image's bytes as embedded, if it is a JPEG (``/DCTDecode`` and no other filter)."""
    if image.get_filters() == ["DCTDecode"]:
        return bytes(image.get_data(decode_simple=False))
    return None


def page_scan(data: bytes, page_number: int) -> bytes | None:
    """A scanned page's one image at its own resolution, as an image file; None for other pages.

    A page without text whose only content is one image (a scan, a packed image) is read the
    way OCR pipelines read scans: at the image's own pixels, not re-sampled by rendering. A
    JPEG comes back as embedded; other images decoded to PNG, with their resolution from the
    page size. Pages with text or several objects return None (the caller renders them).
    """
    with _PDFIUM:
        doc = pdfium.PdfDocument(data)
        try:
            page = doc[page_number - 1]
            image = _lone_image(page)
            if image is None:
                return None
            jpeg = _embedded_jpeg(image)
            if jpeg is not None:
                return jpeg
            width_pt = page.get_size()[0]
            pil = image.get_bitmap(render=False).to_pil()
        finally:
            doc.close()
    dpi = round(pil.width * 72 / width_pt) if width_pt > 0 else 300
    sink = io.BytesIO()
    pil.save(sink, "PNG", dpi=(dpi, dpi))
    return sink.getvalue()


def page_jpeg(data: bytes, page_number: int) -> bytes | None:
    """The JPEG a scanned page is made of, as embedded (``/DCTDecode``); None for other pages.

    A page made by embedding a JPEG losslessly (img2pdf, packed scans) carries the file's
    bytes unchanged, so the groundtruth backend can read that page the way it reads the JPEG.
    The same pages as :func:`page_scan` count as scans. Every page of a document is read at
    once and kept for the next pages (a pack of 150 pages would otherwise be opened 150 times
    and take the PDFium lock for each).
    """
    key = hashlib.sha256(data).hexdigest()
    with _JPEG_LOCK:
        pages = _JPEG_PAGES.get(key)
        if pages is not None:
            _JPEG_PAGES.move_to_end(key)
    if pages is None:
        pages = _jpeg_pages(data)
        with _JPEG_LOCK:
            _JPEG_PAGES[key] = pages
            while len(_JPEG_PAGES) > _JPEG_CACHE:
                _JPEG_PAGES.popitem(last=False)
    return pages[page_number - 1] if 0 < page_number <= len(pages) else None


_JPEG_LOCK = threading.Lock()
_JPEG_PAGES: OrderedDict[str, list[bytes | None]] = OrderedDict()
_JPEG_CACHE = 64


def _jpeg_pages(data: bytes) -> list[bytes | None]:
    with _PDFIUM:
        try:
            doc = pdfium.PdfDocument(data)
        except pdfium.PdfiumError:  # not a PDF PDFium opens: no page is a packed scan
            return []
        try:
            return [_page_jpeg_or_none(doc, index) for index in range(len(doc))]
        finally:
            doc.close()


def _page_jpeg_or_none(doc: Any, index: int) -> bytes | None:
    """One page's packed JPEG; None when PDFium cannot load or read the page.

    Per page, not per document: a page tree whose /Count promises more pages than it has
    must not make its real scans read as pages without one (the Tesseract backend, which
    looks at one page at a time, still reads them as scans). The unloadable page itself
    fails when its text layer is read.
    """
    try:
        page = doc[index]
        try:
            image = _lone_image(page)
            return None if image is None else _embedded_jpeg(image)
        finally:
            page.close()
    except Exception:  # a page PDFium cannot load or read: not a packed scan
        return None
