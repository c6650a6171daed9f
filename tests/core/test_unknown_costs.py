"""An extract that does not say its cost or refund: its pages are collected all the same.

``initial_cost`` missing or null used to throw the whole paid answer away (``malformed_answer``
rows, no extract uuid kept, the next run paying again), or, when missing, to be read as 0 (the
table hiding the charge). The rows now keep the text and the extract uuid, and the credits are
the vendor's example price per page, with a warning that says they are an estimate.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fakes import PRICE_PER_PAGE, PRICE_PER_PDF_PAGE, FakeDelix, source, text_of
from test_document_pipeline import archive, out, texts
from test_document_pipeline import run as run_documents
from test_pipeline import run, table

from airflow_provider_delix.api.models import Extract

pytestmark = pytest.mark.timeout(60)


__all__ = ["out"]  # the fixture, shared with test_document_pipeline.py


FIELDS = (
    "uuid",
    "status",
    "file_type",
    "engine",
    "language",
    "total_files",
    "total_file_pages",
    "total_processing_pages",
    "initial_cost",
    "failed_pages",
    "returned_credits",
)


def reanswered(extract: Extract, silent: tuple[str, ...], how: str) -> Extract:
    """The extract as the hook parses it from an answer whose ``silent`` fields are null or missing."""
    body: dict[str, Any] = {key: getattr(extract, key) for key in FIELDS}
    if extract.is_processed:
        body["files"] = [
            {
                "uuid": f.uuid,
                "pages": f.pages_url
                if f.pages is None
                else [{"number": p.number, "status": str(p.status), "text": p.text} for p in f.pages],
            }
            for f in extract.files
        ]
    for key in silent:
        if how == "null":
            body[key] = None
        else:
            body.pop(key)
    return replace(Extract.from_api({"data": body}), lost_attempts=extract.lost_attempts)


class SilentDelix(FakeDelix):
    """Answers extractions and polls without the fields named in ``silent`` (``how``: null or missing)."""

    def __init__(self, *silent: str, how: str = "null", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.silent, self.how = silent, how

    def extract_images(self, file_uuids: Any, engine: Any, language: Any) -> Extract:
        return reanswered(super().extract_images(file_uuids, engine, language), self.silent, self.how)

    def extract_documents(self, files: Any, engine: Any, language: Any) -> Extract:
        return reanswered(super().extract_documents(files, engine, language), self.silent, self.how)

    def get_extract(self, uuid: str) -> Extract:
        return reanswered(super().get_extract(uuid), self.silent, self.how)


@pytest.mark.parametrize("how", ["null", "missing"])
def test_an_image_extract_without_its_cost_keeps_its_text_and_records_the_example_price(
    out: str, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    fake = SilentDelix("initial_cost", "total_files", "total_file_pages", "total_processing_pages", how=how)
    with caplog.at_level(logging.WARNING):
        summary, error, _ = run(fake, out, [source("a", b"alpha"), source("b", b"beta")])
    assert error is None and summary is not None
    frame = table(out)
    assert list(frame.status) == ["processed"] * 2 and set(frame.text) == {
        text_of(b"alpha"),
        text_of(b"beta"),
    }
    assert frame.extract_uuid.notna().all() and frame.extract_uuid.nunique() == 1, "the uuid is kept"
    assert frame.credits_charged.sum() == 2 * PRICE_PER_PAGE
    assert "did not say what it cost" in caplog.text and "an estimate" in caplog.text
    paid = fake.calls["extract_images"]
    _, error, _ = run(fake, out, [source("a", b"alpha"), source("b", b"beta")], run_id="run-2")
    assert error is None and fake.calls["extract_images"] == paid, "a re-run does not pay again"


def test_a_processed_extract_without_its_refund_records_the_failed_pages_at_the_example_price(
    out: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake = SilentDelix("returned_credits", "failed_pages", how="missing")
    with caplog.at_level(logging.WARNING):
        summary, error, _ = run(fake, out, [source("ok", b"fine"), source("f", b"FAILPAGE")])
    assert error is None and summary is not None
    frame = table(out).set_index("source")
    assert frame.loc["f", "error"] == "page_failed" and frame.loc["f", "credits_refunded"] == PRICE_PER_PAGE
    assert frame.credits_refunded.sum() == PRICE_PER_PAGE, "not 0: Delix refunds a failed page"
    assert "did not say what it refunded" in caplog.text


def test_a_queued_document_extract_without_its_cost_is_priced_per_pdf_page(out: str, tmp_path: Path) -> None:
    """Queued (8 pages): the cost is read when the extract is polled, and it says nothing either."""
    fake = SilentDelix("initial_cost")
    refs, truth = archive(tmp_path, doc=8)
    summary = run_documents(fake, out, refs)
    assert texts(out) == truth and summary.rows["processed"] == 8
    frame = table(out)
    assert frame.extract_uuid.notna().all() and frame.extract_uuid.nunique() == 1
    assert frame.credits_charged.sum() == 8 * PRICE_PER_PDF_PAGE


def test_an_estimated_cost_is_never_below_the_refund_the_answer_gives(out: str) -> None:
    """No cost, but a refund larger than the example price: Delix charged at least that much,
    so no page ends with a negative net charge."""

    class Dearer(SilentDelix):
        def extract_images(self, file_uuids: Any, engine: Any, language: Any) -> Extract:
            extract = super().extract_images(file_uuids, engine, language)
            return replace(extract, returned_credits=(extract.failed_pages or 0) * 3 * PRICE_PER_PAGE)

    fake = Dearer("initial_cost")
    summary, error, _ = run(fake, out, [source("f", b"FAILPAGE")])
    assert error is None and summary is not None
    frame = table(out)
    assert frame.credits_refunded.sum() == 3 * PRICE_PER_PAGE
    assert (frame.credits_charged >= frame.credits_refunded).all(), "a negative net charge"


def test_an_estimated_cost_leaves_no_page_refunded_past_its_charge(out: str) -> None:
    """The estimate spread evenly, the refund on the failed page: moved so no row is net negative."""

    class Dearer(SilentDelix):
        def extract_images(self, file_uuids: Any, engine: Any, language: Any) -> Extract:
            extract = super().extract_images(file_uuids, engine, language)
            return replace(extract, returned_credits=(extract.failed_pages or 0) * 3 * PRICE_PER_PAGE)

    fake = Dearer("initial_cost")
    summary, error, _ = run(fake, out, [source("ok", b"fine"), source("f", b"FAILPAGE")])
    assert error is None and summary is not None
    frame = table(out).set_index("source")
    assert frame.extract_uuid.nunique() == 1, "one request for both"
    assert (frame.credits_charged >= frame.credits_refunded).all(), "a negative net charge"
    assert (
        frame.credits_charged.sum() == 3 * PRICE_PER_PAGE
        and frame.credits_refunded.sum() == 3 * PRICE_PER_PAGE
    )
