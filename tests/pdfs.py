"""Build small, valid PDFs with a text layer for tests (ASCII text, Helvetica).

Plain Python, no Airflow: the core tests (``tests/core/core_pdfs.py``) build on it too.
"""

from __future__ import annotations


def make_pdf(pages: list[str], *, pad: int = 0) -> bytes:
    """A PDF with an ASCII text layer per page ("" = a page without text); ``pad`` adds a stream."""
    return text_pdf(pages, pad=pad)


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
    return raw_pdf(objects)


def raw_pdf(objects: list[bytes], *, startxref_off: int = 0) -> bytes:
    """Objects 1..n (1 the catalog) written out with an xref table; ``startxref_off`` moves the
    pointer to it, for a broken ``startxref`` that readers have to repair."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    trailer = (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref + startxref_off}\n%%EOF\n"
    )
    return bytes(out + trailer.encode())
