"""The rows a collected extract record gives, and which of them the table already holds.

A record lists, for each stored file, the rows its pages answer (:mod:`.ledger`). Collecting it
writes those rows once: a page the run's resume index holds is done; a retryable row the
extract already gave is not written twice (:meth:`.ResumeIndex.tried`).

A record of *other* settings (another language or engine, left by a dead writer that shared the
output) is collected as it is, and the run's index holds only its own settings' rows. A crash
between writing such a record's rows and dropping the record leaves it on record with its rows
in the table: :func:`written_rows` finds them by the extract's uuid, so the next collection
neither writes them again nor reads the extract again. The lookup is one filtered read of the
table, for the other settings' records on the ledger only, so its memory is bounded by the
ledger, not by the table.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Set as AbstractSet

import pyarrow.dataset as ds

from airflow_provider_delix.core.chunks import PageTarget
from airflow_provider_delix.core.codes import RETRY_ALONE
from airflow_provider_delix.core.collect import PageResult
from airflow_provider_delix.core.ledger import ExtractRecord
from airflow_provider_delix.core.resume import ResumeIndex
from airflow_provider_delix.core.rows import failed_in_pack, page_rows
from airflow_provider_delix.core.store import OutputStore
from airflow_provider_delix.core.stored_rows import stored_rows
from airflow_provider_delix.core.supersede import retryable
from airflow_provider_delix.core.table import PageRow, RowStatus

# (extract uuid, source hash, page number, source) of a stored row.
RowOfExtract = tuple[str | None, str | None, int, str]
WrittenRows = AbstractSet[RowOfExtract]
_COLUMNS = ("extract_uuid", "source_sha256", "page_number", "source")


def written_rows(
    store: OutputStore, records: Iterable[ExtractRecord], index: ResumeIndex
) -> set[RowOfExtract]:
    """The stored rows of the records' extracts that are not of the run's settings."""
    uuids = {
        r.extract_uuid
        for r in records
        if r.extract_uuid is not None and not r.collected and not index.matches(r.engine, r.language)
    }
    if not uuids:
        return set()
    where = ds.field("extract_uuid").isin(sorted(uuids))
    return {row for row in stored_rows(store, _COLUMNS, where) if row[0] in uuids}


def all_written(record: ExtractRecord, written: WrittenRows) -> bool:
    """Whether every row the record answers is stored already (only a crash keeps such a record)."""
    return bool(written) and all(
        _row_id(record, target) in written
        for f in record.files
        for _, targets in f.pages
        for target in targets
    )


def _row_id(record: ExtractRecord, target: PageTarget) -> RowOfExtract:
    return (record.extract_uuid, target.source_sha256, target.page_number, target.source)


def record_rows(
    record: ExtractRecord,
    results: dict[tuple[str, int], PageResult],
    index: ResumeIndex,
    run_id: str,
    *,
    retry_alone: bool,
    stored: WrittenRows = frozenset(),
) -> tuple[list[PageRow], list[PageRow]]:
    """The record's rows not stored yet; a page whose content another source of the record shares
    gets its own row, as in the run that sent it (the resume key is the content).

    Rows that do not settle their page (:func:`.supersede.retryable`: left out, unreadable,
    and with ``retry_alone`` -- a pack, ``retry_packed_failures`` -- what a lone send may
    change, as ``failed_in_pack``) come second and do not make the page done; one this extract
    already gave (an attempt collected it and could not drop the record) is not written again.
    A record of other settings (engine, language) than the run's is collected as it is: its
    rows settle nothing for this run, and this run sends none of its pages again; its rows an
    earlier collection wrote (``stored``, from :func:`written_rows`) are not written again.
    """
    ours = index.matches(record.engine, record.language)
    rows: list[PageRow] = []
    again: list[PageRow] = []
    written: dict[tuple[str, int], set[str]] = {}  # by this record: key -> sources
    for f in record.files:
        for number, targets in f.pages:
            page = results[(f.uuid, number)]
            outcome = page.outcome
            if ours and retry_alone and outcome.status == RowStatus.FAILED and outcome.error in RETRY_ALONE:
                outcome = failed_in_pack(outcome)
            unsettled = ours and retryable(outcome.status, outcome.error)
            built = page_rows(
                targets,
                outcome,
                engine=record.engine,
                language=record.language,
                run_id=run_id,
                charged=page.charged + f.carried[0],
                refunded=page.refunded + f.carried[1],
            )
            for target, row in zip(targets, built, strict=True):
                sources = written.get(target.key)
                if sources is None and ours and target.key in index:
                    continue  # the earlier attempt stored it before it stopped (with its credits)
                if sources is not None and target.source in sources:
                    continue
                if not ours and _row_id(record, target) in stored:
                    continue  # collected before a crash kept its record (the index is not its settings')
                if unsettled and index.tried(target.key, record.extract_uuid):
                    continue  # stored by an earlier collection of this extract (it carries it on)
                (again if unsettled else rows).append(row)
                if ours and not unsettled:
                    index.add(target.key, target.source)
                written.setdefault(target.key, set()).add(target.source)
    return rows, again
