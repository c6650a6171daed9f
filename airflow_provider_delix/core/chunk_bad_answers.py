"""Answers that cannot be read: an upload answer not matching its files, an extraction's unreadable answer.

Neither is retried: an unreadable upload answer paid nothing (its pages get
``malformed_answer`` rows and the files it named are deleted at once), an unreadable
extraction answer was paid (its pages get ``malformed_answer`` rows carrying the charge).
See ``docs/pipeline.md`` (Errors, per class).
"""

from __future__ import annotations

import logging

from airflow_provider_delix.api.errors import DelixResponseError
from airflow_provider_delix.api.models import Extract, page_price
from airflow_provider_delix.core.chunk_deletes import ChunkDeletes
from airflow_provider_delix.core.codes import PageError
from airflow_provider_delix.core.collect import PageResult, extract_charge
from airflow_provider_delix.core.pipeline_context import Slot
from airflow_provider_delix.core.planning import FileOutcome
from airflow_provider_delix.core.table import RowStatus, split_credits

log = logging.getLogger(__name__)


class ChunkBadAnswers(ChunkDeletes):
    """Bad-answer handling of :class:`.pipeline_worker.ChunkRunner`."""

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
        ctx.store.uploads.record_uploaded(self.chunk.chunk_id, named)
        self._recorded = self._recorded or bool(named)
        # and each send before it whose answer was lost may have stored them all (api/retry.py)
        unnamed = max(len(slots) - len(named), 0) + exc.lost_attempts * len(slots)
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
            # Only these: on a re-upload (an expired file) the chunk's other files are stored.
            ctx.store.uploads.record_gone(self.chunk.chunk_id, named)
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
        if extract is None:
            charge = page_price(kind) * len(requested)
        else:
            charge = extract_charge(extract, len(requested), kind)
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
