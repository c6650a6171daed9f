"""The rows of a chunk: one per page (and per duplicate of its content), written to the store.

Also where pages that failed inside a pack are handed back to be sent again as images
(``retry_packed_failures``), and where files another writer of the output has or holds are
set aside (core/claims.py). The chunk's ledger records go once its rows are durable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from airflow_provider_delix.core.chunks import ChunkFile, FileOutcome, PageTarget
from airflow_provider_delix.core.codes import RETRY_ALONE
from airflow_provider_delix.core.pipeline_context import ChunkState, Slot
from airflow_provider_delix.core.rows import failed_in_pack, left_from_pack, page_rows, unanswered
from airflow_provider_delix.core.table import PageRow, RowStatus, resume_key


class ChunkRows(ChunkState):
    """Row writing of :class:`.pipeline_worker.ChunkRunner`."""

    def _not_written_elsewhere(self, rows: list[PageRow]) -> list[PageRow]:
        """Rows of pages no other writer of the output wrote meanwhile (core/claims.py)."""
        assert self.ctx.claims is not None
        if not rows:
            return rows
        keep = self.ctx.claims.keep_rows([resume_key(r.source_sha256, r.source, r.page_number) for r in rows])
        return [r for r, k in zip(rows, keep, strict=True) if k]

    def _rows(
        self, targets: Sequence[PageTarget], out: FileOutcome, engine: str, credits: tuple[int, int]
    ) -> list[PageRow]:
        """The rows of one page of this run (its language, its run id), ``credits`` on the first."""
        ctx = self.ctx
        return page_rows(
            targets,
            out,
            engine=engine,
            language=ctx.options.language,
            run_id=ctx.run_id,
            charged=credits[0],
            refunded=credits[1],
        )

    def _set_aside(self, slot: Slot) -> None:
        """A deferred file goes back to the pipeline; a done one counts as resumed, without a row."""
        ctx = self.ctx
        if slot.aside == "deferred":
            with ctx.live_lock:
                ctx.deferred.append(slot.file)
        else:
            done = sum(len(ts) for _, ts in ctx.index.settle(slot.file, lambda _: None))
            ctx.stats.add_planned(0, done)

    def _send_again(self, slot: Slot, engine: str) -> tuple[set[int], list[ChunkFile], list[PageRow]]:
        """Pages of a pack that failed, to be sent again as images (``retry_packed_failures``).

        Returns their page numbers, their members, and a ``failed_in_pack`` row for each: stored
        before the members go back to the pipeline, with the pack's credits for the page (its
        share, and the pack's lost sends). The image's row then carries them and replaces it
        (core/supersede.py); if the image gets no answer -- out of credits, Delix unreachable, the run
        stopped -- that row keeps the credits and the next run sends the page alone.
        """
        ctx = self.ctx
        if not (slot.file.members and ctx.options.retry_packed_failures):
            return set(), [], []
        again: set[int] = set()
        members: list[ChunkFile] = []
        rows: list[PageRow] = []
        for number, result in sorted(slot.pages.items()):
            if result.outcome.status == RowStatus.FAILED and result.outcome.error in RETRY_ALONE:
                if result.lost_sends or slot.file.carried != (0, 0):
                    # A send of the pack lost its answer (maybe charged): no other request for
                    # the page in this run (core.lost_answers). Its row, holding those credits,
                    # is one the next run sends again alone.
                    slot.pages[number] = replace(result, outcome=left_from_pack(result.outcome))
                    continue
                member = slot.file.members[number - 1]
                again.add(number)
                members.append(member)
                credits = (result.charged + slot.file.carried[0], result.refunded + slot.file.carried[1])
                rows.extend(
                    self._rows(ctx.index.peek(member), failed_in_pack(result.outcome), engine, credits)
                )
        return again, members, rows

    def _write_rows(self, *, only_refused: bool = False) -> None:
        ctx = self.ctx
        rows: list[PageRow] = []
        replaced: list[PageRow] = []  # failed_in_pack rows: their pages are sent again
        unsettled: list[PageRow] = []  # unanswered pages that carry a lost send: on record
        retries: list[ChunkFile] = []
        left = 0
        reused = 0
        for slot in self.slots:
            if only_refused and slot.uuid is not None:
                continue
            if slot.aside is not None:
                self._set_aside(slot)
                continue
            if slot.held:  # stays live; its rows count as left at the end of the run (KeptExtract)
                continue
            if slot.unpack:  # a refused pack: the refusal costs nothing, its images go again alone
                ctx.index.settle(slot.file, slot.outcome_of, keep=range(1, len(slot.file.members) + 1))
                if slot.file.carried != (0, 0):  # the pack's lost sends: held on rows, carried on
                    engine = ctx.job.row_engine(slot.file)
                    for member in slot.file.members:
                        replaced.extend(
                            self._rows(ctx.index.peek(member), unanswered(None), engine, slot.file.carried)
                        )
                retries.extend(slot.file.members)
                continue
            engine = ctx.job.row_engine(slot.file)
            again, members, in_pack = self._send_again(slot, engine)
            retries.extend(members)
            replaced.extend(in_pack)
            for number, page_targets in ctx.index.settle(slot.file, slot.outcome_of, keep=again):
                result = slot.pages.get(number)
                out = result.outcome if result is not None else slot.outcome
                if out is None and slot.file.carried == (0, 0):
                    left += len(page_targets)
                    continue
                into = rows
                if out is None:  # left, but a lost send of it is assumed charged: on record
                    out, into = unanswered(slot.uuid), unsettled
                    left += len(page_targets)
                charged, refunded = (result.charged, result.refunded) if result is not None else (0, 0)
                credits = (charged + slot.file.carried[0], refunded + slot.file.carried[1])
                into.extend(self._rows(page_targets, out, engine, credits))
                reused += (len(page_targets) - 1) if into is rows else 0
        if left:
            ctx.stats.add_left(left)
        if ctx.claims is not None:
            rows, unsettled, replaced = map(self._not_written_elsewhere, (rows, unsettled, replaced))
        # Rows that hold credits for pages this run has not settled (left, or sent again alone):
        # not counted as the run's rows, only their credits. A later row of the page, in this
        # run or the next, carries them on and replaces them.
        holding = [*unsettled, *replaced]
        if rows or holding:
            ctx.store.append(self.chunk.chunk_id, rows, holding=holding)
            ctx.stats.add_rows(rows, reused=reused)
            ctx.stats.add_holding(holding)
        if retries:
            with ctx.live_lock:
                ctx.retries.extend(retries)
        if not only_refused:
            for record_id in self._journalled:
                if record_id not in self._held:
                    ctx.store.ledger.forget(record_id)
        ctx.progress.maybe_report()
