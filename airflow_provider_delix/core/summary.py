"""What a run did and how it ended: the summary, the errors that carry it, the failed-ratio check.

Kept apart from the engine so the objects the operator consumes can be read without reading
the concurrency code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airflow_provider_delix.core.table import RowStatus

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
    pages_waiting: int = 0  # in queued extracts left for the next attempt (a deferral)
    waiting_extracts: list[str] = field(default_factory=list)  # their uuids: the trigger polls them
    # Paid extracts this run stopped waiting for (timeout, cancel, failing polls), left on record
    # uncollected, and their files, kept on Delix on purpose: the next attempt collects them.
    held_extracts: list[str] = field(default_factory=list)
    held_file_uuids: list[str] = field(default_factory=list)
    extracts_adopted: int = 0  # paid extracts of earlier attempts whose pages this run collected
    extracts_lost: int = 0  # paid extracts of earlier attempts that Delix no longer has
    pages_in_doubt: int = 0  # sent without an answer (here or by a dead attempt): maybe paid twice
    files_in_doubt: int = 0  # uploaded by a dead attempt without an answer: maybe left on Delix (24 h)
    requests_in_doubt: int = 0  # paid sends whose answer was lost after sending (re-sent at most once)
    credits_at_risk: int = 0  # credits the table counts for those sends: charged only if Delix applied them
    # Files no task on the key claims, left alone because the key has foreign uploaders (or a
    # sweep could not decide): {"uuid", "first_seen", "expires_by"} (epoch seconds).
    orphans_reported: list[dict[str, Any]] = field(default_factory=list)

    @property
    def waiting(self) -> bool:
        """Queued extracts are left for the next attempt: the caller defers (or re-runs)."""
        return bool(self.waiting_extracts)

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
            "pages_waiting": self.pages_waiting,
            "waiting_extracts": list(self.waiting_extracts),
            "held_extracts": list(self.held_extracts),
            "held_file_uuids": list(self.held_file_uuids),
            "extracts_adopted": self.extracts_adopted,
            "extracts_lost": self.extracts_lost,
            "pages_in_doubt": self.pages_in_doubt,
            "files_in_doubt": self.files_in_doubt,
            "requests_in_doubt": self.requests_in_doubt,
            "credits_at_risk": self.credits_at_risk,
            "orphans_reported": len(self.orphans_reported),
            "unclaimed_files": [dict(f) for f in self.orphans_reported],
        }


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
