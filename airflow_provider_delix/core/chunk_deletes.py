"""Deleting a chunk's files: each confirmed delete frees its budget slot at once.

A chunk's deletes run on the run's delete pool, one request per file, all in parallel, and
are scheduled *before* the rows are written: they do not need the rows, and the budget
refills while the store works. A file is gone when its delete is confirmed (404 included);
one still being processed is waited for. A delete that fails keeps the file on record
(``undeleted``) for the final cleanup and the next run; after a refused key none is sent.

A file still in use when the wait is over, or at once when a queued request's answer was
lost (Delix may be working on it for an extract nobody can name), is kept the same way
without failing the run: Delix refuses the delete until it is done, and the pages' rows do
not depend on it. It keeps its storage slot, so, as for a held extract, no new chunk starts
and the attempt ends; the next one deletes it (or Delix does, 24 h after upload).
"""

from __future__ import annotations

import logging
from typing import TypeGuard

from airflow_provider_delix.api.errors import DelixApiError, DelixAuthError
from airflow_provider_delix.api.models import ErrorCode
from airflow_provider_delix.core.pipeline_context import ChunkState, Slot

log = logging.getLogger(__name__)


class ChunkDeletes(ChunkState):
    """The delete path of :class:`.pipeline_worker.ChunkRunner`."""

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
                busy = _in_use(exc)
                waited = self._extract_unknown or ctx.clock() - start >= ctx.tuning.under_processing_timeout
                # After a cancel ctx.sleep returns at once: waiting on would be a loop of DELETEs.
                if not busy or waited or ctx.control.aborting():
                    raise
                ctx.sleep(delay)
                delay = min(delay * 2, longest)
        with ctx.live_lock:
            ctx.live.discard(uuid)

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

    def _schedule_deletes(self) -> None:
        # Files of an extract left on record stay stored, in their budget slots, and on the
        # chunk's upload record: a later attempt collects that extract, then deletes them.
        stored = [s for s in self.slots if s.uuid is not None and not s.held]
        for slot in self.slots:
            if slot.uuid is None:
                self._release(slot)
        self._deletes_left = len(stored)
        if not stored:
            if self._recorded and not self._holds_files():
                self.ctx.store.uploads.record_deleted(self.chunk.chunk_id)
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
                self._deletes_failed = True  # the chunk's upload record stays: the next run deletes it
            if _in_use(exc):
                log.warning(
                    "Delix file %s of chunk %s is still in use by an extraction (%s): kept on record "
                    "in its storage slot; no new chunk starts, and the next attempt deletes it.",
                    uuid,
                    self.chunk.chunk_id,
                    exc,
                )
                # Its slot stays taken while Delix works: chunks started now could wait for it.
                self.ctx.control.file_busy(exc)
                return
            log.error("Could not delete Delix file %s of chunk %s: %s", uuid, self.chunk.chunk_id, exc)
            self.ctx.control.fail(exc, abort=isinstance(exc, DelixAuthError))
            return
        self._release(slot)
        with self._lock:
            self._deletes_left -= 1
            last = self._deletes_left == 0 and not self._deletes_failed and not self._holds_files()
        if last:
            try:
                self.ctx.store.uploads.record_deleted(self.chunk.chunk_id)
            except Exception as exc:
                log.exception("Could not record the deletion of chunk %s", self.chunk.chunk_id)
                self.ctx.control.fail(exc, abort=False)


def _in_use(exc: Exception) -> TypeGuard[DelixApiError]:
    return isinstance(exc, DelixApiError) and exc.error == ErrorCode.FILE_UNDER_PROCESSING
