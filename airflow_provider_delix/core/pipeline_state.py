"""Shared state of one pipeline run: counters, the summary, progress, errors, request counting.

Kept apart from the engine so the objects the operator consumes (the summary, the errors, the
failed-ratio check) can be read without reading the concurrency code.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_delix.api.models import Engine, Extract, Language, RejectedFile, StoredFile
from airflow_provider_delix.core.client import DelixClient, UploadItem
from airflow_provider_delix.core.planning import FileOutcome, InvalidPage, PageTarget
from airflow_provider_delix.core.table import PageRow, RowStatus

log = logging.getLogger(__name__)

NOT_PROCESSED = (RowStatus.FAILED, RowStatus.REJECTED, RowStatus.INVALID)


@dataclass(slots=True)
class PipelineSummary:
    """What a run did; the operator turns it into its XCom manifest (:meth:`to_dict`)."""

    run_id: str
    rows: dict[str, int]  # rows written by this run, by RowStatus value (every status present)
    pages_total: int  # pages of this run's inputs seen, resumed ones included
    pages_resumed: int  # skipped: a row for them was already stored
    pages_left: int  # no row written (transient errors, credits, stop): a re-run does them
    pages_reused: int  # rows fanned out from content already extracted (no extra request)
    credits_charged: int
    credits_refunded: int
    requests: dict[str, int]  # client calls per endpoint method (the hook's retries not counted)
    elapsed_seconds: float
    peak_stored_files: int
    peak_stored_bytes: int
    orphans_deleted: int
    undeleted_uuids: list[str] = field(default_factory=list)
    input_complete: bool = True  # False when the run stopped before reading every input
    stop_reason: str | None = None
    pages_resumed_not_processed: int = 0  # resumed pages whose stored row is not "processed"

    @property
    def pages_not_processed(self) -> int:
        return sum(self.rows.get(s.value, 0) for s in NOT_PROCESSED) + self.pages_resumed_not_processed

    @property
    def failed_ratio(self) -> float:
        """Share of this run's input pages whose row is failed, rejected or invalid.

        Numerator and denominator both count resumed pages (settled by an earlier attempt), so
        an Airflow retry judges the whole input, not only what the retry itself did: the pages
        that failed the first attempt still count against the limit.
        """
        return self.pages_not_processed / self.pages_total if self.pages_total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "rows": dict(self.rows),
            "pages_total": self.pages_total,
            "pages_resumed": self.pages_resumed,
            "pages_resumed_not_processed": self.pages_resumed_not_processed,
            "pages_left": self.pages_left,
            "pages_reused": self.pages_reused,
            "failed_ratio": round(self.failed_ratio, 6),
            "credits_charged": self.credits_charged,
            "credits_refunded": self.credits_refunded,
            "requests": dict(self.requests),
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "peak_stored_files": self.peak_stored_files,
            "peak_stored_bytes": self.peak_stored_bytes,
            "orphans_deleted": self.orphans_deleted,
            "undeleted_uuids": list(self.undeleted_uuids),
            "input_complete": self.input_complete,
            "stop_reason": self.stop_reason,
        }


def outcome_row(
    target: PageTarget,
    out: FileOutcome,
    *,
    engine: str,
    language: str,
    run_id: str,
    charged: int = 0,
    refunded: int = 0,
) -> PageRow:
    """The row of one page whose content got ``out`` (extracted, failed, rejected, or reused)."""
    return PageRow(
        source=target.source,
        source_sha256=target.source_sha256,
        page_number=target.page_number,
        status=RowStatus(out.status),
        text=out.text,
        error=out.error,
        error_message=out.error_message,
        file_uuid=out.file_uuid,
        extract_uuid=out.extract_uuid,
        engine=engine,
        language=language,
        normalization=target.normalization,
        credits_charged=charged,
        credits_refunded=refunded,
        run_id=run_id,
    )


def invalid_row(page: InvalidPage, *, engine: str, language: str, run_id: str) -> PageRow:
    """The row of a page our validation refused: no call was made, nothing was charged."""
    out = FileOutcome(RowStatus.INVALID, None, page.error, page.message, None, None)
    return outcome_row(page.target, out, engine=engine, language=language, run_id=run_id)


class PipelineError(Exception):
    """The run ended without doing every page; ``summary`` says what was done."""

    def __init__(self, message: str, summary: PipelineSummary) -> None:
        super().__init__(message)
        self.summary = summary


class CreditsExhaustedError(PipelineError):
    """Delix answered NO_SUFFICIENT_CREDITS; finished pages are kept."""


class PagesLeftError(PipelineError):
    """Some pages got no row (transient failures); a re-run does exactly those."""


class StorageWaitTimeoutError(PipelineError):
    """The shared account stayed full for longer than ``storage_wait_timeout``."""


class PipelineCancelledError(PipelineError):
    """The run was cancelled (``on_kill``); uploaded files were deleted."""


class TooManyFailedPagesError(PipelineError):
    """More pages than ``max_failed_ratio`` allows were not processed (the table is written)."""


def check_failed_ratio(summary: PipelineSummary, max_failed_ratio: float | None) -> None:
    """Raise :class:`TooManyFailedPagesError` if the run's failed share is above the limit.

    Called after the table is written, so the rows of the failures are there to look at.
    """
    if max_failed_ratio is None:
        return
    if not 0.0 <= max_failed_ratio <= 1.0:
        raise ValueError(f"max_failed_ratio must be between 0 and 1, got {max_failed_ratio}.")
    if summary.failed_ratio > max_failed_ratio:
        counts = ", ".join(f"{summary.rows.get(s.value, 0)} {s.value}" for s in NOT_PROCESSED)
        if summary.pages_resumed_not_processed:
            counts += f", {summary.pages_resumed_not_processed} not processed by earlier attempts"
        raise TooManyFailedPagesError(
            f"{summary.pages_not_processed} of {summary.pages_total} pages were not processed "
            f"({counts}; {summary.failed_ratio:.1%} > max_failed_ratio {max_failed_ratio:.1%}). "
            "The table is written: look at the 'error' and 'error_message' columns.",
            summary,
        )


@dataclass(frozen=True, slots=True)
class Progress:
    """Passed to the progress callback."""

    pages_done: int  # resumed + rows written
    pages_total: int | None  # known once every input has been read
    pages_per_second: float  # rows written by this run per second
    eta_seconds: float | None
    credits_charged: int
    credits_refunded: int


class RunStats:
    """Counters updated by every worker; one lock, short critical sections."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rows: Counter[str] = Counter()
        self.pages_total = 0
        self.pages_resumed = 0
        self.pages_resumed_not_processed = 0
        self.pages_left = 0
        self.pages_reused = 0
        self.credits_charged = 0
        self.credits_refunded = 0
        self.input_complete = False

    def add_rows(self, rows: Sequence[PageRow], *, reused: int = 0) -> None:
        with self.lock:
            for row in rows:
                self.rows[str(row.status)] += 1
                self.credits_charged += row.credits_charged
                self.credits_refunded += row.credits_refunded
            self.pages_reused += reused

    def add_left(self, pages: int) -> None:
        with self.lock:
            self.pages_left += pages

    def add_planned(self, pages: int, resumed: int, resumed_not_processed: int = 0) -> None:
        with self.lock:
            self.pages_total += pages
            self.pages_resumed += resumed
            self.pages_resumed_not_processed += resumed_not_processed

    def written(self) -> int:
        with self.lock:
            return sum(self.rows.values())


