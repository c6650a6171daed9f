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
rows and every lost send is counted (:mod:`.lost_answers`). So do the pages of a request lost
once and then refused: neither retried one by one nor re-uploaded, they wait for the next run,
so that no page is paid more than twice in a run.

This module drives a chunk through those steps and holds its extraction (journal, claims,
refusals, collecting); each other step is a base class in a module of its own: the shared
state in :mod:`.pipeline_context`, the upload and its storage waits in :mod:`.chunk_upload`,
unreadable answers in :mod:`.chunk_bad_answers`, the deletes in :mod:`.chunk_deletes` and the
rows in :mod:`.chunk_rows`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial

from airflow_provider_delix.api.errors import (
    DelixApiError,
    DelixAuthError,
    DelixError,
    DelixInsufficientCreditsError,
    DelixNotFoundError,
    DelixResponseError,
    DelixTransientError,
    DelixValidationError,
)
from airflow_provider_delix.api.models import Extract
from airflow_provider_delix.core.chunk_rows import ChunkRows
from airflow_provider_delix.core.chunk_upload import ChunkUpload
from airflow_provider_delix.core.codes import PageError
from airflow_provider_delix.core.collect import (
    ExtractWaitTimeout,
    PageResult,
    WaitAborted,
    file_pages,
    page_results,
    wait_processed,
)
from airflow_provider_delix.core.ledger import ExtractRecord, LedgerFile
from airflow_provider_delix.core.lost_answers import (
    answer_lost_results,
    carry_lost_sends,
    charge_lost_sends,
    refused_after_lost_results,
)
from airflow_provider_delix.core.pipeline_context import ChunkAborted, KeptExtract, Slot, StorageWaitTimeout
from airflow_provider_delix.core.planning import FileOutcome
from airflow_provider_delix.core.table import RowStatus

log = logging.getLogger(__name__)


