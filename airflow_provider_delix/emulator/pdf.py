"""Everything the emulator does with PDFs, behind one process-wide lock.

PDFium is not thread-safe (pypdfium2 says so explicitly), and the server is threaded, so
every call into it goes through ``_PDFIUM``. The work done under the lock is short: opening
a document is lazy, and rendering one page is tens of milliseconds.
"""

from __future__ import annotations

import threading

import pypdfium2 as pdfium

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


def page_jpeg(data: bytes, page_number: int) -> bytes | None:
    """The JPEG a scanned page is made of, as embedded (``/DCTDecode``), if it holds just one.

    A page made by embedding a JPEG losslessly (img2pdf, packed scans) carries the file's
    bytes unchanged, so the groundtruth backend can read that page the way it reads the JPEG.
    pypdf only parses here; PDFium is not involved, so no lock is needed.
    """
    import io

    import pypdf

    try:
        page = pypdf.PdfReader(io.BytesIO(data)).pages[page_number - 1]
        xobjects = page["/Resources"].get("/XObject")
        if xobjects is None:
            return None
        images = [x.get_object() for x in xobjects.get_object().values()]
        images = [x for x in images if x.get("/Subtype") == "/Image"]
        if len(images) != 1 or images[0].get("/Filter") != "/DCTDecode":
            return None
        raw: bytes = images[0].get_data()
        return raw
    except Exception:  # not a page of that shape: the caller falls back
        return None
