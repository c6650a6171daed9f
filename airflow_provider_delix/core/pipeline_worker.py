"""One chunk's life: upload -> record -> extract -> delete (per file, in parallel) -> rows.

Runs on a worker thread of :class:`~airflow_provider_delix.core.pipeline.ExtractionPipeline`.
The chunk's storage budget was acquired by the dispatcher before this starts; every file's
slot is released exactly once: at once if the file never got stored (upload failed, or
rejected), else when its delete is confirmed (404 included). Deletes are scheduled *before*
the rows are written: they do not need the rows, and the budget refills while the store works.

Error policy (see ``docs/pipeline.md``): per-file API errors on a multi-file extraction are
isolated by retrying the files one by one (a 422 costs nothing); an expired file is uploaded
again once; a full shared account is waited out with exponential back-off; no credits, a
refused key or an unexpected error stop the run through :class:`Control`; transient errors
(already retried by the client) leave the chunk's pages without rows for a re-run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from airflow_provider_delix.api.errors import (
    DelixApiError,
    DelixAuthError,
    DelixInsufficientCreditsError,
    DelixNotFoundError,
    DelixStorageFullError,
    DelixTransientError,
)
from airflow_provider_delix.api.models import ErrorCode, Extract, PageStatus, RejectedFile, StoredFile
from airflow_provider_delix.core.budget import StorageBudget
from airflow_provider_delix.core.pipeline_state import CountingClient, ProgressReporter, RunStats, outcome_row
from airflow_provider_delix.core.planning import Chunk, ChunkFile, ContentIndex, FileOutcome
from airflow_provider_delix.core.store import OutputStore
from airflow_provider_delix.core.table import PageRow, RowStatus, split_credits

log = logging.getLogger(__name__)

FILE_EXPIRED = "file_expired"  # our code: the stored file vanished twice (404 on extraction)
PAGE_FAILED = "page_failed"  # our code: the extraction reported the page as failed
NO_RESULT = "no_result"  # our code: the extract did not mention the file


class StorageWaitTimeout(Exception):
    """The shared account stayed full for longer than the configured wait."""


class ChunkAborted(Exception):
    """The run is stopping: this chunk gives up before its next API call."""


class Control:
    """Stop requests shared by the dispatcher and the workers; first cause of each kind wins."""

    def __init__(self, cancel: threading.Event, on_stop: Callable[[], None]) -> None:
        self.cancel = cancel
        self._on_stop = on_stop
        self._lock = threading.Lock()
        self._stop_new = False
        self._abort = False
        self.fatal: BaseException | None = None
        self.credits: DelixInsufficientCreditsError | None = None
        self.storage: StorageWaitTimeout | None = None
        self.transient: DelixTransientError | None = None

    def stop_new(self) -> bool:
        """No new chunk may start (in-flight ones finish)."""
        return self._stop_new or self.cancel.is_set()

    def aborting(self) -> bool:
        """In-flight chunks skip their remaining API calls (cleanup still runs)."""
        return self._abort or self.cancel.is_set()

    def _stop(self, *, abort: bool) -> None:
        with self._lock:
            self._stop_new = True
            self._abort = self._abort or abort
        self._on_stop()

    def fail(self, exc: BaseException, *, abort: bool) -> None:
        with self._lock:
            if self.fatal is None:
                self.fatal = exc
        self._stop(abort=abort)

    def out_of_credits(self, exc: DelixInsufficientCreditsError) -> None:
        with self._lock:
            if self.credits is None:
                self.credits = exc
        self._stop(abort=False)

    def storage_timeout(self, exc: StorageWaitTimeout) -> None:
        with self._lock:
            if self.storage is None:
                self.storage = exc
        self._stop(abort=False)

    def transient_error(self, exc: DelixTransientError) -> None:
        with self._lock:
            self.transient = exc


@dataclass(slots=True)
class RunContext:
    """Everything a chunk needs; built once per run by the pipeline."""

    client: CountingClient
    store: OutputStore
    budget: StorageBudget
    index: ContentIndex
    stats: RunStats
    progress: ProgressReporter
    control: Control
    deletes: ThreadPoolExecutor
    engine: str
    language: str
    run_id: str
    clock: Callable[[], float]
    sleep: Callable[[float], object]
    storage_wait_timeout: float
    storage_backoff: tuple[float, float]  # first and longest wait between upload attempts
    under_processing_timeout: float
    live_lock: threading.Lock = field(default_factory=threading.Lock)
    live: set[str] = field(default_factory=set)  # uploaded by this run, delete not confirmed
    undeleted: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Slot:
    """One file of a chunk: its budget slot, its current uuid and what became of it."""

    file: ChunkFile
    uuid: str | None = None
    released: bool = False
    outcome: FileOutcome | None = None
    charged: int = 0
    refunded: int = 0


class ChunkRunner:
    def __init__(self, ctx: RunContext, chunk: Chunk) -> None:
        self.ctx = ctx
        self.chunk = chunk
        self.slots = [Slot(f) for f in chunk.files]
        self._recorded = False
        self._deletes_left = 0
        self._deletes_failed = False
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ driver

    def run(self) -> None:
        ctrl = self.ctx.control
        try:
            if not ctrl.aborting():
                self._upload(self.slots)
                stored = [s for s in self.slots if s.uuid is not None]
                if stored and not ctrl.aborting():
                    self._extract(stored, reupload=True)
        except DelixInsufficientCreditsError as exc:
            ctrl.out_of_credits(exc)
        except DelixTransientError as exc:
            log.warning("Chunk %s left for a re-run: %s", self.chunk.chunk_id, exc)
            ctrl.transient_error(exc)
        except StorageWaitTimeout as exc:
            ctrl.storage_timeout(exc)
        except ChunkAborted:
            pass
        except DelixAuthError as exc:
            ctrl.fail(exc, abort=True)
        except Exception as exc:
            log.exception("Chunk %s failed unexpectedly", self.chunk.chunk_id)
            ctrl.fail(exc, abort=False)
        finally:
            self._schedule_deletes()
            try:
                self._write_rows()
            except Exception as exc:
                log.exception("Could not store the rows of chunk %s", self.chunk.chunk_id)
                ctrl.fail(exc, abort=True)

    # ------------------------------------------------------------------ upload

    def _release(self, slot: Slot) -> None:
        if not slot.released:
            slot.released = True
            self.ctx.budget.release(1, slot.file.size)

    def _upload(self, slots: list[Slot]) -> None:
        results = self._upload_waiting([s.file for s in slots])
        uuids: list[str] = []
        for slot, result in zip(slots, results, strict=True):
            if isinstance(result, StoredFile):
                slot.uuid = result.uuid
                uuids.append(result.uuid)
            else:
                slot.outcome = FileOutcome(RowStatus.REJECTED, None, str(result.reason), None, None, None)
                self._release(slot)
        if uuids:
            with self.ctx.live_lock:
                self.ctx.live.update(uuids)
            self._recorded = True
            self.ctx.store.record_uploaded(self.chunk.chunk_id, uuids)

    def _upload_waiting(self, files: list[ChunkFile]) -> list[StoredFile | RejectedFile]:
        """Upload, waiting out a full account (someone else's files) with exponential back-off."""
        ctx = self.ctx
        first, longest = ctx.storage_backoff
        delay, since = first, None
        while True:
            try:
                return list(ctx.client.upload_files([(f.filename, f.data) for f in files]))
            except DelixStorageFullError as exc:
                now = ctx.clock()
                since = now if since is None else since
                left = ctx.storage_wait_timeout - (now - since)
                if left <= 0:
                    raise StorageWaitTimeout(
                        f"The Delix account stayed full ({exc.error}) for {ctx.storage_wait_timeout:.0f} s "
                        "although this run never holds more than the account's limits: other users of "
                        "the same API key are filling it. Free space or raise storage_wait_timeout, then "
                        "re-run (finished pages are kept)."
                    ) from exc
                log.info("Delix storage is full (%s); waiting %.1f s", exc.error, min(delay, left))
                ctx.sleep(min(delay, left))
                delay = min(delay * 2, longest)
                if ctx.control.aborting():
                    raise ChunkAborted(self.chunk.chunk_id) from exc

    # ------------------------------------------------------------------ extraction

    def _extract(self, slots: list[Slot], *, reupload: bool) -> None:
        uuids = [s.uuid for s in slots if s.uuid is not None]
        try:
            extract = self.ctx.client.extract_images(uuids, self.ctx.engine, self.ctx.language)
        except DelixInsufficientCreditsError:
            raise
        except DelixApiError as exc:
            if len(slots) > 1:
                # One bad file must not sink the others: try each alone (a refusal costs nothing).
                self._one_by_one(slots, reupload=reupload)
            else:
                slots[0].outcome = FileOutcome(
                    RowStatus.FAILED, None, exc.error, exc.api_message or str(exc), slots[0].uuid, None
                )
        except DelixNotFoundError as exc:
            if reupload:
                self._reupload(slots)
                again = [s for s in slots if s.uuid is not None]
                if again and not self.ctx.control.aborting():
                    self._extract(again, reupload=False)
            elif len(slots) > 1:
                # Every file already had its one re-upload; find which of them vanished again.
                self._one_by_one(slots, reupload=False)
            else:
                slots[0].outcome = FileOutcome(
                    RowStatus.FAILED, None, FILE_EXPIRED, str(exc), slots[0].uuid, None
                )
        else:
            self._take_extract(extract, slots)

    def _one_by_one(self, slots: list[Slot], *, reupload: bool) -> None:
        for slot in slots:
            if self.ctx.control.aborting():
                return
            self._extract([slot], reupload=reupload)

    def _reupload(self, slots: list[Slot]) -> None:
        """Delete the vanished files (confirming they are gone), then store them again in their slots."""
        for slot in slots:
            if slot.uuid is not None:
                self._delete_now(slot.uuid)
                slot.uuid = None
        self._upload(slots)

    def _take_extract(self, extract: Extract, slots: list[Slot]) -> None:
        by_uuid = {f.uuid: f for f in extract.files}
        failed: list[Slot] = []
        for slot, share in zip(slots, split_credits(extract.initial_cost, len(slots)), strict=True):
            slot.charged = share
            ext_file = by_uuid.get(slot.uuid or "")
            page = ext_file.pages[0] if ext_file is not None and ext_file.pages else None
            if page is not None and page.status == PageStatus.PROCESSED:
                slot.outcome = FileOutcome(
                    RowStatus.PROCESSED, page.text, None, None, slot.uuid, extract.uuid
                )
                continue
            error, message = (
                (NO_RESULT, "Delix returned no result for this file.")
                if page is None
                else (PAGE_FAILED, "Delix could not read this page; its credits are refunded.")
            )
            text = None if page is None else page.text
            slot.outcome = FileOutcome(RowStatus.FAILED, text, error, message, slot.uuid, extract.uuid)
            failed.append(slot)
        for slot, refund in zip(
            failed, split_credits(extract.returned_credits or 0, len(failed)), strict=True
        ):
            slot.refunded = refund

    # ------------------------------------------------------------------ deletion

    def _delete_now(self, uuid: str) -> None:
        """Delete and confirm (404 counts as gone); waits while the file is still being processed."""
        ctx = self.ctx
        first, longest = ctx.storage_backoff
        delay, start = first, ctx.clock()
        while True:
            try:
                ctx.client.delete_file(uuid)
                break
            except DelixApiError as exc:
                busy = exc.error == ErrorCode.FILE_UNDER_PROCESSING
                if not busy or ctx.clock() - start >= ctx.under_processing_timeout:
                    raise
                ctx.sleep(delay)
                delay = min(delay * 2, longest)
        with ctx.live_lock:
            ctx.live.discard(uuid)

    def _schedule_deletes(self) -> None:
        stored = [s for s in self.slots if s.uuid is not None]
        for slot in self.slots:
            if slot.uuid is None:
                self._release(slot)
        self._deletes_left = len(stored)
        if not stored:
            if self._recorded:
                self.ctx.store.record_deleted(self.chunk.chunk_id)
            return
        for slot in stored:
            self.ctx.deletes.submit(self._delete_task, slot)

    def _delete_task(self, slot: Slot) -> None:
        uuid = slot.uuid
        assert uuid is not None
        try:
            self._delete_now(uuid)
        except Exception as exc:
            with self.ctx.live_lock:
                self.ctx.undeleted.add(uuid)
            with self._lock:
                self._deletes_failed = True
            log.error("Could not delete Delix file %s of chunk %s: %s", uuid, self.chunk.chunk_id, exc)
            self.ctx.control.fail(exc, abort=isinstance(exc, DelixAuthError))
            return
        self._release(slot)
        with self._lock:
            self._deletes_left -= 1
            last = self._deletes_left == 0 and not self._deletes_failed
        if last:
            try:
                self.ctx.store.record_deleted(self.chunk.chunk_id)
            except Exception as exc:
                log.exception("Could not record the deletion of chunk %s", self.chunk.chunk_id)
                self.ctx.control.fail(exc, abort=False)

    # ------------------------------------------------------------------ rows

    def _write_rows(self) -> None:
        ctx = self.ctx
        rows: list[PageRow] = []
        left = 0
        reused = 0
        for slot in self.slots:
            targets = ctx.index.complete(slot.file, slot.outcome)
            out = slot.outcome
            if out is None:
                left += len(targets)
                continue
            for i, target in enumerate(targets):
                # Credits are charged once per content: the first page carries them.
                first = i == 0
                rows.append(
                    outcome_row(
                        target,
                        out,
                        engine=ctx.engine,
                        language=ctx.language,
                        run_id=ctx.run_id,
                        charged=slot.charged if first else 0,
                        refunded=slot.refunded if first else 0,
                    )
                )
            reused += len(targets) - 1
        if left:
            ctx.stats.add_left(left)
        if rows:
            ctx.store.append(self.chunk.chunk_id, rows)
            ctx.stats.add_rows(rows, reused=reused)
        ctx.progress.maybe_report()
