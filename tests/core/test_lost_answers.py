"""Extractions whose answer was lost after sending: rows, credits and the counts of what is at risk.

The fake account plays the hook's side of the rule (a paid request re-sent at most once):
``LOSTONCE`` content is charged twice and answered once, ``LOSTTWICE`` content is charged twice
and never answered (a maybe-applied ``DelixTransientError`` with ``lost_attempts == 2``). The
table must equal what the fake charged, the manifest must say how much of it is at risk, and
pages that never got an answer are failed ``answer_lost`` rows the next run sends again.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

import pytest
from fakes import PRICE_PER_PAGE, FakeDelix, images, source
from test_pipeline import assert_clean, run, table

from airflow_provider_delix.api.errors import (
    DelixApiError,
    DelixError,
    DelixInsufficientCreditsError,
    DelixNotFoundError,
    DelixTransientError,
)
from airflow_provider_delix.api.models import ErrorCode
from airflow_provider_delix.core.manifest import build_manifest
from airflow_provider_delix.core.progress import ArchiveProgress
from airflow_provider_delix.core.run_stats import Progress
from airflow_provider_delix.core.summary import CreditsExhaustedError


def _charged(fake: FakeDelix) -> int:
    return PRICE_PER_PAGE * sum(fake.extracted.values())


def test_an_answer_lost_once_is_paid_twice_and_the_table_and_manifest_say_so(out: str) -> None:
    fake = FakeDelix()
    sources = [*images(4), source("lost", b"LOSTONCE"), *images(5, prefix="tail")]
    summary, error, _ = run(fake, out, sources, max_concurrency=7)  # full chunks of 5
    assert error is None and summary is not None
    rows = table(out)
    assert len(rows) == 10 and (rows["status"] == "processed").all()
    assert sorted(fake.extracted.values()) == [1] * 5 + [2] * 5, "the lost chunk was charged twice"
    assert int(rows["credits_charged"].sum()) == _charged(fake) == 15 * PRICE_PER_PAGE
    assert summary.credits_charged == _charged(fake)
    assert (summary.requests_in_doubt, summary.pages_in_doubt) == (1, 5)
    assert summary.credits_at_risk == 5 * PRICE_PER_PAGE, "the lost send is what may not have been charged"
    manifest = build_manifest("file:///t", summary)
    assert manifest["credits_at_risk"] == 1000 and manifest["requests_in_doubt"] == 1
    assert_clean(fake)


def test_an_answer_lost_twice_gives_answer_lost_rows_that_the_next_run_sends_again(out: str) -> None:
    fake = FakeDelix()
    sources = [*images(4), source("lost", b"LOSTTWICE"), *images(5, prefix="tail")]
    summary, error, _ = run(fake, out, sources, max_concurrency=7)
    assert error is None and summary is not None, "a lost answer costs its pages, not the run"
    rows = table(out)
    lost = rows[rows["error"] == "answer_lost"]
    assert len(rows) == 10 and len(lost) == 5 and (lost["status"] == "failed").all()
    assert (lost["credits_charged"] == 2 * PRICE_PER_PAGE).all(), "both sends are assumed charged"
    assert lost["error_message"].str.contains("lost after sending 2 time").all()
    assert int(rows["credits_charged"].sum()) == _charged(fake) == 15 * PRICE_PER_PAGE
    assert (summary.requests_in_doubt, summary.pages_in_doubt, summary.credits_at_risk) == (2, 5, 2000)
    assert summary.pages_left == 0 and summary.rows["failed"] == 5
    assert_clean(fake)

    # The next run on the same output sends exactly those pages again (the service recovered:
    # same sha256, other bytes) and keeps one row per page.
    healed = [
        *images(4),
        replace(source("lost", b"healed"), sha256=sources[4].sha256),
        *images(5, prefix="tail"),
    ]
    again = FakeDelix()
    summary2, error2, _ = run(again, out, healed)
    assert error2 is None and summary2 is not None
    assert summary2.pages_resumed == 5 and summary2.rows["processed"] == 5
    assert sum(again.extracted.values()) == 5 and summary2.credits_at_risk == 0
    final = table(out)
    assert len(final) == 10 and (final["status"] == "processed").all()
    # The superseded rows' assumed charge moves to the pages' new rows: the table still adds up
    # to everything charged, while the second run's own figures are what it spent.
    assert int(final["credits_charged"].sum()) == _charged(fake) + _charged(again), (
        "the lost sends stay counted"
    )
    assert sorted(final["credits_charged"]) == [PRICE_PER_PAGE] * 5 + [3 * PRICE_PER_PAGE] * 5
    assert summary2.credits_charged == _charged(again)


def test_pages_lost_in_two_runs_keep_every_charge_in_their_one_row(out: str) -> None:
    """Each superseded row hands its credits on: three runs, one row per page, the table equals the bill."""
    lost = source("lost", b"LOSTTWICE")
    fakes = [FakeDelix(), FakeDelix()]
    for fake in fakes:  # lost twice in each of two runs
        summary, error, _ = run(fake, out, [lost])
        assert error is None and summary is not None and summary.rows["failed"] == 1
        rows = table(out)
        assert len(rows) == 1 and rows["error"].tolist() == ["answer_lost"]
        assert summary.credits_charged == _charged(fake) == 2 * PRICE_PER_PAGE, "each run reports its own"
    assert int(table(out)["credits_charged"].sum()) == 4 * PRICE_PER_PAGE

    healed = FakeDelix()
    summary, error, _ = run(healed, out, [replace(source("lost", b"healed"), sha256=lost.sha256)])
    assert error is None and summary is not None and summary.rows["processed"] == 1
    rows = table(out)
    assert len(rows) == 1 and rows["status"].tolist() == ["processed"]
    assert int(rows["credits_charged"].sum()) == sum(map(_charged, [*fakes, healed])) == 5 * PRICE_PER_PAGE

    again, error, _ = run(FakeDelix(), out, [lost])  # done: nothing is sent, nothing carried again
    assert error is None and again is not None and again.pages_resumed == 1
    assert int(table(out)["credits_charged"].sum()) == 5 * PRICE_PER_PAGE


def test_a_lost_send_whose_resend_is_refused_is_carried_by_the_pages(out: str) -> None:
    """The chunk's lost send (5 pages) is assumed charged, the re-send refused (BAD_INPUT): its
    pages are not sent again in the run (a new request would bring a re-send of its own), they
    get answer_lost rows holding the lost send, and the next run sends them."""
    fake = FakeDelix()
    sources = [*images(4), source("bad", b"LOSTBAD"), *images(5, prefix="tail")]
    summary, error, _ = run(fake, out, sources, max_concurrency=7)
    assert error is None and summary is not None
    rows = table(out).set_index("source")
    assert int(rows["credits_charged"].sum()) == _charged(fake) == 5 * 200 + 5 * 200
    held = rows[~rows.index.str.startswith("tail")]
    assert len(held) == 5 and set(held["error"]) == {"answer_lost"} and (held["status"] == "failed").all()
    assert (held["credits_charged"] == 200).all() and held["error_message"].str.contains(
        "bad input An earlier send"
    ).all()
    assert (summary.requests_in_doubt, summary.pages_in_doubt, summary.credits_at_risk) == (1, 5, 1000)
    assert len(fake.extract_requests) == 2, "the chunk's request and the tail's: nothing sent one by one"
    assert_clean(fake)


class _LostThenRefused(FakeDelix):
    """The hook's side of the rule: the first request naming ``LOSTREF`` content is applied
    (charged) and its answer lost, and its re-send is refused (``refusal``); every later
    request naming it is applied and lost on both of its sends (charged twice)."""

    def __init__(self, refusal: str) -> None:
        super().__init__()
        self.refusal, self.first = refusal, True

    def extract_images(self, file_uuids: Any, engine: Any, language: Any) -> Any:
        with self.lock:
            datas = [self.stored.get(u, b"") for u in file_uuids]
        if not any(d.startswith(b"LOSTREF") for d in datas):
            return super().extract_images(file_uuids, engine, language)
        with self.lock:
            self.extract_requests.append(list(file_uuids))
            sends, first, self.first = (1 if self.first else 2), self.first, False
            for d in datas:
                self.extracted[hashlib.sha256(d).hexdigest()] += sends
        error: DelixError
        if not first:
            error = DelixTransientError("Delix did not answer (read timeout)", maybe_applied=True)
            error.lost_attempts = 2
        elif self.refusal == "404":
            with self.lock:
                for u in file_uuids:
                    self.stored.pop(u, None)  # the re-send finds the files gone
            error = DelixNotFoundError("404", status_code=404)
        else:
            error = DelixApiError("refused", error=self.refusal, status_code=422)
        error.paid, error.lost_attempts = True, max(error.lost_attempts, 1)
        raise error


@pytest.mark.parametrize("refusal", ["GENERAL_EXCEPTION", "BAD_INPUT", "404"])
def test_a_page_is_paid_at_most_twice_when_the_resend_of_a_lost_send_is_refused(
    out: str, refusal: str
) -> None:
    """Lost, then refused (one by one next) or gone (re-upload next): a new request for those
    pages would be re-sent after its own lost answer, and the page paid three times."""
    fake = _LostThenRefused(refusal)
    sources = [*images(4), source("lost", b"LOSTREF")]
    summary, error, _ = run(fake, out, sources, max_concurrency=7, max_failed_ratio=None)  # one chunk
    assert error is None and summary is not None
    assert max(fake.extracted.values()) <= 2, f"a page was paid {max(fake.extracted.values())} times"
    assert len(fake.extract_requests) == 1 and fake.calls["upload_files"] == 1, "nothing sent again"
    rows = table(out)
    assert len(rows) == 5 and set(rows["error"]) == {"answer_lost"} and (rows["status"] == "failed").all()
    assert (rows["credits_charged"] == PRICE_PER_PAGE).all(), "each holds its share of the lost send"
    assert int(rows["credits_charged"].sum()) == summary.credits_charged == _charged(fake)
    assert (summary.requests_in_doubt, summary.pages_in_doubt, summary.credits_at_risk) == (1, 5, 1000)
    assert summary.pages_left == 0 and summary.rows["failed"] == 5
    assert_clean(fake)

    # The next run sends them again (the service recovered), and each row carries both charges.
    _next_run_reads_them(out, sources, fake)


def test_a_lost_send_of_pages_that_get_no_answer_stays_on_record(out: str) -> None:
    """The lost send used the last credits and the re-send was refused: the pages got no answer,
    but the lost send is assumed charged. Their answer_lost rows hold it; the next run's rows
    carry it on and replace them."""

    class LastCredits(FakeDelix):
        def extract_images(self, file_uuids: Any, engine: Any, language: Any) -> Any:
            with self.lock:
                datas = [self.stored.get(u, b"") for u in file_uuids]
            if not any(d.startswith(b"LOSTNOCRED") for d in datas):
                return super().extract_images(file_uuids, engine, language)
            with self.lock:
                for d in datas:
                    self.extracted[hashlib.sha256(d).hexdigest()] += 1  # the lost send, charged
            refused = DelixInsufficientCreditsError("no credits", error=ErrorCode.NO_SUFFICIENT_CREDITS)
            refused.lost_attempts = 1
            raise refused

    fake = LastCredits()
    sources = [*images(4), source("lost", b"LOSTNOCRED")]
    summary, error, _ = run(fake, out, sources, max_concurrency=7)
    assert isinstance(error, CreditsExhaustedError) and summary is not None
    rows = table(out)
    assert len(rows) == 5 and set(rows["error"]) == {"answer_lost"}
    assert (
        int(rows["credits_charged"].sum()) == summary.credits_charged == _charged(fake) == 5 * PRICE_PER_PAGE
    )
    assert summary.credits_at_risk == 5 * PRICE_PER_PAGE and summary.pages_left == 5, "left: re-run them"

    _next_run_reads_them(out, sources, fake)


def _next_run_reads_them(out: str, sources: list[Any], fake: FakeDelix) -> None:
    """The next run, the service recovered, sends the lost page again; every row is processed
    and the table holds both runs' charges (the lost send carried on)."""
    healed = FakeDelix()
    again, error, _ = run(
        healed, out, [*images(4), replace(source("lost", b"fine"), sha256=sources[4].sha256)]
    )
    assert error is None and again is not None and again.rows["processed"] == 5
    final = table(out)
    assert len(final) == 5 and (final["status"] == "processed").all()
    assert int(final["credits_charged"].sum()) == _charged(fake) + _charged(healed)


def test_a_request_that_never_reached_delix_is_not_in_doubt(out: str) -> None:
    fake = FakeDelix()
    summary, _error, _ = run(fake, out, [*images(4), source("flaky", b"TRANSIENT")], max_concurrency=7)
    assert summary is not None and summary.pages_left == 5
    assert (summary.pages_in_doubt, summary.requests_in_doubt, summary.credits_at_risk) == (0, 0, 0)


def test_the_progress_line_shows_credits_at_risk_once_there_are_any(tmp_path: object) -> None:
    line = ArchiveProgress([], emit=lambda _line: None)
    assert "at risk" not in line.describe(Progress(5, 10, 1.0, 5.0, 1000, 0))
    assert line.describe(Progress(5, 10, 1.0, 5.0, 2000, 0, credits_at_risk=1000)).endswith(
        "credits 2000 charged / 0 refunded / 1000 at risk"
    )
