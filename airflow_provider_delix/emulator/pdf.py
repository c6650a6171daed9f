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
from collections.abc import Callable
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image

from .pdf_images import UNKNOWN, PageImages, page_images

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


# What a page given to OCR may hold, in pixels: an A3 page at 600 dpi. Past it a scan is
# rendered at a lower resolution instead of decoded at its own (an A0 scan at 600 dpi is 558
# million pixels: gigabytes in Pillow and Tesseract, for no better text).
MAX_OCR_PIXELS = 70_000_000


def render_page_pgm(data: bytes, page_number: int, dpi: int = 300) -> bytes:
    """One page as a grayscale PGM image: Tesseract reads it from stdin with no decoding cost.

    At ``dpi``, or lower for a page that would be more than :data:`MAX_OCR_PIXELS`.
    """
    with _PDFIUM:
        doc = pdfium.PdfDocument(data)
        try:
            page = doc[page_number - 1]
            width_pt, height_pt = page.get_size()
            scale = dpi / 72
            if width_pt * height_pt * scale * scale > MAX_OCR_PIXELS:
                scale = 0.99 * (MAX_OCR_PIXELS / (width_pt * height_pt)) ** 0.5  # PDFium rounds up
            bitmap = page.render(scale=scale, grayscale=True)
            image = bitmap.to_pil().convert("L")  # copies out of PDFium's buffer while locked
            bitmap.close()
            page.close()
        finally:
            doc.close()
    width, height = image.size
    pixels: bytes = image.tobytes()
    return b"P5\n%d %d\n255\n" % (width, height) + pixels


def _lone_image(page: Any) -> Any | None:
    """The page's only object if it is an image -- a scan, a packed image -- else None."""
    objects = list(page.get_objects())
    if len(objects) != 1 or objects[0].type != pdfium_c.FPDF_PAGEOBJ_IMAGE:
        return None
    return objects[0]


_EDGE_PT = 0.5  # how far (in points) an image's edge may be from the page's: rounding in writers


def _same_box(one: tuple[float, ...], other: tuple[float, ...]) -> bool:
    return all(abs(a - b) <= _EDGE_PT for a, b in zip(one, other, strict=True))


def _scan_image(page: Any) -> Any | None:
    """The page's one image when its pixels, turned by the page's /Rotate, are the whole page shown.

    One test for both readers of scanned pages below, so the Tesseract backend and the
    groundtruth backend agree on which pages are scans. The real API reads a page as a
    renderer shows it; the image's own pixels stand for that only when the image is drawn
    upright and unmirrored, covers the whole page, with square pixels (as many per point
    across as down), with no transparency in its graphics state, and no CropBox hides part of
    it. Anything else (text, several objects, a crop, a margin, a skewed image, a picture
    stretched to another aspect) is not a scan: the caller renders the page, or reads its text
    layer. Masks in the image's own dictionary are not visible through PDFium's API:
    :func:`page_scan` and :func:`page_jpeg` ask :mod:`.pdf_images` about those.
    """
    image = _lone_image(page)
    if image is None:
        return None
    a, b, c, d, _, _ = image.get_matrix().get()
    if abs(b) > 1e-6 or abs(c) > 1e-6 or a <= 0 or d <= 0:  # drawn turned, skewed or mirrored
        return None
    crop = page.get_cropbox()
    if not _same_box(crop, page.get_mediabox()) or not _same_box(image.get_bounds(), crop):
        return None
    if not _square_pixels(image.get_px_size(), (a, d)) or pdfium_c.FPDFPageObj_HasTransparency(image.raw):
        return None  # shown stretched, or blended with the page: its pixels are not what is shown
    return image


# How far the resolutions across and down may differ: writers round page sizes to a point or a
# millimetre (0.1% on an A4 page), while a stretched picture (fax modes, 200x100 dpi) is 2x.
_ASPECT_TOLERANCE = 0.01


def _square_pixels(pixels: tuple[int, int], points: tuple[float, float]) -> bool:
    across, down = pixels[0] / points[0], pixels[1] / points[1]
    return abs(across - down) <= _ASPECT_TOLERANCE * max(across, down)


def _embedded_jpeg(image: Any) -> bytes | None:
    """The image's bytes as embedded, if it is a JPEG (``/DCTDecode`` and no other filter)."""
    if image.get_filters() == ["DCTDecode"]:
        return bytes(image.get_data(decode_simple=False))
    return None


# PDF's /Rotate turns the page clockwise for display; PIL's rotations are counter-clockwise.
_CLOCKWISE = {
    90: Image.Transpose.ROTATE_270,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_90,
}


def page_scan(data: bytes, page_number: int) -> bytes | None:
    """A scanned page's one image at its own resolution, as an image file; None for other pages.

    A page whose only content is one image covering it (a scan, a packed image, see
    :func:`_scan_image`) is read the way OCR pipelines read scans: at the image's own pixels,
    not re-sampled by rendering, turned the way the page's /Rotate shows it (scanners store a
    landscape page sideways and set /Rotate). An unrotated JPEG comes back as embedded; other
    images (and rotated JPEGs, and JPEGs a /Decode recolours) decoded to PNG, with their
    resolution from the page size. Other pages return None: the caller renders them, which
    applies /Rotate, the CropBox and masks. So does an image with a mask (/SMask, /Mask) or
    drawn as a stencil (/ImageMask): its pixels are not what a viewer shows.
    """
    found = _read_scan(data, page_number, pass_jpeg=True)
    if found is None:
        return None
    images = _document_images(data).get(page_number - 1, UNKNOWN)  # pypdf, outside PDFium's lock
    if images.masked:
        return None
    if isinstance(found, bytes) and images.recoded:  # rare: a JPEG whose /Decode recolours it
        found = _read_scan(data, page_number, pass_jpeg=False)
    return found if found is None or isinstance(found, bytes) else _png(*found)


