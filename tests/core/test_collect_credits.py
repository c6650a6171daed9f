"""Credits of an extract whose answer holds pages we did not ask for.

Delix decides which pages an extraction without a page selection reads: a document it counts
differently than we do (a page tree whose /Count is wrong, repaired before sending since, or
any other reason) can come back with pages we never listed, charged and, when they fail,
refunded. The table's sums must still be what Delix charged and refunded.
"""

from __future__ import annotations

import logging

import pytest

from airflow_provider_delix.api.models import Extract, ExtractFile, ExtractFilePage
from airflow_provider_delix.core.collect import page_results


def _extract(pages: list[ExtractFilePage], cost: int, refund: int) -> Extract:
    return Extract(
        uuid="x-1",
        status="processed",
        file_type="documents",
        engine="danlin",
        language="fa",
        total_files=1,
        total_file_pages=len(pages),
        total_processing_pages=len(pages),
        initial_cost=cost,
        failed_pages=sum(p.status == "failed" for p in pages),
        returned_credits=refund,
        files=(ExtractFile("f-1", tuple(pages), None),),
    )


def test_a_refund_for_pages_we_did_not_ask_for_stays_in_the_table(caplog: pytest.LogCaptureFixture) -> None:
    answered = [ExtractFilePage(n, "processed", f"page {n}") for n in (1, 2, 3)]
    answered += [ExtractFilePage(n, "failed", None) for n in (4, 5)]  # never listed by us
    extract = _extract(answered, cost=500, refund=200)
    with caplog.at_level(logging.WARNING):
        results = page_results(extract, {"f-1": answered}, [("f-1", [1, 2, 3], False)])
    assert sorted(results) == [("f-1", 1), ("f-1", 2), ("f-1", 3)]
    assert sum(r.charged for r in results.values()) == 500
    assert sum(r.refunded for r in results.values()) == 200, "the refund is not lost from the table"
    assert (
        "answered 2 page(s) that were not requested; its cost (500 credits) is shared by the 3" in caplog.text
    )


def test_a_refund_goes_to_the_failed_pages_we_asked_for() -> None:
    answered = [ExtractFilePage(1, "processed", "one"), ExtractFilePage(2, "failed", None)]
    results = page_results(
        _extract(answered, cost=200, refund=100), {"f-1": answered}, [("f-1", [1, 2], False)]
    )
    assert (results["f-1", 1].refunded, results["f-1", 2].refunded) == (0, 100)


def test_a_page_answered_twice_keeps_its_processed_entry_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A processed page followed by a failed duplicate lost its text when the last entry won."""
    answered = [
        ExtractFilePage(2, "processed", "page two"),
        ExtractFilePage(1, "processed", "one"),
        ExtractFilePage(2, "failed", None),
        ExtractFilePage(1, "failed", None),
    ]
    extract = _extract(answered, cost=200, refund=100)
    with caplog.at_level(logging.WARNING):
        results = page_results(extract, {"f-1": answered}, [("f-1", [1, 2], False)])
    assert [(r.outcome.status, r.outcome.text) for r in results.values()] == [
        ("processed", "one"),
        ("processed", "page two"),
    ]
    assert sum(r.charged for r in results.values()) == 200, "charged once per requested page"
    assert sum(r.refunded for r in results.values()) == 100, "Delix's refund stays in the table, once"
    assert "Extract x-1 answered page(s) 1, 2 of file f-1 more than once" in caplog.text
