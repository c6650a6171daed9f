"""Re-attach to extracts that earlier attempts paid for: collect their pages instead of paying again.

The ledger (:mod:`.ledger`) of a writer that is gone -- crashed, killed, or deferred to the
triggerer -- lists its extracts and, for each stored file, the rows its pages answer. For each:

* ``GET /extracts/{uuid}``: still ``processing`` -> wait for it (or, in a deferrable run, leave
  it for the trigger and defer again); ``processed`` -> read every page (inline or paginated),
  write the rows that are not in the table yet, delete the files, drop the record;
* 404, for the extract or for a page of its contents: Delix no longer has it (read again, it
  would fail every later attempt the same way). The planner sends its pages again (paid twice, counted as
  ``extracts_lost`` and logged); until their rows come, ``answer_lost`` rows hold the first
  charge at the published price per page (counted in ``credits_at_risk``);
* ``processed`` but unreadable, or pages it did not settle (left out; failed inside a pack
  with ``retry_packed_failures``): retryable rows hold their share of the known cost, and the
  planner sends those pages again (their new rows carry it on, see :mod:`.supersede`);
* another live writer of the output is collecting it (:mod:`.adopt_claims`: exactly one
  writer collects each extract): left to that writer, its files kept;
* an *intent* without an extract uuid: the writer died while the request was on the wire.
  Delix may have charged it and cannot be asked (no extract can be found by its files), so its
  pages are sent again, counted as ``pages_in_doubt`` (possibly paid twice) and logged. Its
  files are in the uploads journal and deleted with the other orphans.

Runs before any new chunk is planned, so the planner sees every adopted page as done.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from airflow_provider_delix.api.errors import (
    DelixApiError,
    DelixNotFoundError,
    DelixResponseError,
    DelixTransientError,
)
from airflow_provider_delix.api.models import Extract, page_price
from airflow_provider_delix.core.adopt_claims import AdoptionClaims
from airflow_provider_delix.core.adopt_rows import WrittenRows, all_written, record_rows, written_rows
from airflow_provider_delix.core.chunks import FileOutcome
from airflow_provider_delix.core.client import DelixClient
from airflow_provider_delix.core.codes import PageError
from airflow_provider_delix.core.collect import (
    PageResult,
    extract_charge,
    file_pages,
    page_results,
    wait_processed,
)
from airflow_provider_delix.core.ledger import ExtractRecord
from airflow_provider_delix.core.lost_answers import charge_lost_sends
from airflow_provider_delix.core.options import RunOptions
from airflow_provider_delix.core.resume import ResumeIndex
from airflow_provider_delix.core.run_stats import RunStats
from airflow_provider_delix.core.store import OutputStore
from airflow_provider_delix.core.table import PageRow, RowStatus, resume_key, split_credits

log = logging.getLogger(__name__)

# What became of one collected record: rows written and the record dropped, or marked collected
# with the files a delete failed for; rows written and the record kept as it was (an unexpected
# failure); Delix lost it; or still processing (deferrable runs).
Outcome = Literal["collected", "kept", "lost", "waiting"]


@dataclass(slots=True)
class Adoption:
    adopted: int = 0
    lost: int = 0
    waiting: list[str] = field(default_factory=list)  # still processing (deferrable runs only)
    # In use -- processing, or collected by another live writer -- so never deleted as orphans.
    waiting_files: set[str] = field(default_factory=set)
    waiting_pages: int = 0
    in_doubt_pages: int = 0  # in requests sent by a dead writer that never saw the answer


def adopt_extracts(
    client: DelixClient,
    store: OutputStore,
    index: ResumeIndex,
    options: RunOptions,
    stats: RunStats,
    *,
    claims: AdoptionClaims,
    run_id: str,
    clock: Callable[[], float],
    sleep: Callable[[float], object],
    aborting: Callable[[], bool],
) -> Adoption:
    records = store.ledger.orphaned(wait=True)
    written = written_rows(store, records, index)  # of other settings' extracts (core/adopt_rows.py)
    adopter = _Adopter(
        client,
        store,
        index,
        options,
        stats,
        run_id,
        clock,
        sleep,
        aborting,
        claims.written_elsewhere,
        written,
    )
    # Collected or lost here, or collected already: a dead adopter's marker may name it again.
    settled: set[str] = {r.extract_uuid for r in records if r.collected and r.extract_uuid is not None}
    copies: dict[str, list[ExtractRecord]] = {}  # an extract's record and dead collectors' markers
    for r in records:
        if r.extract_uuid is not None:
            copies.setdefault(r.extract_uuid, []).append(r)
    for record in records:
        if aborting():
            break
        if record.extract_uuid is None:
            log.warning(
                "An earlier attempt stopped while its extraction of %d page(s) was on the wire: Delix "
                "may have charged for it, and there is no way to find that extract. The pages are "
                "sent again and may be paid twice (counted as pages_in_doubt).",
                record.page_count,
            )
            adopter.result.in_doubt_pages += record.page_count
            store.ledger.forget_record(record)
            continue
        if record.extract_uuid in settled or record.collected:
            _finish_deletes(client, store, record)
            continue
        if record.extract_uuid in adopter.result.waiting:
            continue
        marker = claims.take(record)
        if marker is None:
            log.info(
                "Extract %s paid for by an earlier attempt is being collected by another writer of "
                "this output: its %d file(s) are left to it.",
                record.extract_uuid,
                len(record.files),
            )
            adopter.result.waiting_files.update(record.file_uuids)
            continue
        now = [store.ledger.reread(r) for r in copies[record.extract_uuid]]
        if any(r is None or r.collected for r in now) or all_written(record, written):
            # Collected (through any copy) since listed, or before a crash kept its record.
            claims.release(marker)
            for fresh in now:
                if fresh is not None:
                    _finish_deletes(client, store, fresh)
            settled.add(record.extract_uuid)
            continue
        outcome: Outcome | None = None
        try:
            outcome = adopter.collect(record, record.extract_uuid)
            if outcome in ("collected", "lost"):  # before the marker goes: no copy is collected again
                for other in copies[record.extract_uuid]:
                    if other.path != record.path:
                        store.ledger.collected(other, set(other.file_uuids))
        finally:
            if outcome != "kept":
                claims.release(marker)
        if outcome != "waiting":
            settled.add(record.extract_uuid)
    return adopter.result


@dataclass(slots=True)
class _Adopter:
    """Collects one answered record at a time (this writer holds its marker)."""

    client: DelixClient
    store: OutputStore
    index: ResumeIndex
    options: RunOptions
    stats: RunStats
    run_id: str
    clock: Callable[[], float]
    sleep: Callable[[float], object]
    aborting: Callable[[], bool]
    written_elsewhere: Callable[[], set[tuple[str, int]]]  # keys other writers gave a row since start
    written: WrittenRows  # rows of other settings' extracts on record already stored
    result: Adoption = field(default_factory=Adoption)

    def collect(self, record: ExtractRecord, extract_uuid: str) -> Outcome:
        """What became of the extract: ``collected`` (rows written; the record dropped, or marked
        collected with the files left to delete), ``kept`` (rows written, the record could not be
        updated: it stays as it was, and so does this writer's marker, which keeps other live
        writers from collecting it again), ``lost`` or ``waiting``."""
        client, store, result = self.client, self.store, self.result
        try:
            extract = client.get_extract(extract_uuid)
        except DelixNotFoundError:
            return self._lost(record, f"extract {extract_uuid}")
        if not extract.is_processed and self.options.deferrable:
            result.waiting.append(extract_uuid)
            result.waiting_files.update(record.file_uuids)
            result.waiting_pages += sum(len(f.pages) for f in record.files)
            return "waiting"
        extract = wait_processed(
            client,
            extract,
            poll_interval=self.options.poll_interval,
            timeout=self.options.extract_timeout,
            clock=self.clock,
            sleep=self.sleep,
            aborting=self.aborting,
        )
        try:
            results = page_results(
                extract, file_pages(client, extract), _requested(record), client, kind=record.kind
            )
        except DelixNotFoundError:
            # The extract answered, its contents did not (removed since, or never kept): the
            # same 404 on every later attempt, so it is lost like the extract itself.
            return self._lost(record, f"the contents of extract {extract_uuid}", extract)
        except DelixResponseError as exc:
            # Read again on every attempt, the same unreadable answer would stop each one here.
            # It was paid, and its cost is known: malformed_answer rows hold it (split over its
            # pages) while the pages are sent again, and their new rows carry it on.
            log.error(
                "Extract %s paid for by an earlier attempt cannot be read (%s): its pages are sent "
                "again (paid twice), their first cost kept on malformed_answer rows.",
                extract.uuid,
                exc,
            )
            results = _unreadable(record, extract, f"{exc}. The request was paid; these pages are not read.")
        # Sends of this request that lost their answer before it was answered: assumed charged.
        charge_lost_sends(list(results.values()), extract, self.stats, lost=record.lost_sends)
        rows, _ = self._write(record, results)
        result.adopted += 1
        log.info(
            "Collected %d page(s) of extract %s paid for by an earlier attempt.", len(rows), extract.uuid
        )
        try:
            dropped = _drop(client, store, record)
        except Exception:
            # The rows are durable: keep the record and this writer's marker, so no other live
            # writer collects the extract again; a later attempt finishes the deletes.
            log.exception("Could not drop the record of collected extract %s (kept)", extract.uuid)
            return "kept"
        return "collected" if dropped else "kept"

    def _lost(self, record: ExtractRecord, what: str, extract: Extract | None = None) -> Outcome:
        """Delix answers 404 for ``what`` (the extract, or its contents): its pages cannot be read.

        Paid (Delix answered with its uuid). The extract itself gone, its cost is unknown:
        answer_lost rows hold the published price per page, counted at risk, while the pages are
        sent again. Only its contents gone (``extract`` answered), the cost is the extract's own
        and certain: the rows hold it, and only the sends whose answer was lost are at risk. The
        record goes: read again, it would fail every later attempt the same way.
        """
        log.warning(
            "Delix no longer has %s paid for by an earlier attempt: its pages are sent again (paid "
            "twice); the first charge, %s, stays on their answer_lost rows.",
            what,
            "assumed at the published price per page" if extract is None else "its own cost",
        )
        self.result.lost += 1
        gone = _gone(record, f"Delix no longer has {what} (404), which paid for this page", extract)
        written, held = self._write(record, gone)
        held = [*written, *held]  # another settings' rows are written as they are
        sends = 1 + record.lost_sends
        in_doubt = sends if extract is None else record.lost_sends  # an answered send is certain
        if held and in_doubt:  # not when every page already had its row (a page's first row holds it)
            pages = {resume_key(r.source_sha256, r.source, r.page_number) for r in held}
            charge = sum(r.credits_charged for r in held)
            self.stats.add_lost_answers(in_doubt, len(pages), charge * in_doubt // sends)
        _drop(self.client, self.store, record)
        return "lost"

    def _write(
        self, record: ExtractRecord, results: dict[tuple[str, int], PageResult]
    ) -> tuple[list[PageRow], list[PageRow]]:
        """Store the record's rows (this writer holds its marker): those that settle a page, and
        those that hold its credits while it is sent again (as built, before any carry)."""
        alone = record.packed and self.options.retry_packed_failures
        rows, again = record_rows(
            record, results, self.index, self.run_id, retry_alone=alone, stored=self.written
        )
        # Rows another writer wrote since this one started (it collected the extract and died
        # before dropping the record, or dropped it after this one listed it): not twice.
        elsewhere = self.written_elsewhere()
        rows = [r for r in rows if resume_key(r.source_sha256, r.source, r.page_number) not in elsewhere]
        again = [r for r in again if resume_key(r.source_sha256, r.source, r.page_number) not in elsewhere]
        # Durable before the marker goes: this run, or the next, sends the others again.
        self.store.append(f"adopt-{record.chunk_id}", rows, holding=again)
        self.stats.add_rows(rows)
        if again:
            self._send_again(again)
        return rows, again

    def _send_again(self, rows: list[PageRow]) -> None:
        """Pages the extract did not settle (a retryable row: Delix left them out or answered
        them unreadably; with ``retry_packed_failures``, they failed inside the pack).

        Their rows are stored, so no other writer takes them for undone work it may skip, and
        they are not done: the planner sends them again (``failed_in_pack`` ones as images).
        The store hands their credits to the pages' new rows and supersedes them when it closes
        (``OutputStore.append(holding=...)``). Not counted in this run's rows (their new rows
        are); their own credits are (as built: not what they carry from earlier runs).
        """
        self.index.alone.update(
            resume_key(r.source_sha256, r.source, r.page_number)
            for r in rows
            if r.error == PageError.FAILED_IN_PACK
        )
        self.stats.add_holding(rows)
        log.info(
            "%d page(s) of an extract an earlier attempt paid for were not settled by it: they are "
            "sent again.",
            len({resume_key(r.source_sha256, r.source, r.page_number) for r in rows}),
        )


def _gone(
    record: ExtractRecord, message: str, extract: Extract | None = None
) -> dict[tuple[str, int], PageResult]:
    """Every requested page as ``answer_lost``: the extract's contents are gone.

    The request and each of its sends whose answer was lost are assumed charged: at the
    extract's own cost when it answered (split over its pages), else at the price per page the
    vendor's examples give (200 per image page, 100 per PDF page; there is no price list).
    """
    sends = 1 + record.lost_sends
    if extract is not None:
        gone = _every_page(
            record,
            PageError.ANSWER_LOST,
            message,
            lambda pages: split_credits(extract_charge(extract, pages, record.kind) * sends, pages),
        )
        refunds = split_credits(extract.returned_credits or 0, len(gone))  # which pages: unknown now
        for result, refund in zip(gone.values(), refunds, strict=True):
            result.refunded = refund
        return gone
    price = page_price(record.kind) * sends
    return _every_page(record, PageError.ANSWER_LOST, message, lambda pages: [price] * pages)


def _unreadable(record: ExtractRecord, extract: Extract, message: str) -> dict[tuple[str, int], PageResult]:
    """Every requested page as ``malformed_answer``, with its share of the extract's cost."""
    return _every_page(
        record,
        PageError.MALFORMED_ANSWER,
        message,
        lambda pages: split_credits(extract_charge(extract, pages, record.kind), pages),
    )


