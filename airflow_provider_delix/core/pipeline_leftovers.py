"""What earlier attempts left on the account, and what this run leaves: before and after the work.

Before any budget is used, queued extracts of earlier attempts are adopted (:mod:`.adopt`) and
the files they left are deleted (orphans); after the workers stop, every file this run still
has stored is deleted once more and the store is closed (or aborted after an error). Split out
of :mod:`.pipeline` so the run loop reads as the run, and these guarantees read in one place.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from airflow_provider_delix.api.errors import DelixAuthError
from airflow_provider_delix.core.adopt import Adoption, adopt_extracts
from airflow_provider_delix.core.adopt_claims import AdoptionClaims
from airflow_provider_delix.core.counting_client import CountingClient
from airflow_provider_delix.core.ledger import LedgerFile
from airflow_provider_delix.core.options import RunOptions
from airflow_provider_delix.core.pipeline_context import Control, RunContext
from airflow_provider_delix.core.resume import ResumeIndex
from airflow_provider_delix.core.run_stats import RunStats
from airflow_provider_delix.core.store import OutputStore

log = logging.getLogger(__name__)


class PipelineLeftovers:
    """Start and end cleanup of :class:`.pipeline.ExtractionPipeline` (set up by its ``__init__``)."""

    client: CountingClient
    store: OutputStore
    options: RunOptions
    stats: RunStats
    run_id: str
    clock: Callable[[], float]
    sleep: Callable[[float], object]
    control: Control
    delete_concurrency: int
    _adoption: Adoption
    _orphans_deleted: int
    _files_in_doubt: int

    def _adopt(self, resume: ResumeIndex, claims: AdoptionClaims) -> None:
        self._adoption = adopt_extracts(
            self.client,
            self.store,
            resume,
            self.options,
            self.stats,
            claims=claims,
            run_id=self.run_id,
            clock=self.clock,
            sleep=self.sleep,
            aborting=self.control.aborting,
        )
        self.stats.add_waiting(self._adoption.waiting_pages)
        self.stats.add_in_doubt(self._adoption.in_doubt_pages)

    def _delete_orphans(self) -> None:
        """Delete what crashed earlier attempts left on the account, before using any budget.

        Files of extracts still processing are not orphans: Delix is using them (a delete would
        answer FILE_UNDER_PROCESSING), and the attempt that collects the extract deletes them.
        """
        waiting = self._adoption.waiting_files
        orphans = [uuid for uuid in self.store.uploads.orphaned_uploads() if uuid not in waiting]
        self._files_in_doubt = self.store.uploads.uploads_in_doubt()
        if self._files_in_doubt:
            log.warning(
                "An earlier attempt stopped while uploading %d file(s): Delix may have stored them "
                "under uuids it never answered, and the API cannot tell whose a stored file is. No task "
                "claims them in the key registry, so the orphan sweep deletes them (unless the key has "
                "foreign_uploaders: then Delix does, 24 h after upload) (files_in_doubt).",
                self._files_in_doubt,
            )
        if not orphans:
            return
        gone: list[str] = []

        refused: list[DelixAuthError] = []

        def delete(uuid: str) -> None:
            if refused:
                return  # the key was refused: every other delete would be too
            try:
                self.client.delete_file(uuid)
                gone.append(uuid)
            except DelixAuthError as exc:
                refused.append(exc)
            except Exception as exc:
                log.warning("Could not delete orphaned Delix file %s (kept for the next run): %s", uuid, exc)

        with ThreadPoolExecutor(self.delete_concurrency, thread_name_prefix="delix-orphans") as pool:
            list(pool.map(delete, orphans))
        self.store.uploads.forget_uploads(gone)
        self._orphans_deleted = len(gone)
        if refused:
            raise refused[0]
        log.info("Deleted %d of %d files left on Delix by an earlier attempt", len(gone), len(orphans))

    def _final_cleanup(self, ctx: RunContext) -> None:
        """Last attempt at every file still stored (a failed delete, an abort mid-chunk)."""
        with ctx.live_lock:
            leftovers = sorted(ctx.live)
        if self.control.key_refused():
            leftovers = []  # the key was refused: a delete would be refused too (the next run deletes them)
        for uuid in leftovers:
            try:
                self.client.delete_file(uuid)
            except Exception as exc:
                log.error("Could not delete Delix file %s; the next run deletes it: %s", uuid, exc)
                continue
            with ctx.live_lock:
                ctx.live.discard(uuid)
                ctx.undeleted.discard(uuid)
        with ctx.live_lock:
            ctx.undeleted |= ctx.live

    def _record_kept(self, ctx: RunContext) -> None:
        """Count the pages of extracts left for a later attempt; put every one on their record.

        Called once no chunk runs and nothing is planned any more. Pages whose content matched
        a kept extract's file after its request was journalled attached to that file (and so
        were not sent again); the record must name them, or the attempt that collects the
        extract writes no row for them. A held extract whose answered record could not be
        written (``stale``) is written again here: with its uuid on record the next attempt
        collects it instead of counting its pages in doubt and paying for them again. Parked
        pages count as waiting, held ones as left (the attempt stops).
        """
        for kept in ctx.kept:
            files = tuple(
                dataclasses.replace(
                    f, pages=tuple((n, tuple(ts)) for n, ts in ctx.index.pending_rows(kept.files[f.uuid]))
                )
                for f in kept.record.files
            )
            (self.stats.add_waiting if kept.parked else self.stats.add_left)(_rows_of(files))
            extra = _rows_of(files) - _rows_of(kept.record.files)
            if extra <= 0 and not kept.stale:
                continue
            try:
                self.store.ledger.record(dataclasses.replace(kept.record, files=files))
            except Exception:
                log.exception(
                    "Could not write the record of extract %s again (%d page(s) with the same content "
                    "joined it): the attempt that collects it %s.",
                    kept.record.extract_uuid,
                    max(extra, 0),
                    "counts its pages in doubt" if kept.stale else "writes no row for those pages",
                )
                continue
            log.info(
                "Extract %s is on record for the next attempt with %d page(s) more that share its content%s.",
                kept.record.extract_uuid,
                max(extra, 0),
                " and with its uuid, which could not be written before" if kept.stale else "",
            )

    def _close_store(self, error: BaseException | None) -> None:
        if error is None and self.control.fatal is None:
            try:
                self.store.close()
                return
            except Exception as exc:
                self.control.fail(exc, abort=True)
        self.store.abort()


def _rows_of(files: tuple[LedgerFile, ...]) -> int:
    return sum(len(ts) for f in files for _, ts in f.pages)
