"""A stored PDF Delix counts other than we do is never extracted: its pages cannot be matched.

The upload answer names each stored file's ``page_count``. A document sent whole asks for "all
pages": Delix would charge its own count, and its page k need not be our page k. These tests
make the fake account count differently for one file and check that nothing is charged for it,
its rows say why, it is deleted, and the other files of the run are unaffected.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import fakes
import pytest
from fakes import PRICE_PER_PAGE, PRICE_PER_PDF_PAGE, FakeDelix
from test_document_pipeline import archive, assert_clean, charged_once, out, run, texts
from test_packing import archive as image_archive
from test_packing import run as run_images

from airflow_provider_delix.api.models import StoredFile
from airflow_provider_delix.core.codes import PageError
from airflow_provider_delix.core.table import read_table

__all__ = ["out"]  # the fixture, imported for the tests below

pytestmark = pytest.mark.timeout(120)


def miscount(monkeypatch: pytest.MonkeyPatch, when: Callable[[bytes], bool], by: int) -> None:
    """The fake account counts ``by`` pages more for stored PDFs ``when`` picks."""
    counted = fakes._pdf_page_count

    def count(data: bytes) -> int:
        pages = counted(data)
        return pages + by if when(data) else pages

    monkeypatch.setattr(fakes, "_pdf_page_count", count)


@pytest.mark.parametrize("by", [2, -1], ids=["delix-counts-more", "delix-counts-fewer"])
def test_a_document_delix_counts_otherwise_is_deleted_unread_and_says_why(
    monkeypatch: pytest.MonkeyPatch, out: str, tmp_path: Path, by: int
) -> None:
    refs, truth = archive(tmp_path / "pdfs", odd=3, fine=4)
    odd = (tmp_path / "pdfs" / "odd.pdf").read_bytes()
    miscount(monkeypatch, lambda data: data == odd, by)
    fake = FakeDelix()

    summary = run(fake, out, refs)

    frame = read_table(out).set_index(["source", "page_number"]).sort_index()
    odd_rows = frame.loc[str(tmp_path / "pdfs" / "odd.pdf")]
    assert list(odd_rows.index) == [1, 2, 3]
    assert set(odd_rows.status) == {"failed"} and set(odd_rows.error) == {PageError.PAGE_COUNT_MISMATCH}
    message = odd_rows.error_message.iloc[0]
    assert f"Delix counted {3 + by} page(s)" in message and "pypdf counts 3" in message
    assert "nothing charged" in message and "Traceback" not in message
    assert set(odd_rows.credits_charged) == {0} and odd_rows.file_uuid.notna().all()
    # never sent for extraction: no request names it, nothing of it was paid
    odd_uuids = {u for u, pages in fake.pdf_pages.items() if pages == 3 + by}
    assert odd_uuids and not any(u in odd_uuids for _, files in fake.document_requests for u, _ in files)
    # the other document is read as usual
    fine = {k: v for k, v in texts(out).items() if "fine.pdf" in k[0]}
    assert fine == {k: v for k, v in truth.items() if "fine.pdf" in k[0]}
    charged_once(fake, 4)
    assert summary.credits_charged == 4 * PRICE_PER_PDF_PAGE
    assert {k: v for k, v in summary.rows.items() if v} == {"failed": 3, "processed": 4}
    assert_clean(fake, out)

    uploads = fake.calls["upload_files"]
    again = run(fake, out, refs)  # settled: the same bytes would be counted the same way
    assert fake.calls["upload_files"] == uploads and sum(again.rows.values()) == 0


def test_a_pack_delix_counts_otherwise_goes_again_as_images(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    refs = image_archive(tmp_path / "scans", 12)
    miscount(monkeypatch, lambda _data: True, 1)  # every pack
    fake = FakeDelix()
    out = str(tmp_path / "out")

    summary = run_images(fake, out, refs, packing="pdf")

    frame = read_table(out)
    assert len(frame) == 12 and set(frame.status) == {"processed"}
    assert fake.calls["extract_documents"] == 0, "a pack whose pages cannot be matched was extracted"
    assert summary.credits_charged == 12 * PRICE_PER_PAGE and set(frame.credits_charged) == {PRICE_PER_PAGE}
    assert fake.stored == {}


def test_a_stored_pdf_without_a_page_count_is_read_as_usual(
    monkeypatch: pytest.MonkeyPatch, out: str, tmp_path: Path
) -> None:
    """An upload answer that leaves ``page_count`` out gives nothing to check: no mismatch."""
    refs, truth = archive(tmp_path / "pdfs", three=3)
    fake = FakeDelix()
    upload = fake.upload_files

    def without_counts(files: Any) -> list[Any]:
        return [
            StoredFile(r.uuid, r.extension, None) if isinstance(r, StoredFile) else r for r in upload(files)
        ]

    monkeypatch.setattr(fake, "upload_files", without_counts)
    run(fake, out, refs)
    assert texts(out) == truth
    charged_once(fake, 3)
    assert_clean(fake, out)
