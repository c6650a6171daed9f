"""What pypdf logs while a PDF is prepared is logged once per document, naming it.

Before, a run over real PDFs left lines such as ``pypdf._cmap: Got invalid hex string: Odd-length
string (b'041')`` in the task log, dozens of them, naming no file or page. These tests build
PDFs pypdf repairs while reading them (a ToUnicode CMap with an odd-length hex string, read
with each page's text layer; a wrong ``startxref``), prepare them on several threads at once,
and check that each document's messages come out as one line naming it, counted and placed.
"""

from __future__ import annotations

import logging
from pathlib import Path

import fsspec
import pytest
from pdfs import raw_pdf

from airflow_provider_delix.core.inputs import InputRef
from airflow_provider_delix.core.options import RunOptions
from airflow_provider_delix.core.pipeline_prefetch import prepare_in_parallel
from airflow_provider_delix.core.prepare import prepare_source
from airflow_provider_delix.core.prepare_pdf import PreparedDocument, prepare_document

NOTES_LOG = "airflow_provider_delix.core.pdf_notes"
AUTO = RunOptions(kind="documents", engine="auto")  # reads every page's text layer, and its CMap
DANLIN = RunOptions(kind="documents", engine="danlin")


def cmap_pdf(pages: int, bad: bytes = b"041", *, startxref_off: int = 0) -> bytes:
    """Text pages whose font's ToUnicode maps ``A`` to an odd-length hex string: pypdf warns on
    each page whose text it reads, and reads the rest (``B``) fine."""
    cmap = (
        b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n"
        b"1 begincodespacerange\n<00> <FF>\nendcodespacerange\n"
        b"2 beginbfchar\n<41> <" + bad + b">\n<42> <0042>\nendbfchar\n"
        b"endcmap CMapName currentdict /CMap defineresource pop end end"
    )
    font, kids = 3 + 2 * pages, " ".join(f"{3 + 2 * i} 0 R" for i in range(pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode(),
    ]
    for i in range(pages):
        text = f"BT /F1 24 Tf 72 700 Td ({'AB' * 20} page {i + 1}) Tj ET".encode()
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font} 0 R >> >> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(text) + text + b"\nendstream")
    objects.append(
        f"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /ToUnicode {font + 1} 0 R >>".encode()
    )
    objects.append(b"<< /Length %d >>\nstream\n" % len(cmap) + cmap + b"\nendstream")
    return raw_pdf(objects, startxref_off=startxref_off)


def prepared(path: Path, data: bytes, options: RunOptions) -> PreparedDocument:
    path.write_bytes(data)
    ref = InputRef(source=str(path), fs=fsspec.filesystem("file"), path=str(path))
    return prepare_document(ref, options)


def notes(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == NOTES_LOG and r.levelno == logging.WARNING]


def unattributed(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("pypdf")]


def test_a_warning_repeated_on_every_page_is_one_line_naming_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        doc = prepared(tmp_path / "cmap.pdf", cmap_pdf(60), AUTO)
    assert [p.engine for p in doc.parts] == ["probe"]  # the text layer was read: B's are text
    assert unattributed(caplog) == []  # no pypdf line naming no file
    (line,) = notes(caplog)
    assert str(tmp_path / "cmap.pdf") in line
    assert "pypdf._cmap: Got invalid hex string" in line and "b'041'" in line
    assert "(60x, pages 1-60)" in line


def test_a_warning_said_opening_the_document_names_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        doc = prepared(tmp_path / "xref.pdf", cmap_pdf(2, startxref_off=7), DANLIN)
    assert len(doc.parts) == 1 and not doc.pages  # repaired by pypdf, sent as is
    assert unattributed(caplog) == []
    (line,) = notes(caplog)
    assert str(tmp_path / "xref.pdf") in line and "pypdf._reader" in line
    assert "page" not in line.split(": ", 1)[1].split("pypdf._reader", 1)[0]  # said of the document


