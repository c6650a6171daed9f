"""Small PDFs for the core tests, built with pypdf and Pillow only (what the core venv has).

``text_pdf`` (re-exported) is the text-layer builder of ``tests/pdfs.py``, plain Python and on
``sys.path`` in both lanes through ``tests/conftest.py``; ``image_pdf`` makes scans without a
text layer; ``page_texts`` reads a PDF back, so a test can check which original page each page
of a part is. Module name distinct from ``tests/pdfs.py``: both folders end up on ``sys.path``.
"""

from __future__ import annotations

import io

from pdfs import text_pdf

__all__ = [
    "damaged_pdf",
    "document",
    "encrypted",
    "image_pdf",
    "merged",
    "page_text",
    "page_texts",
    "text_pdf",
]
from PIL import Image, ImageDraw


def page_text(name: str, page: int) -> str:
    """A text that names its document and page: a row in the wrong place shows."""
    return f"{name} page {page} of the archive"


def document(name: str, pages: int, **kwargs: int) -> bytes:
    """A text-layer PDF whose page n says ``page_text(name, n)``."""
    return text_pdf([page_text(name, n) for n in range(1, pages + 1)], **kwargs)


def image_pdf(pages: int) -> bytes:
    """A scan: one image per page, no text layer (what ``auto`` sends to OCR)."""
    images = []
    for n in range(pages):
        im = Image.new("L", (240, 120), 255)
        ImageDraw.Draw(im).text((10, 10), f"scan {n + 1}", fill=0)
        images.append(im)
    sink = io.BytesIO()
    images[0].save(sink, "PDF", save_all=True, append_images=images[1:])
    return sink.getvalue()


def merged(*pdfs: bytes) -> bytes:
    """The pages of several PDFs in one document, in order."""
    import pypdf

    writer = pypdf.PdfWriter()
    for data in pdfs:
        writer.append(pypdf.PdfReader(io.BytesIO(data)))
    sink = io.BytesIO()
    writer.write(sink)
    return sink.getvalue()


def encrypted(data: bytes, user_password: str = "open-sesame", algorithm: str = "RC4-128") -> bytes:
    """``data`` encrypted (RC4 by default; AES needs pypdf's crypto extra, a dependency)."""
    import pypdf

    writer = pypdf.PdfWriter(clone_from=io.BytesIO(data))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm=algorithm)
    sink = io.BytesIO()
    writer.write(sink)
    return sink.getvalue()


def page_texts(data: bytes) -> list[str]:
    """The text layer of every page (stripped), read back with pypdf."""
    import pypdf

    reader = pypdf.PdfReader(io.BytesIO(data))
    return [(page.extract_text() or "").strip() for page in reader.pages]


def damaged_pdf(pages: int, damaged: int, depth: int = 3000) -> bytes:
    """Blank pages; page ``damaged`` uses an object of arrays nested ``depth`` deep. pypdf opens
    the file and counts its pages, but copying that page into a new file exceeds Python's
    recursion limit: a page pypdf reads and cannot write, as in some damaged real scans."""
    deep = 3 + pages
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{3 + i} 0 R" for i in range(pages))
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode())
    for n in range(1, pages + 1):
        extra = f" /Deep {deep} 0 R" if n == damaged else ""
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 100 100]{extra} >>".encode())
    objects.append(b"[" * depth + b"1" + b"]" * depth)
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    out.write(b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets))
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()
