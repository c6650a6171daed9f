"""A PDF archive for the document tests: every kind of document the operator must handle.

Texts travel in the PDFs' text layers (``tests/pdfs.make_pdf``), which the emulator's
groundtruth backend returns for OCR, so every row's text can be compared with what its page
says; page texts name their document and page, so a row in the wrong place shows.
"""

from __future__ import annotations

import io
from pathlib import Path

from pdfs import make_pdf


def page_text(name: str, page: int) -> str:
    return f"{name} page {page} of the archive"


def write_pdf_archive(root: Path) -> tuple[dict[tuple[str, int], str], dict[str, tuple[str, int]]]:
    """Write the archive; return (expected text by (path, page), expected invalid by path)."""
    import pypdf

    root.mkdir(parents=True, exist_ok=True)
    truth: dict[tuple[str, int], str] = {}
    for name, pages, pad in (
        ("one", 1, 0),
        ("five", 5, 0),
        ("twelve", 12, 0),
        ("forty", 40, 0),
        ("long160", 160, 0),
        ("big", 3, 8_100_000),  # over 8 MB: must be split (the padding is not referenced by a page)
        ("textlayer", 2, 0),
    ):
        texts = [page_text(name, n) for n in range(1, pages + 1)]
        path = root / f"{name}.pdf"
        path.write_bytes(make_pdf(texts, pad=pad))
        truth.update({(str(path), n): t for n, t in enumerate(texts, start=1)})

    writer = pypdf.PdfWriter(clone_from=io.BytesIO(make_pdf(["secret 1", "secret 2"])))
    writer.encrypt(user_password="open-sesame", owner_password="owner")
    sink = io.BytesIO()
    writer.write(sink)
    (root / "encrypted.pdf").write_bytes(sink.getvalue())
    (root / "damaged.pdf").write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 40)
    (root / "notes.pdf").write_text("these are my notes, not a PDF\n")
    invalid = {
        str(root / "encrypted.pdf"): ("encrypted_pdf", 2),
        str(root / "damaged.pdf"): ("corrupt_pdf", 1),
        str(root / "notes.pdf"): ("not_a_pdf", 1),
    }
    return truth, invalid