class ChunkRunner(ChunkUpload, ChunkRows):
    """Runs one chunk; upload, bad answers, deletes and rows are in the modules of its bases."""

    # ------------------------------------------------------------------ driver

    def run(self) -> None:
        ctrl = self.ctx.control
        started = self.ctx.clock()
        try:
            if not ctrl.aborting():
                todo = self._precheck()
                if todo:
                    self._upload(todo)
                stored = [s for s in self.slots if s.extractable]
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
        except DelixValidationError as exc:
            # The task's settings (an engine Delix refuses): every chunk would be refused alike.
            log.error("Chunk %s: %s", self.chunk.chunk_id, exc)
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
        # Its pages count as waiting at the end of the run (KeptExtract). Rows of refused files
        # (rejected at upload) are written now; the rest wait.
        self._write_rows(only_refused=True)

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
            # A queued request's files stay in use while an extract nobody can name works on
            # them, maybe for minutes: their deletes are not waited for. Sync ones free in seconds.
            self._extract_unknown = any(s.file.queued for s in slots)
            _every_page(
                slots, partial(answer_lost_results, error=exc, kind=intent.kind, stats=self.ctx.stats)
            )
        except (DelixApiError, DelixValidationError, DelixNotFoundError, DelixAuthError) as exc:
            carry_lost_sends([s.file for s in slots], exc, intent.kind, self.ctx.stats)  # re-send refused
            self._journalled.remove(intent.chunk_id)
            self.ctx.store.ledger.forget(intent.chunk_id)  # refused: nothing was charged
            self._refused(exc, slots, reupload=reupload)
        else:
            answered = intent.answered(extract.uuid, lost_sends=extract.lost_attempts)
            try:
                self.ctx.store.ledger.record(answered)
            except BaseException:
                # Paid, and the uuid could not be journalled: the intent stays, so the next
                # attempt counts these pages in doubt instead of sending them again unseen.
                self._hold(intent, slots, answered=answered)
                raise
            stored = [s for s in self.slots if s.uuid is not None]
            try:
                self._collect(extract, slots, intent.kind, may_park=len(slots) == len(stored))
            except DelixResponseError as exc:
                if not extract.is_processed:
                    # The answer to a GET of a queued extract: reading it again is free, and
                    # its files may still be in use. Held like a failed poll, not paid again.
                    self._hold(answered, slots)
                    raise
                self._unreadable_extract(slots, exc, extract, intent.kind)
            except BaseException:
                self._hold(answered, slots)
                raise
            if self.parked:
                self._keep(answered, slots, parked=True)
            else:  # a parked extract's lost sends are charged when it is collected
                pages = [s.pages[n] for s in slots for n in s.file.requested_pages]
                charge_lost_sends(pages, extract, self.ctx.stats)

    def _refused(self, exc: DelixError, slots: list[Slot], *, reupload: bool) -> None:
        """An extraction request was refused (nothing charged): settle, retry or re-upload its files.

        Unless an earlier send of it lost its answer (maybe charged, carried by the files): then
        its pages get ``answer_lost`` rows and wait for the next run. Another request for them
        here would come with a re-send of its own, and a page could be paid three times.
        """
        if isinstance(exc, DelixInsufficientCreditsError | DelixAuthError):
            raise exc
        if isinstance(exc, DelixValidationError) and exc.about_engine:
            raise exc  # the task's engine settings: no file fares better alone
        # Laravel's answer for a uuid it does not know is a validation error naming the field.
        gone = isinstance(exc, DelixNotFoundError) or (
            isinstance(exc, DelixValidationError) and exc.about_uuids
        )
        if exc.lost_attempts:
            log.warning(
                "Chunk %s: %s; a send was lost before: left to the next run.", self.chunk.chunk_id, exc
            )
            _every_page(slots, partial(refused_after_lost_results, error=exc))
        elif not gone:  # refused (an ErrorEnum value, or a validation answer): nothing applied
            if len(slots) > 1:
                # One bad file must not sink the others: try each alone (a refusal costs nothing).
                self._one_by_one(slots, reupload=reupload)
            elif slots[0].file.members:
                log.warning(
                    "Chunk %s: Delix refused a pack of %d image(s) (%s); they are sent again as images.",
                    self.chunk.chunk_id,
                    len(slots[0].file.members),
                    exc,
                )
                slots[0].unpack = True
            elif isinstance(exc, DelixApiError):
                slots[0].outcome = FileOutcome(
                    RowStatus.FAILED, None, exc.error, exc.api_message or str(exc), slots[0].uuid, None
                )
            else:  # its message quotes the fields Delix named, and what it said
                slots[0].outcome = FileOutcome(
                    RowStatus.FAILED, None, PageError.REQUEST_INVALID, str(exc), slots[0].uuid, None
                )
        elif reupload:
            self._reupload(slots)
            again = [s for s in slots if s.extractable]
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
            files.append(LedgerFile(slot.uuid, tuple((n, tuple(ts)) for n, ts in rows), slot.file.carried))
        record = ExtractRecord(
            chunk_id=f"{self.chunk.chunk_id}-x{len(self._journalled) + 1}",
            extract_uuid=None,
            # A pack of images is a document to Delix: its pages are numbered, not one per file.
            kind="documents" if slots[0].file.page_map is not None else ctx.job.kind,
            packed=bool(slots[0].file.members),
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

    def _collect(self, extract: Extract, slots: list[Slot], kind: str, *, may_park: bool) -> None:
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
        results = page_results(extract, pages, requested, ctx.client, kind=kind)
        for slot in slots:
            slot.pages = {n: results[(slot.uuid or "", n)] for n in slot.file.requested_pages}

    def _hold(
        self, record: ExtractRecord, slots: list[Slot], *, answered: ExtractRecord | None = None
    ) -> None:
        """Paid for, answered, not read (a wait that timed out or was stopped, a poll that failed).

        The record stays in the ledger and the files stay stored, out of the run's cleanup: a
        later attempt collects the extract (:mod:`.adopt`) instead of paying for its pages again.
        Deleting them now would also be refused while a queued extract still works on them.
        """
        self._held.add(record.chunk_id)
        uuids = set(record.file_uuids)
        for slot in slots:
            slot.held = slot.uuid in uuids
        with self.ctx.live_lock:
            self.ctx.live -= uuids
        # An answer whose record could not be written: written again at the end of the run.
        self._keep(answered or record, slots, parked=False, stale=answered is not None)
        if record.extract_uuid is None:
            what = "its paid extraction (uuid not journalled; the next attempt counts it in doubt)"
        else:
            what = f"extract {record.extract_uuid} (a later attempt collects it without paying again)"
        log.warning(
            "Chunk %s: %s stays on record with %d page(s) and %d file(s).",
            self.chunk.chunk_id,
            what,
            record.page_count,
            len(uuids),
        )
        self.ctx.control.extract_held()

    def _keep(self, record: ExtractRecord, slots: list[Slot], *, parked: bool, stale: bool = False) -> None:
        """The extract stays on record for a later attempt; its files stay live in the index."""
        uuids = set(record.file_uuids)
        files = {s.uuid: s.file for s in slots if s.uuid is not None and s.uuid in uuids}
        with self.ctx.live_lock:
            self.ctx.kept.append(KeptExtract(record, files, parked, stale))

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


def _every_page(slots: list[Slot], results_for: Callable[[list[str | None]], list[PageResult]]) -> None:
    """Each requested page of ``slots`` gets its result, from ``results_for`` given the stored
    file of every page in order (the pages of a request that lost its answer, or was refused
    after a lost send)."""
    requested = [(s, n) for s in slots for n in s.file.requested_pages]
    results = results_for([s.uuid for s, _ in requested])
    for (slot, number), result in zip(requested, results, strict=True):
        slot.pages[number] = result