class ProgressReporter:
    """Calls ``callback`` at most once per ``interval`` seconds of ``clock``; never raises."""

    def __init__(
        self,
        callback: Callable[[Progress], None] | None,
        interval: float,
        clock: Callable[[], float],
        stats: RunStats,
    ) -> None:
        self._callback = callback
        self._interval = interval
        self._clock = clock
        self._stats = stats
        self._lock = threading.Lock()
        self._start = clock()
        self._last: float | None = None

    def maybe_report(self) -> None:
        if self._callback is None:
            return
        with self._lock:
            now = self._clock()
            if self._last is not None and now - self._last < self._interval:
                return
            self._last = now
        with self._stats.lock:
            written = sum(self._stats.rows.values())
            done = written + self._stats.pages_resumed
            total = self._stats.pages_total if self._stats.input_complete else None
            charged, refunded = self._stats.credits_charged, self._stats.credits_refunded
        elapsed = max(now - self._start, 1e-9)
        rate = written / elapsed
        eta = None
        if total is not None:
            left = max(total - done, 0)
            eta = 0.0 if left == 0 else (left / rate if rate > 0 else math.inf)
        try:
            self._callback(Progress(done, total, rate, eta, charged, refunded))
        except Exception:
            log.warning("The progress callback failed; the run goes on", exc_info=True)


class CountingClient:
    """Wraps a :class:`DelixClient` and counts calls per method (thread-safe)."""

    def __init__(self, inner: DelixClient) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def counts(self) -> dict[str, int]:
        with self._lock:
            names = ("upload_files", "extract_images", "delete_file", "list_files")
            return {name: self._counts.get(name, 0) for name in names}

    def upload_files(self, files: Sequence[UploadItem]) -> list[StoredFile | RejectedFile]:
        self._count("upload_files")
        return self._inner.upload_files(files)

    def delete_file(self, uuid: str) -> bool:
        self._count("delete_file")
        return self._inner.delete_file(uuid)

    def extract_images(
        self, file_uuids: Sequence[str], engine: Engine | str, language: Language | str
    ) -> Extract:
        self._count("extract_images")
        return self._inner.extract_images(file_uuids, engine, language)

    def list_files(self) -> list[StoredFile]:
        self._count("list_files")
        return self._inner.list_files()
