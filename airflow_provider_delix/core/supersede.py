"""Pages that failed for a reason other than their content are done again by the next run.

A ``failed`` row says what happened to a page: most such rows are settled (Delix read the
page and could not, ``page_failed``; the request for the file was refused). Four are not
about the page at all, and a re-run on the same ``output_path`` must not keep them:

* ``file_expired``: the stored file vanished twice (a server restart, expiry) before it was read;
* ``malformed_answer``: Delix's answer could not be read or contradicted the request;
* ``no_result``: the extract did not mention the page;
* ``answer_lost``: the extraction's answer was lost after sending, and lost again when re-sent
  (it may have been charged, see ``docs/resume-and-credits.md``).

:class:`~.resume.ResumeIndex` does not count them as done, so the next run sends those pages
again. Their old rows are then *superseded*: when a writer closes, every part file holding a
retryable row whose page has a newer row is rewritten without it (published the same way as
a new part: written aside, then moved over the old name), so ``pandas.read_parquet`` sees one
row per page. A page that fails the same way again keeps only its latest row.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from airflow_provider_delix.core.codes import PageError

log = logging.getLogger(__name__)

RETRY_NEXT_RUN = frozenset(
    {
        PageError.FILE_EXPIRED.value,
        PageError.MALFORMED_ANSWER.value,
        PageError.NO_RESULT.value,
        PageError.ANSWER_LOST.value,
    }
)
KEY_COLUMNS = ("source", "source_sha256", "page_number", "status", "error", "processed_at")


def retryable(status: str | None, error: str | None) -> bool:
    """A row the next run replaces: ``failed`` for a reason that was not the page's content."""
    return status == "failed" and error in RETRY_NEXT_RUN


def _key(source: str, sha: str | None, page: int) -> tuple[str, int]:
    from airflow_provider_delix.core.table import resume_key

    return resume_key(sha, source, page)


def stale_rows(fs: Any, parts: Iterable[str]) -> dict[str, list[int]]:
    """Part file -> indices of its rows that a newer row of the same page supersedes."""
    import pyarrow.parquet as pq

    newest: dict[tuple[str, int], tuple[bool, Any, str, int]] = {}  # key -> (final, time, part, row)
    retry_rows: list[tuple[tuple[str, int], Any, str, int]] = []
    for part in parts:
        with fs.open(part, "rb") as handle:
            table = pq.read_table(handle, columns=list(KEY_COLUMNS))
        columns = [table.column(c).to_pylist() for c in KEY_COLUMNS]
        for row, (source, sha, page, status, error, at) in enumerate(zip(*columns, strict=True)):
            key = _key(source, sha, page)
            final = not retryable(status, error)
            if not final:
                retry_rows.append((key, at, part, row))
            seen = newest.get(key)
            # A settled row beats any retryable one; between equals the later one wins.
            if seen is None or (final, at) > (seen[0], seen[1]):
                newest[key] = (final, at, part, row)
    stale: dict[str, list[int]] = {}
    for key, _at, part, row in retry_rows:
        keep = newest[key]
        if (keep[2], keep[3]) != (part, row):
            stale.setdefault(part, []).append(row)
    return stale


def drop_stale_rows(fs: Any, parts: Iterable[str], scratch: str) -> int:
    """Rewrite the part files that hold superseded rows without them; returns the rows dropped.

    Each rewrite is written to ``scratch`` first and then moved over the part, so a reader sees
    the old file or the new one, never half of one.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    stale = stale_rows(fs, parts)
    dropped = 0
    for part, rows in stale.items():
        with fs.open(part, "rb") as handle:
            table = pq.read_table(handle)
        gone = set(rows)
        keep = [i not in gone for i in range(table.num_rows)]
        kept = table.filter(pa.array(keep))
        name = part.rsplit("/", 1)[-1]
        aside = f"{scratch}/rewrite-{name}"
        fs.mkdirs(scratch, exist_ok=True)
        with fs.open(aside, "wb") as handle:
            pq.write_table(kept, handle, compression="zstd")
        fs.mv(aside, part)
        dropped += len(rows)
    if dropped:
        log.info("Replaced %d earlier row(s) of pages this output has since done again.", dropped)
    return dropped