def test_a_pdf_given_to_image_extraction_names_the_file_too(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = cmap_pdf(2, startxref_off=7)
    ref = InputRef(source="scans/xref.pdf", fs=fsspec.filesystem("memory"), path="/nowhere")
    with caplog.at_level(logging.WARNING):
        source = prepare_source(ref, data)
    assert [p.page_number for p in source.pages] == [1, 2]  # counted, each an invalid row
    assert unattributed(caplog) == []
    (line,) = notes(caplog)
    assert "scans/xref.pdf" in line and "pypdf._reader" in line


def test_documents_prepared_on_several_threads_each_get_their_own_messages(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each document's CMap breaks differently, so a message logged with the wrong file shows."""
    tokens = {f"doc{n}.pdf": f"{n:02X}1".encode() for n in range(8)}
    for name, token in tokens.items():
        (tmp_path / name).write_bytes(cmap_pdf(3 + len(name) % 2, bad=token))
    refs = [InputRef(source=name, fs=fsspec.filesystem("file"), path=str(tmp_path / name)) for name in tokens]
    with caplog.at_level(logging.WARNING):
        docs = list(prepare_in_parallel(refs, lambda ref: prepare_document(ref, AUTO), workers=2))
    assert all(d.parts for d in docs)
    assert unattributed(caplog) == []
    lines = notes(caplog)
    assert len(lines) == len(tokens)
    for name, token in tokens.items():
        (line,) = [line for line in lines if f"PDF {name}:" in line]
        assert repr(token) in line and "(3x, pages 1-3)" in line
        assert all(repr(other) not in line for other in tokens.values() if other != token)


def test_one_form_said_with_many_values_is_one_entry_and_the_values_go_to_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A broken CMap says "odd-length line b'0003'", "... b'2000'" and 50 more: one entry."""
    from airflow_provider_delix.core import pdf_notes

    with caplog.at_level(logging.DEBUG, logger=NOTES_LOG), pdf_notes.document("varied.pdf"):
        for n in range(1, 31):
            with pdf_notes.place(n):
                logging.getLogger("pypdf._reader").warning("Ignoring wrong pointing object %d 0", n)
        with pdf_notes.place(pdf_notes.pages_label([1, 2, 3])):
            logging.getLogger("pypdf._writer").warning("shared")
    assert unattributed(caplog) == []
    (line,) = notes(caplog)
    assert line == (
        "pypdf said 31 thing(s) reading PDF varied.pdf: pypdf._reader: Ignoring wrong pointing object 1 0 "
        "(30x in this form, 30 different, first shown, pages 1-30); "
        "pypdf._writer: shared (pages 1-3 (a part))"
    )
    (full,) = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG and r.name == NOTES_LOG]
    assert "object 30 0" in full and full.startswith("pypdf's messages reading PDF varied.pdf, in full: ")


def test_the_line_is_bounded_and_says_what_it_leaves_to_the_debug_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from airflow_provider_delix.core import pdf_notes

    with caplog.at_level(logging.DEBUG, logger=NOTES_LOG), pdf_notes.document("big.pdf"):
        for n in range(1, 31):
            logging.getLogger("pypdf._reader").warning(f"form number {n}")
    (line,) = notes(caplog)
    assert line.startswith("pypdf said 30 thing(s) reading PDF big.pdf: ")
    assert "form number 12" in line and "form number 13" not in line
    assert f"and {30 - pdf_notes.MAX_MESSAGES} more message(s), said 18 time(s) (all at DEBUG)" in line
    (full,) = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG and r.name == NOTES_LOG]
    assert "form number 30" in full


_FIRST_DOCUMENT = r"""
import logging, struct, sys, zlib
import fsspec
said = []
class Keep(logging.Handler):
    def emit(self, record): said.append((record.name, record.getMessage()))
logging.getLogger().addHandler(Keep()); logging.getLogger().setLevel(logging.WARNING)
out = bytearray(b"%PDF-1.5\n"); offsets = {}
bodies = {1: b"<< /Type /Catalog /Pages 2 0 R >>", 2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
          3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>"}
for n, body in bodies.items():
    offsets[n] = len(out); out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
offsets[4] = len(out)
rows = b"".join(struct.pack(">BIH", *r) for r in [(0, 0, 65535)] + [(1, offsets[n], 0) for n in (1, 2, 3, 4)])
data = zlib.compress(rows)
out += (b"4 0 obj\n<< /Type /XRef /Size 5 /W [1 4 2] /Root 1 0 R /Filter /FlateDecode /DecodeParms 7 "
        b"/Length %d >>\nstream\n" % len(data) + data)
out += b"\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n" % offsets[4]
path = sys.argv[1]
open(path, "wb").write(bytes(out))
from airflow_provider_delix.core.inputs import InputRef
from airflow_provider_delix.core.options import RunOptions
from airflow_provider_delix.core.prepare_pdf import prepare_document
prepare_document(InputRef(path, fsspec.filesystem("file"), path), RunOptions(kind="documents"))
unnamed = [m for n, m in said if n.startswith("pypdf")]
named = [m for n, m in said if path in m]
print("unnamed", len(unnamed), "named", len(named))
"""


def test_the_first_document_of_a_process_names_a_module_pypdf_imports_late(tmp_path: Path) -> None:
    """``pypdf.filters`` is imported only when a stream is first decoded: in a fresh process its
    warning about the first document's xref stream must be named too, not logged bare."""
    import subprocess
    import sys

    path = tmp_path / "xref_stream.pdf"
    done = subprocess.run(
        [sys.executable, "-c", _FIRST_DOCUMENT, str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-4:] == ["unnamed", "0", "named", "1"], done.stdout