def _every_page(
    record: ExtractRecord, error: PageError, message: str, charges: Callable[[int], list[int]]
) -> dict[tuple[str, int], PageResult]:
    """Each page the record requested, failed with ``error``, charged ``charges(pages)`` in order."""
    requested = [(f.uuid, n) for f in record.files for n, _ in f.pages]
    return {
        (uuid, n): PageResult(
            FileOutcome(RowStatus.FAILED, None, error, message, uuid, record.extract_uuid), charged=charge
        )
        for (uuid, n), charge in zip(requested, charges(len(requested)), strict=True)
    }


def _requested(record: ExtractRecord) -> list[tuple[str, list[int], bool]]:
    single = record.kind == "images"
    return [(f.uuid, [n for n, _ in f.pages], single) for f in record.files]


def _finish_deletes(client: DelixClient, store: OutputStore, record: ExtractRecord) -> None:
    """A record whose rows are in the table: only its files are left to delete. An unexpected
    failure leaves it on record (marked collected) for a later attempt instead of failing this one."""
    if not record.collected:  # a copy of an extract collected through another: say so first
        store.ledger.collected(record, set(record.file_uuids))
    try:
        _drop(client, store, record)
    except Exception:
        log.exception("Could not delete the files left of collected extract %s (kept)", record.extract_uuid)


def _drop(client: DelixClient, store: OutputStore, record: ExtractRecord) -> bool:
    """Delete the extract's files (gone already is fine), then forget them and the record.

    When a delete fails, the record is rewritten as collected with the files left: a later
    attempt deletes them. True either way once the record says so (the collector's marker can
    go: no one collects a collected record again).
    """
    gone = []
    for uuid in record.file_uuids:
        try:
            client.delete_file(uuid)
            gone.append(uuid)
        except (DelixApiError, DelixTransientError) as exc:
            log.warning(
                "Could not delete Delix file %s of an adopted extract (kept on record): %s", uuid, exc
            )
    store.uploads.forget_uploads(gone)
    if len(gone) < len(record.file_uuids):
        # Its rows are written: what is left is deletes, never a second collection (which would
        # write its unsettled rows again and count its charge twice).
        store.ledger.collected(record, set(record.file_uuids) - set(gone))
        return True
    store.ledger.forget_record(record)
    return True