def _read_scan(
    data: bytes, page_number: int, *, pass_jpeg: bool
) -> bytes | tuple[Image.Image, tuple[int, int], int] | None:
    """The scan's embedded JPEG (``pass_jpeg`` and unrotated), or its pixels, dpi and /Rotate."""
    with _PDFIUM:
        doc = pdfium.PdfDocument(data)
        try:
            page = doc[page_number - 1]
            image = _scan_image(page)
            if image is None:
                return None
            width, height = image.get_px_size()
            if width * height > MAX_OCR_PIXELS:
                return None  # rendered at a resolution that fits instead of decoded whole
            rotation = page.get_rotation() % 360
            jpeg = _embedded_jpeg(image) if rotation == 0 and pass_jpeg else None
            if jpeg is not None:
                return jpeg
            left, bottom, right, top = image.get_bounds()
            # to_pil may share the bitmap's buffer: copy the pixels out while the lock is held
            pil = image.get_bitmap(render=False).to_pil().copy()
        finally:
            doc.close()
    return pil, (_dpi(pil.width, right - left), _dpi(pil.height, top - bottom)), rotation


def _png(pil: Image.Image, dpi: tuple[int, int], rotation: int) -> bytes:
    """The pixels turned as /Rotate shows them, as PNG with their resolution."""
    if rotation in _CLOCKWISE:
        pil = pil.transpose(_CLOCKWISE[rotation])
        dpi = dpi[::-1] if rotation != 180 else dpi
    sink = io.BytesIO()
    pil.save(sink, "PNG", dpi=dpi)
    return sink.getvalue()


def _dpi(pixels: int, points: float) -> int:
    return round(pixels * 72 / points) if points > 0 else 300  # a degenerate page: Tesseract's default


def page_jpeg(data: bytes, page_number: int) -> bytes | None:
    """The JPEG a scanned page is made of, as embedded (``/DCTDecode``); None for other pages.

    A page made by embedding a JPEG losslessly (img2pdf, packed scans) carries the file's
    bytes unchanged, so the groundtruth backend can read that page the way it reads the JPEG.
    The same pages as :func:`page_scan` count as scans, so a crop or a margin makes a page
    none here too. A page shown turned by /Rotate still is one: :func:`page_scan` gives
    Tesseract the same picture turned as shown, and the text a JPEG carries for groundtruth
    does not depend on which way up it is displayed. Every page of a document is read at
    once and kept for the next pages (a pack of 150 pages would otherwise be opened 150 times
    and take the PDFium lock for each).
    """
    pages = _per_document(_JPEG_PAGES, data, _jpeg_pages)
    return pages[page_number - 1] if 0 < page_number <= len(pages) else None


_CACHE_LOCK = threading.Lock()
_DOCUMENTS_KEPT = 64
_JPEG_PAGES: OrderedDict[str, list[bytes | None]] = OrderedDict()
_IMAGES: OrderedDict[str, dict[int, PageImages]] = OrderedDict()


def _per_document(cache: OrderedDict[str, Any], data: bytes, make: Callable[[bytes], Any]) -> Any:
    """``make(data)``, kept for the document's next pages (the last 64 documents): a backend
    reads a document page by page, and reading it whole again for each page made a 150-page
    scan take seconds."""
    key = hashlib.sha256(data).hexdigest()
    with _CACHE_LOCK:
        found = cache.get(key)
        if found is not None:
            cache.move_to_end(key)
            return found
    made = make(data)
    with _CACHE_LOCK:
        cache[key] = made
        while len(cache) > _DOCUMENTS_KEPT:
            cache.popitem(last=False)
    return made


def _document_images(data: bytes) -> dict[int, PageImages]:
    """How every page of the document paints its images (:mod:`.pdf_images`), read once."""

    def every_page(data: bytes) -> dict[int, PageImages]:
        try:
            pages = page_count(data)
        except PdfError:
            return {}
        return page_images(data, range(pages))

    result: dict[int, PageImages] = _per_document(_IMAGES, data, every_page)
    return result


def _jpeg_pages(data: bytes) -> list[bytes | None]:
    with _PDFIUM:
        try:
            doc = pdfium.PdfDocument(data)
        except pdfium.PdfiumError:  # not a PDF PDFium opens: no page is a packed scan
            return []
        try:
            pages = [_page_jpeg_or_none(doc, index) for index in range(len(doc))]
        finally:
            doc.close()
    # a masked JPEG is not the page shown, for groundtruth as for page_scan (pypdf, unlocked)
    images = _document_images(data)
    return [None if images.get(index, UNKNOWN).masked else jpeg for index, jpeg in enumerate(pages)]


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
            image = _scan_image(page)
            return None if image is None else _embedded_jpeg(image)
        finally:
            page.close()
    except Exception:  # a page PDFium cannot load or read: not a packed scan
        return None
