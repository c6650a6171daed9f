"""A chunk's upload, waiting out a full shared account under the task's storage window.

Every upload is journalled as an intent before it is sent and settled with the uuids Delix
answered (or none), so a crash cannot leak stored files. Rejected files get their rows and
their budget slots back at once. A send whose answer was lost after sending may have stored
every file of the chunk under uuids no answer named (the hook re-sends an upload at most once
after that, api/retry.py): those copies are counted in ``files_in_doubt`` at once, whether the
upload was then answered, refused, or given up, and the orphan sweep deletes them. A chunk whose
upload lost the answers of both sends is sent again in the same run (at most
:data:`LOST_UPLOAD_ROUNDS` calls) when the sweep deletes such copies (a key registry that does
not only report them), once the budget has room past them: they hold their slots until a sweep
has looked, so the account never holds more than the run's share plus one call's re-send.
Otherwise nothing would ever delete them (Delix does, after 24 h) and each call could leave 10
more: the chunk is left to the next try, as before.

An upload refused with ``GENERAL_EXCEPTION`` (Delix's unexpected server failure: nothing
stored) is first tried again by the hook's retry policy, like a 503. Once the policy gives up
on a multi-file upload, its files are uploaded one at a time, as the API's decisions say for a
refused request: one file Delix cannot take must not sink the others, and a refusal costs
nothing. A file still refused alone gets a ``failed`` row with error ``GENERAL_EXCEPTION``,
which the next run sends again; the run goes on. A 422 without an ErrorEnum value (Laravel's
validation answer, e.g. a file type it will not take) is a refusal too: the files go one at a
time and one refused alone gets a settled ``request_invalid`` row. Where a send of the refused
upload lost its answer first, it may have stored copies no answer names: the chunk is then
sent again only as a lost upload is (below), else left to the next try.
"""

from __future__ import annotations

import logging

from airflow_provider_delix.api.errors import (
    DelixApiError,
    DelixAuthError,
    DelixResponseError,
    DelixStorageFullError,
    DelixTransientError,
    DelixValidationError,
)
from airflow_provider_delix.api.models import ErrorCode, RejectedFile, StoredFile, rejection_message
from airflow_provider_delix.core.budget import BudgetInterrupted
from airflow_provider_delix.core.chunk_bad_answers import ChunkBadAnswers
from airflow_provider_delix.core.codes import PageError
from airflow_provider_delix.core.pipeline_context import (
    ChunkAborted,
    RunContext,
    Slot,
    SlotsReturned,
    StorageWaitTimeout,
)
from airflow_provider_delix.core.planning import ChunkFile, FileOutcome
from airflow_provider_delix.core.table import RowStatus

log = logging.getLogger(__name__)

# Calls of ``upload_files`` for one chunk whose every send lost its answer before the chunk is
# left to the next try (``pages_left``). With an answer lost one time in ten, a chunk's call
# loses both sends one time in a hundred; three calls in a row, one time in a million.
LOST_UPLOAD_ROUNDS = 3


