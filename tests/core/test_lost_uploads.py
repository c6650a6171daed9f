"""Uploads whose answer was lost after sending: the copies they may have stored are in doubt.

The fake plays the hook's side of the rule (an upload re-sent at most once after a
maybe-applied failure, ``api/retry.py``): ``ULOST1`` content is stored twice and answered
once (``lost_attempts == 1`` on the answer), ``ULOST2`` content is stored twice and not
answered (a maybe-applied ``DelixTransientError`` with ``lost_attempts == 2``) on its first
call only, ``ULOSTX`` on every call. Every copy no answer named must be counted in
``files_in_doubt``, exactly once, and a chunk whose call lost both answers is sent again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import pytest
from fakes import FakeDelix, images, source
from registry_helpers import registry
from test_document_pipeline import archive as document_archive
from test_document_pipeline import run as run_documents
from test_pipeline import run, table

from airflow_provider_delix.api.errors import DelixTransientError
from airflow_provider_delix.api.models import UploadAnswer
from airflow_provider_delix.core.chunk_upload import LOST_UPLOAD_ROUNDS


class LosingUploads(FakeDelix):
    """Stores an upload holding ``LOST*`` content once per lost send before the answered one."""

    def __init__(self) -> None:
        super().__init__()
        self.lost_calls = 0

    def upload_files(self, files: Any) -> Any:
        marker = b"".join(data for _, data in files)
        if b"ULOST1" in marker:
            super().upload_files(files)  # the lost send: stored, its answer never arrives
            return UploadAnswer(super().upload_files(files), lost_attempts=1)
        if b"ULOSTX" in marker or (b"ULOST2" in marker and self.lost_calls == 0):
            self.lost_calls += 1
            lose_both_sends(super().upload_files, files)
        return super().upload_files(files)


def lose_both_sends(upload: Callable[[Any], Any], files: Any) -> NoReturn:
    """What the hook does with an upload whose two sends both lose their answer: each send
    stores the files, then a maybe-applied error with ``lost_attempts == 2`` is raised."""
    upload(files)
    upload(files)
    error = DelixTransientError("a gateway answered 504 twice", maybe_applied=True)
    error.lost_attempts = 2
    raise error


def test_an_upload_answered_on_its_resend_counts_the_lost_copy_in_doubt(out: str) -> None:
    fake = LosingUploads()
    sources = [*images(4), source("lost", b"ULOST1")]  # one chunk of 5 files
    summary, error, _ = run(fake, out, sources, max_concurrency=5)
    assert error is None and summary is not None and summary.pages_left == 0
    assert summary.files_in_doubt == 5, "the lost send may have stored all 5 files, unnamed"


def test_a_chunk_whose_upload_lost_both_answers_is_sent_again_in_the_same_run(
    out: str, tmp_path: Path
) -> None:
    fake = LosingUploads()
    sources = [*images(4), source("lost", b"ULOST2")]  # one chunk of 5 files
    summary, error, _ = run(fake, out, sources, max_concurrency=5, registry=registry(tmp_path))
    assert error is None and summary is not None and summary.pages_left == 0
    assert fake.lost_calls == 1 and len(table(out)) == 5, "the second call was answered: every page has a row"
    assert summary.files_in_doubt == 10, "two lost sends of 5 files: up to 10 unnamed copies"
    assert summary.orphans_deleted == 10 and fake.stored == {}, "the sweep deleted the copies"
    assert summary.credits_charged == 5 * 200, "the pages were paid once"


def test_an_upload_that_keeps_losing_its_answers_is_left_to_the_next_try(out: str, tmp_path: Path) -> None:
    fake = LosingUploads()
    sources = [*images(4), source("lost", b"ULOSTX")]
    reg = registry(tmp_path)
    summary, _error, _ = run(fake, out, sources, max_concurrency=5, max_failed_ratio=None, registry=reg)
    assert summary is not None and summary.pages_left == 5
    assert fake.lost_calls == LOST_UPLOAD_ROUNDS, "a bounded number of calls, not one per retry"
    assert summary.files_in_doubt == 2 * 5 * LOST_UPLOAD_ROUNDS, "every lost send's copies, once"
    assert fake.stored == {}, "every copy swept"
    again, _error, _ = run(FakeDelix(), out, sources, max_concurrency=5, registry=reg)
    assert again is not None and again.files_in_doubt == 0, "counted by the attempt that lost them, once"


@pytest.mark.parametrize("sweep", ["no registry", "foreign_uploaders"])
def test_a_lost_upload_is_not_sent_again_when_no_sweep_deletes_its_copies(
    out: str, tmp_path: Path, sweep: str
) -> None:
    # Unclaimed files are only reported (or nothing sweeps): each call could leave 10 more
    # copies on the shared account for 24 h, so the chunk is left to the next try.
    fake = LosingUploads()
    reg = registry(tmp_path, foreign_uploaders=True) if sweep == "foreign_uploaders" else None
    sources = [*images(4), source("lost", b"ULOST2")]
    summary, _error, _ = run(fake, out, sources, max_concurrency=5, max_failed_ratio=None, registry=reg)
    assert summary is not None and summary.pages_left == 5 and fake.lost_calls == 1
    assert summary.files_in_doubt == 10


def test_a_deferrable_run_leaves_a_lost_upload_to_its_next_attempt(out: str, tmp_path: Path) -> None:
    """A chunk that gave its slots back could see them go to a chunk whose queued extract then
    parks (keeping them until a later attempt) and wait for ever; keeping them instead, it could
    not wait for the sweep through the budget and re-sent at once, piling copies up. A run that
    parks extracts leaves the chunk to its next attempt (which it makes after the deferral)."""
    refs, _truth = document_archive(tmp_path / "docs", lost=12, a=12, b=12)
    lost = (tmp_path / "docs" / "lost.pdf").read_bytes()
    fake = LosingDocuments(lost, queue_polls=10**6)
    done: dict[str, Any] = {}

    def go() -> None:
        try:
            done["summary"] = run_documents(
                fake,
                out,
                refs,
                deferrable=True,
                max_stored_files=2,
                max_concurrency=2,
                sleep=time.sleep,
                storage_backoff=(0.3, 0.3),
                registry=registry(tmp_path),
            )
        except BaseException as exc:  # the test reports it
            done["error"] = exc

    worker = threading.Thread(target=go, daemon=True)
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "the run hung waiting for slots parked extracts hold"
    assert "error" not in done, done.get("error")
    summary = done["summary"]
    assert fake.lost_sent == 1, "not sent again in this attempt"
    assert summary.waiting_extracts and summary.files_in_doubt == 2, "it defers; the copies are counted"


def test_a_deferrable_run_defers_when_the_account_is_full_and_its_own_extracts_wait(
    out: str, tmp_path: Path
) -> None:
    """Another task holds 24 of the 30 files and this run's queued extracts hold the rest: only
    collecting them (after the deferral) frees room, so the run defers at once instead of
    waiting out storage_wait_timeout and failing."""
    refs, _truth = document_archive(tmp_path / "docs", **{f"d{i}": 8 for i in range(8)})  # queued
    fake = FakeDelix(queue_polls=10**6)
    for _ in range(24):
        fake.put_foreign(b"another task's file")
    started = time.monotonic()
    summary = run_documents(
        fake,
        out,
        refs,
        deferrable=True,
        max_concurrency=4,
        sleep=time.sleep,
        storage_backoff=(0.2, 0.4),
        storage_wait_timeout=30.0,
    )
    assert time.monotonic() - started < 10, "deferred, not waited out"
    assert summary.waiting_extracts and summary.pages_waiting > 0
    assert fake.storage_full_raised >= 1, "the account did refuse an upload"


class LosingDocuments(FakeDelix):
    """Stores the first upload of ``lost`` twice and loses both answers."""

    def __init__(self, lost: bytes, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lost, self.lost_calls, self.lost_sent = lost, 0, 0

    def upload_files(self, files: Any) -> Any:
        if any(bytes(data) == self.lost for _, data in files):
            self.lost_sent += 1
            if self.lost_calls == 0:
                self.lost_calls += 1
                lose_both_sends(super().upload_files, files)
        return super().upload_files(files)
