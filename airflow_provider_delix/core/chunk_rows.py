"""The rows of a chunk: one per page (and per duplicate of its content), written to the store.

Also where pages that failed inside a pack are handed back to be sent again as images
(``retry_packed_failures``), and where files another writer of the output has or holds are
set aside (core/claims.py). The chunk's ledger records go once its rows are durable.
"""

from __future__ import annotations

from airflow_provider_delix.core.codes import RETRY_ALONE
from airflow_provider_delix.core.pipeline_context import ChunkState, Slot
from airflow_provider_delix.core.rows import page_rows
from airflow_provider_delix.core.table import PageRow, RowStatus, resume_key


class ChunkRows(ChunkState):
    """Row writing of :class:`.pipeline_worker.ChunkRunner`."""

    def _set_aside(self, slot: Slot) -> None:
        """A deferred file goes back to the pipeline; a done one counts as resumed, without a row."""
        ctx = self.ctx
        if slot.aside == "deferred":
            with ctx.live_lock:
                ctx.deferred.append(slot.file)
        else:
            done = sum(len(ts) for _, ts in ctx.index.settle(slot.file, lambda _: None))
            ctx.stats.add_planned(0, done)

    def _send_again(self, slot: Slot) -> set[int]:
        """Pages of a pack that failed, handed back to be sent as images (``retry_packed_failures``).

        Their pack's credits travel with them (a failed page is refunded) so the table still
        adds up to what Delix charged.
        """
        if not (slot.file.members and self.ctx.options.retry_packed_failures):
            return set()
        again: set[int] = set()
        for number, result in slot.pages.items():
            if result.outcome.status == RowStatus.FAILED and result.outcome.error in RETRY_ALONE:
                member = slot.file.members[number - 1]
                # The pack's own carry too (a lost send of the pack, assumed charged): its
                # other pages' rows have it, this page's row-to-be must as well.
                member.carried = (
                    member.carried[0] + result.charged + slot.file.carried[0],
                    member.carried[1] + result.refunded + slot.file.carried[1],
                )
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
            if slot.held:  # stays live; its rows count as left at the end of the run (KeptExtract)
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
                if record_id not in self._held:
                    ctx.store.ledger.forget(record_id)
        ctx.progress.maybe_report()
