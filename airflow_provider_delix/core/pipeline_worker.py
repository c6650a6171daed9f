"""One chunk's life: upload -> extract (-> wait while queued) -> delete (per file, in parallel) -> rows.

Runs on a worker thread of :class:`~airflow_provider_delix.core.pipeline.ExtractionPipeline`,
for any :class:`~airflow_provider_delix.core.jobs.ExtractionJob`. The chunk's storage budget was
acquired by the dispatcher before this starts; every file's slot is released exactly once: at
once if the file never got stored (upload failed, or rejected), else when its delete is
confirmed (404 included). For a queued document extract that is after the extract finished:
the files are in use until then. Deletes are scheduled *before* the rows are written: they do
not need the rows, and the budget refills while the store works.

Every extraction request is journalled in the ledger (:mod:`.ledger`) before it is sent, and
its extract uuid the moment the API returns it, before any waiting; the record goes only once
its rows are durable (or at once when the request was refused, which costs nothing). In deferrable runs a
chunk whose extract is queued *parks*: it keeps its files and budget and hands its extract to
the pipeline, which defers the task once nothing else can move.

Error policy (see ``docs/pipeline.md``): per-file API errors on a multi-file extraction are
isolated by retrying the files one by one (a 422 costs nothing); an expired file is uploaded
again once; a full shared account is waited out with exponential back-off; no credits, a
refused key or an unexpected error stop the run through :class:`Control`; transient errors
(already retried by the client) leave the chunk's pages without rows for a re-run, except an
extraction whose answer was lost after sending (maybe charged): its pages get ``answer_lost``
rows and every lost send is counted (:mod:`.lost_answers`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from airflow_provider_delix.api.errors import (
    DelixApiError,
    DelixAuthError,
    DelixError,
    DelixInsufficientCreditsError,
    DelixNotFoundError,
    DelixResponseError,
    DelixStorageFullError,
    DelixTransientError,
)
from airflow_provider_delix.api.models import ErrorCode, Extract, RejectedFile, StoredFile
from airflow_provider_delix.core.budget import BudgetInterrupted, StorageBudget
from airflow_provider_delix.core.claims import ClaimBook
from airflow_provider_delix.core.codes import PageError
from airflow_provider_delix.core.collect import (
    ExtractWaitTimeout,
    PageResult,
    WaitAborted,
    file_pages,
    page_results,
    wait_processed,
)
from airflow_provider_delix.core.counting_client import CountingClient
from airflow_provider_delix.core.jobs import ExtractionJob
from airflow_provider_delix.core.ledger import ExtractRecord, LedgerFile
from airflow_provider_delix.core.lost_answers import (
    answer_lost_results,
    carry_lost_sends,
    charge_lost_sends,
    page_price,
)
from airflow_provider_delix.core.options import PipelineTuning, RunOptions
from airflow_provider_delix.core.planning import Chunk, ChunkFile, ContentIndex, FileOutcome
from airflow_provider_delix.core.rows import page_rows
from airflow_provider_delix.core.run_stats import ProgressReporter, RunStats
from airflow_provider_delix.core.store import OutputStore
from airflow_provider_delix.core.table import PageRow, RowStatus, resume_key, split_credits
from airflow_provider_delix.core.window import StorageWindow

log = logging.getLogger(__name__)

# What a page that failed inside a pack may have failed of that sending it alone can change.
_RETRYABLE = frozenset({PageError.PAGE_FAILED, PageError.NO_RESULT})


class StorageWaitTimeout(Exception):
    """The shared account stayed full for longer than the configured wait."""


class ChunkAborted(Exception):
    """The run is stopping: this chunk gives up before its next API call."""


class SlotsReturned(ChunkAborted):
    """Stopped while re-queued after a refusal: the chunk holds no budget any more."""


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
        self.waits: ExtractWaitTimeout | None = None

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

    def extract_timeout(self, exc: ExtractWaitTimeout) -> None:
        with self._lock:
            if self.waits is None:
                self.waits = exc

    def key_refused(self) -> bool:
        """The key was refused (401/403): every further request would be refused too; send none."""
        return isinstance(self.fatal, DelixAuthError)

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
    job: ExtractionJob
    options: RunOptions
    tuning: PipelineTuning
    run_id: str
    clock: Callable[[], float]
    sleep: Callable[[float], object]
    live_lock: threading.Lock = field(default_factory=threading.Lock)
    live: set[str] = field(default_factory=set)  # uploaded by this run, delete not confirmed
    undeleted: set[str] = field(default_factory=set)
    parked: list[str] = field(default_factory=list)  # queued extracts left for the next attempt
    retries: list[ChunkFile] = field(default_factory=list)  # packed images to send again alone
    window: StorageWindow | None = None  # the task's share of a shared account (core/window.py)
    claims: ClaimBook | None = None  # other writers of the output path (core/claims.py)
    deferred: list[ChunkFile] = field(default_factory=list)  # another writer holds their pages


@dataclass(slots=True)
class Slot:
    """One file of a chunk: its budget slot, its current uuid and what became of its pages."""

    file: ChunkFile
    uuid: str | None = None
    released: bool = False
    outcome: FileOutcome | None = None  # for every page (rejected at upload, refused extraction)
    pages: dict[int, PageResult] = field(default_factory=dict)  # per stored page, once extracted
    aside: str | None = None  # "deferred" / "done": another writer has its pages (core/claims.py)

    def outcome_of(self, page: int) -> FileOutcome | None:
        """What became of a page of this file; None when it got no result."""
        result = self.pages.get(page)
        return self.outcome or (result.outcome if result is not None else None)


class ChunkRunner:
    def __init__(self, ctx: RunContext, chunk: Chunk) -> None:
        self.ctx = ctx
        self.chunk = chunk
        self.slots = [Slot(f) for f in chunk.files]
        self.parked = False
        self._journalled: list[str] = []  # ledger record ids of this chunk's extracts
        self._recorded = False
        self._deletes_left = 0
        self._deletes_failed = False
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ driver

    def run(self) -> None:
        ctrl = self.ctx.control
        started = self.ctx.clock()
        try:
            if not ctrl.aborting():
                todo = self._precheck()
                if todo:
                    self._upload(todo)
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
        except ExtractWaitTimeout as exc:
            log.warning("Chunk %s: %s", self.chunk.chunk_id, exc)
            ctrl.extract_timeout(exc)
        except (ChunkAborted, WaitAborted):
            pass
        except DelixAuthError as exc:
            ctrl.fail(exc, abort=True)
        except Exception as exc:
            log.exception("Chunk %s failed unexpectedly", self.chunk.chunk_id)
            ctrl.fail(exc, abort=False)
        finally:
            if self.parked:
                self._park()
            else:
                self._finish()
            self.ctx.stats.metrics.chunk(self.ctx.clock() - started)

    def _finish(self) -> None:
        self._schedule_deletes()
        try:
            self._write_rows()
        except Exception as exc:
            log.exception("Could not store the rows of chunk %s", self.chunk.chunk_id)
            self.ctx.control.fail(exc, abort=True)

    def _park(self) -> None:
        """Keep files and budget; the files leave ``live`` (they cannot be deleted while queued)."""
        ctx = self.ctx
        uuids = {s.uuid for s in self.slots if s.uuid is not None}
        with ctx.live_lock:
            ctx.live -= uuids
        for slot in self.slots:
            if slot.uuid is None:
                self._release(slot)
        pages = sum(slot.file.page_count for slot in self.slots if slot.uuid is not None)
        ctx.stats.add_waiting(pages)
        # Rows of refused files (rejected at upload) are written now; the rest wait.
        self._write_rows(only_refused=True)

    # ------------------------------------------------------------------ upload

    def _release(self, slot: Slot) -> None:
        if not slot.released:
            slot.released = True
            self.ctx.budget.release(1, slot.file.size)

    def _upload(self, slots: list[Slot]) -> None:
        try:
            results = self._upload_waiting([s.file for s in slots])
        except DelixResponseError as exc:
            self._unreadable_upload(slots, exc)
            return
        except SlotsReturned:
            for slot in slots:
                slot.released = True
            raise
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
        self.ctx.store.record_uploaded(self.chunk.chunk_id, uuids)  # the intent is answered

    def _unreadable_upload(self, slots: list[Slot], exc: DelixResponseError) -> None:
        """An upload answer that cannot be matched to the files: delete what it names, fail the chunk.

        Nothing was extracted, so nothing was paid: the chunk's pages get ``malformed_answer``
        rows and the files the answer did name are deleted at once. A file it did not name may
        be stored under a uuid nobody knows: counted in ``files_in_doubt``.
        """
        ctx = self.ctx
        named = list(exc.uuids)
        with ctx.live_lock:
            ctx.live.update(named)
        ctx.store.record_uploaded(self.chunk.chunk_id, named)
        self._recorded = bool(named)
        unnamed = max(len(slots) - len(named), 0)
        with ctx.stats.lock:
            ctx.stats.files_in_doubt += unnamed
        message = (
            f"{exc}. None of these {len(slots)} file(s) was extracted (nothing paid); the "
            f"{len(named)} file(s) it named are deleted, {unnamed} are claimed by no task and left "
            "to the orphan sweep (files_in_doubt)."
        )
        log.warning("Chunk %s: %s", self.chunk.chunk_id, message)
        for slot in slots:
            slot.outcome = FileOutcome(
                RowStatus.FAILED, None, PageError.MALFORMED_ANSWER, message, None, None
            )
        deleted = 0
        for uuid in named:
            deleted += self._delete_or_keep(uuid)
        if deleted == len(named) and named:
            ctx.store.record_deleted(self.chunk.chunk_id)
            self._recorded = False
        for slot in slots:
            self._release(slot)

    def _unreadable_extract(
        self, slots: list[Slot], exc: DelixResponseError, extract: Extract | None, kind: str
    ) -> None:
        """An extraction answered (so paid) whose answer cannot be read: only these pages fail.

        Before the extract uuid is known the exact charge is unknown: Delix answered with a
        success status, so it charged, and the rows carry the published price per page (like
        ``answer_lost`` rows), counted in ``pages_in_doubt``. Once it is known (a poll or a page
        of contents went wrong), the extract's charge is split over the pages as usual.
        """
        requested = [(s, n) for s in slots for n in s.file.requested_pages]
        charge = extract.initial_cost if extract is not None else page_price(kind) * len(requested)
        shares = split_credits(charge, len(requested))
        message = f"{exc}. The request was paid; these pages are not read (malformed_answer)."
        log.warning("Chunk %s: %s", self.chunk.chunk_id, message)
        if extract is None:
            self.ctx.stats.add_in_doubt(len(requested))
        for (slot, number), share in zip(requested, shares, strict=True):
            outcome = FileOutcome(
                RowStatus.FAILED,
                None,
                PageError.MALFORMED_ANSWER,
                message,
                slot.uuid,
                None if extract is None else extract.uuid,
            )
            slot.pages[number] = PageResult(outcome, charged=share)

    def _delete_or_keep(self, uuid: str) -> int:
        """Delete now; 1 when confirmed, 0 when it failed (kept on record for the next run)."""
        if self.ctx.control.key_refused():
            with self.ctx.live_lock:
                self.ctx.undeleted.add(uuid)
            return 0
        try:
            self._delete_now(uuid)
        except DelixAuthError as exc:
            self.ctx.control.fail(exc, abort=True)
        except Exception as exc:
            log.error("Could not delete Delix file %s of chunk %s: %s", uuid, self.chunk.chunk_id, exc)
        else:
            return 1
        with self.ctx.live_lock:
            self.ctx.undeleted.add(uuid)
        return 0

    def _upload_waiting(self, files: list[ChunkFile]) -> list[StoredFile | RejectedFile]:
        """Upload, waiting out a full account (other tasks' files) under the storage window.

        A refusal shrinks the window (:mod:`.window`); the chunk then gives its slots back,
        waits a jittered moment and queues for them again, so it goes out only when the smaller
        window has room -- paced by this task's own deletes, not by a blind back-off.
        """
        ctx = self.ctx
        first, longest = ctx.tuning.storage_backoff
        delay, since, attempt = first, None, 0
        window = ctx.window
        nbytes = sum(f.size for f in files)
        wait_limit = ctx.options.storage_wait_timeout
        # One intent for every attempt below: a storage-full refusal stores nothing, so the
        # record stays true across the waits; every exit settles it.
        ctx.store.record_upload_intent(self.chunk.chunk_id, len(files))
        while True:
            token = window.sending() if window is not None else 0
            try:
                stored = list(ctx.client.upload_files([(f.filename, f.data) for f in files]))
                if window is not None:
                    use = ctx.budget.usage()
                    window.stored(
                        token,
                        len(files),
                        limited=use.waiting > 0 or use.files + len(files) > ctx.budget.limit,
                    )
                if since is not None:
                    ctx.stats.metrics.storage_wait(ctx.clock() - since)
                return stored
            except DelixStorageFullError as exc:
                ctx.stats.metrics.storage_full()
                now = ctx.clock()
                since = now if since is None else since
                left = wait_limit - (now - since)
                if left <= 0:
                    ctx.store.record_uploaded(self.chunk.chunk_id, [])  # refused: nothing stored
                    raise StorageWaitTimeout(
                        f"The Delix account stayed full ({exc.error}) for {wait_limit:.0f} s although "
                        "this run never holds more than the account's limits: other files fill it. Free "
                        "space or raise storage_wait_timeout, then re-run (finished pages are kept)."
                    ) from exc
                attempt += 1
                if window is not None:
                    window.refused(token, held=ctx.budget.usage().files)
                    delay = window.retry_delay(attempt, first, longest)
                log.info("Delix storage is full (%s); waiting %.1f s", exc.error, min(delay, left))
                requeue = window is not None and not ctx.parked  # parked extracts cannot free slots
                if requeue:
                    ctx.budget.release(len(files), nbytes)
                ctx.sleep(min(delay, left))
                delay = min(delay * 2, longest)
                try:
                    if ctx.control.aborting():
                        raise BudgetInterrupted
                    if requeue:
                        ctx.budget.acquire(len(files), nbytes, cancel=ctx.control.cancel)
                except BudgetInterrupted:
                    ctx.store.record_uploaded(self.chunk.chunk_id, [])
                    raise (SlotsReturned if requeue else ChunkAborted)(self.chunk.chunk_id) from exc
            except (DelixApiError, DelixAuthError):
                ctx.store.record_uploaded(self.chunk.chunk_id, [])  # refused: nothing stored
                raise

    # ------------------------------------------------------------------ extraction

    def _extract(self, slots: list[Slot], *, reupload: bool) -> None:
        intent = self._intend(slots)
        if self.ctx.claims is not None:
            slots, kept = self._claim(slots, intent)
            if kept is None:
                return
            intent = kept
        files = [(s.uuid, s.file) for s in slots if s.uuid is not None]
        try:
            extract = self.ctx.job.submit(self.ctx.client, files)
        except DelixResponseError as exc:
            carry_lost_sends([s.file for s in slots], exc, intent.kind, self.ctx.stats)
            self._unreadable_extract(slots, exc, None, intent.kind)
        except DelixTransientError as exc:
            if not exc.lost_attempts:
                raise  # never reached Delix, or refused (429/500/503): nothing paid, left for a re-run
            # Sent, and the answer lost on each send the policy allowed: maybe charged, no text.
            log.warning("Chunk %s: %s", self.chunk.chunk_id, exc)
            requested = [(s, n) for s in slots for n in s.file.requested_pages]
            results = answer_lost_results([s.uuid for s, _ in requested], exc, intent.kind, self.ctx.stats)
            for (slot, number), result in zip(requested, results, strict=True):
                slot.pages[number] = result
        except (DelixApiError, DelixNotFoundError, DelixAuthError) as exc:
            carry_lost_sends([s.file for s in slots], exc, intent.kind, self.ctx.stats)  # re-send refused
            self._journalled.remove(intent.chunk_id)
            self.ctx.store.ledger.forget(intent.chunk_id)  # refused: nothing was charged
            self._refused(exc, slots, reupload=reupload)
        else:
            self.ctx.store.ledger.record(intent.answered(extract.uuid, lost_sends=extract.lost_attempts))
            stored = [s for s in self.slots if s.uuid is not None]
            try:
                self._collect(extract, slots, may_park=len(slots) == len(stored))
            except DelixResponseError as exc:
                self._unreadable_extract(slots, exc, extract, intent.kind)
            if not self.parked:  # a parked extract's lost sends are charged when it is collected
                pages = [s.pages[n] for s in slots for n in s.file.requested_pages]
                charge_lost_sends(pages, extract, self.ctx.stats)

    def _refused(self, exc: DelixError, slots: list[Slot], *, reupload: bool) -> None:
        """An extraction request was refused (nothing charged): settle, retry or re-upload its files."""
        if isinstance(exc, DelixInsufficientCreditsError | DelixAuthError):
            raise exc
        if isinstance(exc, DelixApiError):
            if len(slots) > 1:
                # One bad file must not sink the others: try each alone (a refusal costs nothing).
                self._one_by_one(slots, reupload=reupload)
            else:
                slots[0].outcome = FileOutcome(
                    RowStatus.FAILED, None, exc.error, exc.api_message or str(exc), slots[0].uuid, None
                )
        elif reupload:
            self._reupload(slots)
            again = [s for s in slots if s.uuid is not None]
            if again and not self.ctx.control.aborting():
                self._extract(again, reupload=False)
        elif len(slots) > 1:
            # Every file already had its one re-upload; find which of them vanished again.
            self._one_by_one(slots, reupload=False)
        else:
            slots[0].outcome = FileOutcome(
                RowStatus.FAILED, None, PageError.FILE_EXPIRED, str(exc), slots[0].uuid, None
            )

    def _intend(self, slots: list[Slot]) -> ExtractRecord:
        """Write-ahead, phase one: the request is on record before it is sent.

        Phase two (:meth:`ExtractRecord.answered`) adds the extract uuid the moment Delix
        answers, before anything waits on it. A writer that dies between the two leaves an
        intent without a uuid: the next attempt reports those pages as possibly paid twice.
        """
        ctx = self.ctx
        files = []
        for slot in slots:
            assert slot.uuid is not None
            rows = ctx.index.pending_rows(slot.file)
            files.append(LedgerFile(slot.uuid, tuple((n, tuple(ts)) for n, ts in rows)))
        record = ExtractRecord(
            chunk_id=f"{self.chunk.chunk_id}-x{len(self._journalled) + 1}",
            extract_uuid=None,
            # A pack of images is a document to Delix: its pages are numbered, not one per file.
            kind="documents" if slots[0].file.page_map is not None else ctx.job.kind,
            engine=ctx.job.row_engine(slots[0].file),
            language=ctx.options.language,
            files=tuple(files),
            claimed_at=time.time(),  # orders claims of writers sharing the output (core/claims.py)
        )
        ctx.store.ledger.record(record)
        self._journalled.append(record.chunk_id)
        return record

    def _claim(self, slots: list[Slot], intent: ExtractRecord) -> tuple[list[Slot], ExtractRecord | None]:
        """Another writer of the output may have or be doing some of these files: set them aside."""
        assert self.ctx.claims is not None
        verdict = self.ctx.claims.check(intent)
        for slot in slots:
            if slot.uuid in verdict.deferred:
                slot.aside = "deferred"
            elif slot.uuid in verdict.done:
                slot.aside = "done"
        if verdict.record is None:
            self._journalled.remove(intent.chunk_id)
        return [s for s in slots if s.aside is None], verdict.record

    def _precheck(self) -> list[Slot]:
        """The slots to upload: files another writer has done or holds are not (core/claims.py)."""
        if self.ctx.claims is None:
            return self.slots
        verdicts = self.ctx.claims.precheck([self.ctx.index.keys_of(s.file) for s in self.slots])
        for slot, aside in zip(self.slots, verdicts, strict=True):
            slot.aside = aside
            if aside is not None:
                self._release(slot)  # its budget slot is free at once
        return [s for s in self.slots if s.aside is None]

    def _set_aside(self, slot: Slot) -> None:
        """A deferred file goes back to the pipeline; a done one counts as resumed, without a row."""
        ctx = self.ctx
        if slot.aside == "deferred":
            with ctx.live_lock:
                ctx.deferred.append(slot.file)
        else:
            done = sum(len(ts) for _, ts in ctx.index.settle(slot.file, lambda _: None))
            ctx.stats.add_planned(0, done)

    def _collect(self, extract: Extract, slots: list[Slot], *, may_park: bool) -> None:
        ctx = self.ctx
        if not extract.is_processed and ctx.options.deferrable and may_park:
            self.parked = True
            with ctx.live_lock:
                ctx.parked.append(extract.uuid)
            return
        extract = wait_processed(
            ctx.client,
            extract,
            poll_interval=ctx.options.poll_interval,
            timeout=ctx.options.extract_timeout,
            clock=ctx.clock,
            sleep=ctx.sleep,
            aborting=ctx.control.aborting,
        )
        pages = file_pages(ctx.client, extract)
        requested = [(s.uuid or "", s.file.requested_pages, s.file.page_map is None) for s in slots]
        results = page_results(extract, pages, requested, ctx.client)
        for slot in slots:
            slot.pages = {n: results[(slot.uuid or "", n)] for n in slot.file.requested_pages}

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

    # ------------------------------------------------------------------ deletion

    def _delete_now(self, uuid: str) -> None:
        """Delete and confirm (404 counts as gone); waits while the file is still being processed."""
        ctx = self.ctx
        first, longest = ctx.tuning.storage_backoff
        delay, start = first, ctx.clock()
        while True:
            try:
                ctx.client.delete_file(uuid)
                break
            except DelixApiError as exc:
                busy = exc.error == ErrorCode.FILE_UNDER_PROCESSING
                if not busy or ctx.clock() - start >= ctx.tuning.under_processing_timeout:
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
        if self.ctx.control.key_refused():
            with self.ctx.live_lock:
                self.ctx.undeleted.add(uuid)
            return
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

    def _send_again(self, slot: Slot) -> set[int]:
        """Pages of a pack that failed, handed back to be sent as images (``retry_packed_failures``).

        Their pack's credits travel with them (a failed page is refunded) so the table still
        adds up to what Delix charged.
        """
        if not (slot.file.members and self.ctx.options.retry_packed_failures):
            return set()
        again: set[int] = set()
        for number, result in slot.pages.items():
            if result.outcome.status == RowStatus.FAILED and result.outcome.error in _RETRYABLE:
                member = slot.file.members[number - 1]
                member.carried = (member.carried[0] + result.charged, member.carried[1] + result.refunded)
                again.add(number)
        if again:
            with self.ctx.live_lock:
                self.ctx.retries.extend(slot.file.members[n - 1] for n in sorted(again))
        return again

    def _write_rows(self, *, only_refused: bool = False) -> None:
        ctx = self.ctx
        rows: list[PageRow] = []
        left = 0
        reused = 0
        for slot in self.slots:
            if only_refused and slot.uuid is not None:
                continue
            if slot.aside is not None:
                self._set_aside(slot)
                continue
            engine = ctx.job.row_engine(slot.file)
            again = self._send_again(slot)
            for number, page_targets in ctx.index.settle(slot.file, slot.outcome_of, keep=again):
                result = slot.pages.get(number)
                out = result.outcome if result is not None else slot.outcome
                if out is None:
                    left += len(page_targets)
                    continue
                charged, refunded = (result.charged, result.refunded) if result is not None else (0, 0)
                charged, refunded = charged + slot.file.carried[0], refunded + slot.file.carried[1]
                rows.extend(
                    page_rows(
                        page_targets,
                        out,
                        engine=engine,
                        language=ctx.options.language,
                        run_id=ctx.run_id,
                        charged=charged,
                        refunded=refunded,
                    )
                )
                reused += len(page_targets) - 1
        if left:
            ctx.stats.add_left(left)
        if rows and ctx.claims is not None:
            keep = ctx.claims.keep_rows([resume_key(r.source_sha256, r.source, r.page_number) for r in rows])
            rows = [r for r, k in zip(rows, keep, strict=True) if k]
        if rows:
            ctx.store.append(self.chunk.chunk_id, rows)
            ctx.stats.add_rows(rows, reused=reused)
        if not only_refused:
            for record_id in self._journalled:
                ctx.store.ledger.forget(record_id)
        ctx.progress.maybe_report()
