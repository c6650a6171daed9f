"""Small PDFs for the core tests, built with pypdf and Pillow only (what the core venv has).

``text_pdf`` is the text-layer builder of ``tests/pdfs.py`` (copied: tests/core imports nothing
from the Airflow-side test folders), plus per-page padding; ``image_pdf`` makes scans without a
text layer. ``page_texts`` reads a PDF back, so a test can check which original page each page
of a part is. Module name distinct from ``tests/pdfs.py``: both folders end up on ``sys.path``.
"""

from __future__ import annotations

import io

from PIL import Image, ImageDraw


def page_text(name: str, page: int) -> str:
    """A text that names its document and page: a row in the wrong place shows."""
    return f"{name} page {page} of the archive"


def text_pdf(pages: list[str], *, pad: int = 0, page_pad: int | list[int] = 0) -> bytes:
    """A PDF with an ASCII text layer per page ("" = a page without text).

    ``pad`` adds a stream no page uses (the file is big, a part written from it is not);
    ``page_pad`` gives every page (or page i the i-th) a resource stream of that many bytes,
    which travels with the page into any part.
    """
    count = len(pages)
    pads = page_pad if isinstance(page_pad, list) else [page_pad] * count
    per_page = 3 if any(pads) else 2  # page, contents (, padding)
    font_id = 3 + per_page * count
    kids = " ".join(f"{3 + per_page * i} 0 R" for i in range(count))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {count} >>".encode(),
    ]
    for i, text in enumerate(pages):
        first = 3 + per_page * i
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = f"BT /F1 24 Tf 72 700 Td ({escaped}) Tj ET".encode("latin-1") if text else b""
        xobject = f"/XObject << /Pad {first + 2} 0 R >> " if per_page == 3 else ""
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {first + 1} 0 R "
            f"/Resources << /Font << /F1 {font_id} 0 R >> {xobject}>> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        if per_page == 3:  # a form XObject the page never draws: bytes that travel with the page
            objects.append(
                b"<< /Type /XObject /Subtype /Form /BBox [0 0 1 1] /Length %d >>\nstream\n" % pads[i]
                + b"%" * pads[i]
                + b"\nendstream"
            )
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    if pad:
        objects.append(b"<< /Length %d >>\nstream\n" % pad + b"\0" * pad + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


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


def encrypted(data: bytes, user_password: str = "open-sesame") -> bytes:
    """``data`` encrypted (RC4: pypdf does it without the optional crypto packages)."""
    import pypdf

    writer = pypdf.PdfWriter(clone_from=io.BytesIO(data))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="RC4-128")
    sink = io.BytesIO()
    writer.write(sink)
    return sink.getvalue()


def page_texts(data: bytes) -> list[str]:
    """The text layer of every page (stripped), read back with pypdf."""
    import pypdf

    reader = pypdf.PdfReader(io.BytesIO(data))
    return [(page.extract_text() or "").strip() for page in reader.pages]
