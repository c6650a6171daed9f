"""Rows for done pages listed under a new source: a copy, or a file renamed or moved.

The resume key is the content (hash and page number), so a page already in the table is never
sent again, whatever its name. Within one run a second source of the same content gets its
own row, reused from the first's answer. A later run must do the same, or the table's rows
would depend on how the archive was split into runs: day 2's copy of day 1's letter, or a
folder renamed since, would have no row. So such a source gets a row copied from the stored
one of its page -- status, text, error, file and extract, engine and language -- with no
credits (the stored row holds them) and this run's ``run_id``; it counts as reused.

The stored rows are read once per batch of such pages, filtered by content hash, so memory is
bounded by the batch, not by the table.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pyarrow.dataset as ds

from airflow_provider_delix.core.chunks import FileOutcome, PageTarget
from airflow_provider_delix.core.resume import ResumeIndex
from airflow_provider_delix.core.rows import outcome_row
from airflow_provider_delix.core.store import OutputStore
from airflow_provider_delix.core.stored_rows import stored_rows
from airflow_provider_delix.core.supersede import ROUTED_TO, retryable
from airflow_provider_delix.core.table import PageRow, RowStatus, resume_key

log = logging.getLogger(__name__)

BATCH = 1000  # pages whose stored rows are read together
_COLUMNS = (
    *("source", "source_sha256", "page_number", "status", "text", "error", "error_message"),
    *("file_uuid", "extract_uuid", "engine", "language", "processed_at"),
)


def copied_rows(
    store: OutputStore, targets: Sequence[PageTarget], index: ResumeIndex, run_id: str
) -> tuple[list[PageRow], int]:
    """Each target's row copied from its page's newest settled row that answers the run; and how
    many targets got none: their stored row went since the run started (superseded; the next
    run copies the newer one), or it is a routing row ("use the other operator") and this
    source's page already has a row with another engine (``ResumeIndex.still``), which the
    copy would only contradict."""
    matches = index.answers
    keys = {t.key for t in targets}
    shas = sorted({t.source_sha256 for t in targets if t.source_sha256})
    newest: dict[tuple[str, int], tuple[Any, ...]] = {}
    for row in stored_rows(store, _COLUMNS, ds.field("source_sha256").isin(shas)):
        source, sha, page, status, _, error, _, _, _, engine, language, at = row
        key = resume_key(sha, source, page)
        if key not in keys or not matches(engine, language) or retryable(status, error):
            continue
        seen = newest.get(key)
        if seen is None or at > seen[-1]:
            newest[key] = row
    rows: list[PageRow] = []
    missing: list[PageTarget] = []
    for target in targets:
        found = newest.get(target.key)
        if found is None:
            missing.append(target)
            continue
        _, _, _, status, text, error, message, file_uuid, extract_uuid, engine, language, _ = found
        if error in ROUTED_TO and index.still(target.key, target.source, error):
            continue
        out = FileOutcome(RowStatus(str(status)), text, error, message, file_uuid, extract_uuid)
        rows.append(outcome_row(target, out, engine=engine, language=language, run_id=run_id))
    if missing:
        log.warning(
            "%d page(s) done under another source have no stored row to copy (superseded since "
            "the run started?): their sources get no row in this run.",
            len(missing),
        )
    return rows, len(targets) - len(rows)