class ChunkUpload(ChunkBadAnswers):
    """The upload step of :class:`.pipeline_worker.ChunkRunner`."""

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
        except (DelixApiError, DelixValidationError) as exc:
            if isinstance(exc, DelixApiError) and exc.error != ErrorCode.GENERAL_EXCEPTION:
                raise
            if exc.lost_attempts and not (self.ctx.lost_copies_swept and _can_requeue(self.ctx)):
                # A send lost its answer before the refusal: copies may be stored under uuids
                # nobody knows, which no sweep of this run deletes. Left, as a lost upload is.
                raise DelixTransientError(
                    f"{exc} A send of this upload lost its answer first and may have stored copies "
                    "the orphan sweep has to find: the chunk is left to the next try.",
                    conn_id=exc.conn_id,
                ) from exc
            self._upload_refused(slots, exc)
            return
        uuids: list[str] = []
        for slot, result in zip(slots, results, strict=True):
            if isinstance(result, StoredFile):
                slot.uuid = result.uuid
                uuids.append(result.uuid)
                self._check_page_count(slot, result)
            else:
                if slot.file.members:
                    slot.unpack = True
                else:
                    why = rejection_message(result.reason)
                    slot.outcome = FileOutcome(RowStatus.REJECTED, None, str(result.reason), why, None, None)
                self._release(slot)
        if uuids:
            with self.ctx.live_lock:
                self.ctx.live.update(uuids)
            self._recorded = True
        self.ctx.store.uploads.record_uploaded(self.chunk.chunk_id, uuids)  # the intent is answered

    def _upload_refused(self, slots: list[Slot], exc: DelixApiError | DelixValidationError) -> None:
        """An upload refused with ``GENERAL_EXCEPTION`` once the retry policy gave up, or with a
        validation answer (nothing stored): its files go one at a time; a file refused alone gets
        its ``failed`` row."""
        code = exc.error if isinstance(exc, DelixApiError) else PageError.REQUEST_INVALID
        if len(slots) > 1:
            log.warning(
                "Chunk %s: Delix refused the upload of %d files (%s); uploading them one at a time.",
                self.chunk.chunk_id,
                len(slots),
                code,
            )
            for slot in slots:
                if self.ctx.control.aborting():
                    return  # the others were never stored: released with the chunk, left for a re-run
                self._upload([slot])
            return
        slot = slots[0]
        self._release(slot)
        if slot.file.members:  # a pack: its images go again alone, as for a pack rejected at upload
            slot.unpack = True
            return
        if isinstance(exc, DelixApiError):  # GENERAL_EXCEPTION: Delix's own failure, worth a re-try
            why = (
                f"{exc} The upload of this file alone was refused too, after the retries (nothing "
                "stored or charged). The next run on this output sends it again."
            )
        else:
            why = f"{exc} The upload of this file alone was refused (nothing stored or charged)."
        slot.outcome = FileOutcome(RowStatus.FAILED, None, str(code), why, None, None)

    def _check_page_count(self, slot: Slot, stored: StoredFile) -> None:
        """A PDF Delix counts other than we do is deleted unread: its pages cannot be matched.

        "All pages" would be charged by Delix's count, and its page k need not be our page k
        (a parser that counts stray page objects, or misses those in object streams). The file
        stays in the slot, is deleted with the chunk and never extracted (nothing charged). A
        pack goes again as images, like a pack Delix refused.
        """
        file = slot.file
        if file.page_map is None or stored.page_count in (None, file.file_pages):
            return  # an image, or a count that agrees (or none given: nothing to check)
        log.warning(
            "Chunk %s: Delix counts %d page(s) in %s, the client %d; not extracted, deleted.",
            self.chunk.chunk_id,
            stored.page_count,
            file.filename,
            file.file_pages,
        )
        if file.members:
            slot.unpack = True
            return
        why = (
            f"Delix counted {stored.page_count} page(s) in the uploaded PDF where pypdf counts "
            f"{file.file_pages}, so its pages cannot be matched to this document's: not extracted "
            "(nothing charged) and deleted. Re-save the PDF (e.g. qpdf in.pdf out.pdf) and run again."
        )
        slot.outcome = FileOutcome(
            RowStatus.FAILED, None, PageError.PAGE_COUNT_MISMATCH, why, stored.uuid, None
        )

    def _upload_waiting(self, files: list[ChunkFile]) -> list[StoredFile | RejectedFile]:
        """Upload, waiting out a full account (other tasks' files) under the storage window.

        A refusal shrinks the window (:mod:`.window`); the chunk then gives its slots back,
        waits a jittered moment and queues for them again, so it goes out only when the smaller
        window has room -- paced by this task's own deletes, not by a blind back-off.
        """
        ctx = self.ctx
        first, longest = ctx.tuning.storage_backoff
        delay, since, attempt, lost_rounds = first, None, 0, 0
        window = ctx.window
        nbytes = sum(f.size for f in files)
        wait_limit = ctx.options.storage_wait_timeout
        # One intent for every attempt below: a storage-full refusal stores nothing, so the
        # record stays true across the waits; every exit settles it.
        ctx.store.uploads.record_upload_intent(self.chunk.chunk_id, len(files))
        while True:
            token = window.sending() if window is not None else 0
            try:
                answer = ctx.client.upload_files([(f.filename, f.data) for f in files])
                self._in_doubt(len(files), getattr(answer, "lost_attempts", 0))
                stored = list(answer)
                if window is not None:
                    use = ctx.budget.usage()
                    window.stored(
                        token,
                        len(files),
                        limited=use.waiting > 0 or use.files + len(files) > ctx.budget.limit,
                        share=ctx.fair_share(),
                    )
                if since is not None:
                    ctx.stats.metrics.storage_wait(ctx.clock() - since)
                return stored
            except DelixStorageFullError as exc:
                self._in_doubt(len(files), exc.lost_attempts)
                ctx.stats.metrics.storage_full()
                if ctx.options.deferrable and ctx.parked:
                    # Part of the account is this run's own parked files, freed only once their
                    # extracts are collected after the deferral: waiting here would only delay it
                    # (and time out). The chunk is left to the next attempt.
                    ctx.store.uploads.record_uploaded(self.chunk.chunk_id, [])  # refused: nothing stored
                    log.info(
                        "Delix storage is full (%s) while extracts wait in the queue: deferring.", exc.error
                    )
                    ctx.control.defer_to_parked()
                    raise ChunkAborted(self.chunk.chunk_id) from exc
                now = ctx.clock()
                since = now if since is None else since
                left = wait_limit - (now - since)
                if left <= 0:
                    ctx.store.uploads.record_uploaded(self.chunk.chunk_id, [])  # refused: nothing stored
                    raise StorageWaitTimeout(
                        f"The Delix account stayed full ({exc.error}) for {wait_limit:.0f} s although "
                        "this run never holds more than the account's limits: other files fill it. Free "
                        "space or raise storage_wait_timeout, then re-run (finished pages are kept)."
                    ) from exc
                attempt += 1
                if window is not None:
                    # What the task holds besides this refused chunk, against an equal share of
                    # files; the share says nothing about bytes, so a size refusal always cuts.
                    held = max(0, ctx.budget.usage().files - len(files))
                    by_count = exc.error == ErrorCode.STORAGE_COUNT_EXCEEDED
                    window.refused(token, held=held, share=ctx.fair_share() if by_count else None)
                    delay = window.retry_delay(attempt, first, longest)
                log.info("Delix storage is full (%s); waiting %.1f s", exc.error, min(delay, left))
                requeue = window is not None and _can_requeue(ctx)
                try:
                    self._wait(len(files), nbytes, min(delay, left), requeue=requeue)
                except BudgetInterrupted:
                    ctx.store.uploads.record_uploaded(self.chunk.chunk_id, [])
                    raise (SlotsReturned if requeue else ChunkAborted)(self.chunk.chunk_id) from exc
                delay = min(delay * 2, longest)
            except (DelixApiError, DelixAuthError, DelixValidationError) as exc:
                self._in_doubt(len(files), exc.lost_attempts)
                ctx.store.uploads.record_uploaded(self.chunk.chunk_id, [])  # refused: nothing stored
                raise
            except DelixTransientError as exc:
                # Given up: what its lost sends may have stored is counted now, so the intent is
                # settled (a later attempt would count it again as a dead writer's upload).
                self._in_doubt(len(files), exc.lost_attempts)
                ctx.store.uploads.record_uploaded(self.chunk.chunk_id, [])
                lost_rounds += 1
                lost = exc.maybe_applied and exc.lost_attempts > 0
                # Sent again only where the copies are swept and the chunk may wait for that
                # through the budget (not in a run that parks extracts: _can_requeue).
                again = lost and ctx.lost_copies_swept and _can_requeue(ctx)
                if not again or lost_rounds >= LOST_UPLOAD_ROUNDS:
                    raise
                self._after_lost_sends(files, nbytes, lost_rounds, exc)
                ctx.store.uploads.record_upload_intent(self.chunk.chunk_id, len(files))

    def _after_lost_sends(self, files: list[ChunkFile], nbytes: int, rounds: int, exc: Exception) -> None:
        """Wait before the chunk's next upload call after one whose sends all lost their answer.

        The chunk gives its slots back and queues for them again: the copies the lost sends may
        have stored hold slots of their own until the sweep has deleted them (``run_cleanup``),
        so the next call goes out only when the account has room past them. Only in a run that
        does not park extracts (:func:`_can_requeue`).
        """
        ctx = self.ctx
        log.warning(
            "Chunk %s: the upload's answer was lost on every send (%s); sending it again once the "
            "budget has room (call %d of %d).",
            self.chunk.chunk_id,
            exc,
            rounds + 1,
            LOST_UPLOAD_ROUNDS,
        )
        try:
            self._wait(len(files), nbytes, ctx.tuning.storage_backoff[0], requeue=True)
        except BudgetInterrupted:
            raise SlotsReturned(self.chunk.chunk_id) from exc

    def _wait(self, files: int, nbytes: int, seconds: float, *, requeue: bool) -> None:
        """Wait before the next upload call; with ``requeue``, without the chunk's slots, which it
        then queues for again. Raises :class:`BudgetInterrupted` if the run stops meanwhile (the
        slots given back are then not taken again)."""
        ctx = self.ctx
        if requeue:
            ctx.budget.release(files, nbytes)
        ctx.sleep(seconds)
        if ctx.control.aborting():
            raise BudgetInterrupted
        if requeue:
            ctx.budget.acquire(files, nbytes, cancel=ctx.control.cancel)

    def _in_doubt(self, files: int, lost_sends: int) -> None:
        """Sends of this upload lost after sending: each may have stored all ``files``, unnamed."""
        if lost_sends <= 0:
            return
        with self.ctx.stats.lock:
            self.ctx.stats.files_in_doubt += lost_sends * files
        log.warning(
            "Chunk %s: %d upload send(s) of %d file(s) lost their answer after sending; Delix may "
            "have stored up to %d file(s) no answer named: no task claims them, the orphan sweep "
            "deletes them (files_in_doubt).",
            self.chunk.chunk_id,
            lost_sends,
            files,
            lost_sends * files,
        )


def _can_requeue(ctx: RunContext) -> bool:
    """Whether a waiting chunk may give its slots back and queue for them again.

    Not in a run that parks extracts (``deferrable``): a parked extract keeps its files' slots
    until a later attempt, so slots given back may go to a chunk whose extract then parks, and
    the waiting chunk would wait for slots nobody in this run frees.
    """
    return not ctx.parked and not ctx.options.deferrable
