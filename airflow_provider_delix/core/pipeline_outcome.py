"""How a run ends: its :class:`PipelineSummary`, its stop reason, and what ``run()`` raises.

Split out of :mod:`.pipeline` (one idea per module): the run loop only collects what happened
(in :class:`.pipeline_context.Control` and the run's stats); which of the causes wins, what the
summary says and which error the task fails with (or none: a deferral is not a failure) is
decided here, after every exit path has cleaned up. See ``docs/pipeline.md`` (Errors, per
class; Summary).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from airflow_provider_delix.core.adopt import Adoption
from airflow_provider_delix.core.budget import StorageBudget
from airflow_provider_delix.core.counting_client import CountingClient
from airflow_provider_delix.core.pipeline_context import Control, RunContext
from airflow_provider_delix.core.run_cleanup import RunCleanup
from airflow_provider_delix.core.run_stats import RunStats
from airflow_provider_delix.core.summary import (
    CreditsExhaustedError,
    PagesLeftError,
    PipelineCancelledError,
    PipelineSummary,
    StorageWaitTimeoutError,
)
from airflow_provider_delix.core.table import RowStatus


class PipelineOutcome:
    """The summary and failure of :class:`.pipeline.ExtractionPipeline` (set up by its ``__init__``)."""

    budget: StorageBudget
    stats: RunStats
    client: CountingClient
    clock: Callable[[], float]
    run_id: str
    cleanup: RunCleanup
    control: Control
    cancel_event: threading.Event
    _adoption: Adoption
    _orphans_deleted: int
    _files_in_doubt: int
    _held_pages: int

    def _summary(self, start: float, ctx: RunContext) -> PipelineSummary:
        usage = self.budget.usage()
        with ctx.live_lock:
            held = [k for k in ctx.kept if not k.parked]
        with self.stats.lock:
            rows = {s.value: self.stats.rows.get(s.value, 0) for s in RowStatus}
            return PipelineSummary(
                run_id=self.run_id,
                rows=rows,
                pages_total=self.stats.pages_total,
                pages_resumed=self.stats.pages_resumed,
                pages_resumed_not_processed=self.stats.pages_resumed_not_processed,
                pages_left=self.stats.pages_left,
                pages_reused=self.stats.pages_reused,
                credits_charged=self.stats.credits_charged,
                credits_refunded=self.stats.credits_refunded,
                requests=self.client.counts(),
                elapsed_seconds=self.clock() - start,
                peak_stored_files=usage.peak_files,
                peak_stored_bytes=usage.peak_bytes,
                orphans_deleted=self._orphans_deleted + self.cleanup.deleted,
                orphans_reported=[f.to_dict() for f in self.cleanup.reported.values()],
                undeleted_uuids=sorted(ctx.undeleted),
                input_complete=self.stats.input_complete,
                stop_reason=self._stop_reason(ctx),
                pages_waiting=self.stats.pages_waiting,
                waiting_extracts=sorted([*self._adoption.waiting, *ctx.parked]),
                held_extracts=sorted(k.record.extract_uuid for k in held if k.record.extract_uuid),
                held_file_uuids=sorted(u for k in held for u in k.files),
                extracts_adopted=self._adoption.adopted,
                extracts_lost=self._adoption.lost,
                pages_in_doubt=self.stats.pages_in_doubt,
                files_in_doubt=self._files_in_doubt + self.stats.files_in_doubt,
                requests_in_doubt=self.stats.requests_in_doubt,
                credits_at_risk=self.stats.credits_at_risk,
            )

    def _stop_reason(self, ctx: RunContext) -> str | None:
        c = self.control
        if c.fatal is not None:
            return f"error: {type(c.fatal).__name__}: {c.fatal}"
        if self.cancel_event.is_set():
            return "cancelled"
        if c.storage is not None:
            return "storage full"
        if c.credits is not None:
            return "no credits"
        if ctx.parked or self._adoption.waiting:
            return "waiting for queued extracts"
        return None

    def _cause(self) -> BaseException | None:
        c = self.control
        return c.credits or c.storage or c.waits or c.transient

    def _failure(self, error: BaseException | None, s: PipelineSummary) -> BaseException | None:  # noqa: PLR0911
        c = self.control
        if error is not None or c.fatal is not None:
            return error or c.fatal
        done = sum(s.rows.values()) + s.pages_resumed
        unread = "" if s.input_complete else ", plus the inputs not read yet"
        left = f"{s.pages_left} page(s) remain{unread}{_held_note(s)}"
        if self.cancel_event.is_set():
            return PipelineCancelledError(f"Cancelled: {done} page(s) done, {left}.", s)
        if c.storage is not None:
            return StorageWaitTimeoutError(
                f"{c.storage} {done} page(s) done, {left}. {self.cleanup.occupancy()}", s
            )
        if c.credits is not None:
            return CreditsExhaustedError(
                f"Delix has no credits left (NO_SUFFICIENT_CREDITS): {done} page(s) are done "
                f"({sum(s.rows.values())} by this run, {s.pages_resumed} by earlier runs) and {left}. "
                "Top up the account and re-run the task: it resumes from the table and never pays "
                "twice for a finished page.",
                s,
            )
        if s.waiting:
            return None  # not a failure: the caller defers (or re-runs) and the next attempt goes on
        if c.waits is not None:
            return PagesLeftError(f"{c.waits} {done} page(s) done, {left}.", s)
        if c.busy is not None and s.pages_left:
            return PagesLeftError(
                f"Delix still worked on {len(s.undeleted_uuids)} file(s) when they were to be deleted "
                f"({c.busy}): they keep their storage slots, so no new chunk was started. {done} page(s) "
                f"done, {left}. Re-run the task to do them; it deletes those files.",
                s,
            )
        if s.pages_left and self._held_pages:
            return PagesLeftError(
                f"{s.pages_left} page(s) got no row: {self._held_pages} of them are held by another writer "
                "of this output_path that did not finish them in time, or that died after Delix answered "
                f"its request. Every other page is done ({done}); re-run the task to finish them without "
                "paying twice.",
                s,
            )
        if s.pages_left:
            return PagesLeftError(
                f"{s.pages_left} page(s) got no row because Delix kept failing after the client's "
                f"retries (last error: {c.transient}){_held_note(s)}. Every other page is done ({done}); "
                "re-run the task to do exactly those pages.",
                s,
            )
        return None


def _held_note(s: PipelineSummary) -> str:
    """Why files stay on Delix after a run that stopped waiting for paid extracts."""
    if not s.held_file_uuids:
        return ""
    return (
        f" (of them, the pages of paid extracts stay on record, with their {len(s.held_file_uuids)} "
        "file(s) kept on Delix: the next attempt collects them without paying again)"
    )
