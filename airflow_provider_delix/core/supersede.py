"""Pages that failed for a reason other than their content are done again by the next run.

A ``failed`` row says what happened to a page: most such rows are settled (Delix read the
page and could not, ``page_failed``; the request for the file was refused). Six are not
about the page at all, and a re-run on the same ``output_path`` must not keep them:

* ``file_expired``: the stored file vanished twice (a server restart, expiry) before it was read;
* ``malformed_answer``: Delix's answer could not be read or contradicted the request;
* ``no_result``: the extract did not mention the page;
* ``answer_lost``: the extraction's answer was lost after sending, and lost again when re-sent
  (it may have been charged, see ``docs/resume-and-credits.md``);
* ``failed_in_pack``: the page failed inside a pack that a later attempt collected, and the run
  asked for such pages to be sent again alone (``retry_packed_failures``): the pack did not
  settle it, its own send as an image will;
* ``GENERAL_EXCEPTION`` (Delix's own ErrorEnum value): the request for the file alone was
  refused by an unexpected failure on Delix's side. A refusal applies nothing and costs
  nothing, and it says nothing about the file, so the next run asks again.

Three ``invalid`` rows describe the run, not the content (:data:`RECHECK_NEXT_RUN`):
``not_found`` and ``unreadable`` (where the file was looked for) and ``over_budget`` (the
task's ``max_stored_bytes``). The next run looks again: the same finding keeps the old row
(nothing is written), another one writes the page's new row. Two more send the file to the
other operator (:data:`ROUTED_TO`: ``pdf_not_supported``, ``not_a_pdf``): done for the operator
that wrote them, not for the one they name; its row for the page replaces them.

:class:`~.resume.ResumeIndex` does not count them as done, so the next run sends those pages
again. Their old rows are then *superseded*: when a writer closes, every part file holding a
retryable row whose page has a newer row is rewritten without it (published the same way as
a new part: written aside, then moved over the old name), so ``pandas.read_parquet`` sees one
row per page. A page that fails the same way again keeps only its latest row.

The old row's credits are not dropped with it: such a row may record a charge (an answer lost
after Delix applied it, an unreadable answer), and ``sum(credits_charged)`` over the table is
what the archive cost. :class:`CarriedCredits` hands them to the page's next row when it is
written, so that row says what the page cost over all its tries, and every later try carries
the latest row's credits, which already include the earlier ones.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from airflow_provider_delix.api.models import ErrorCode
from airflow_provider_delix.core.codes import PageError, Reason

if TYPE_CHECKING:
    from airflow_provider_delix.core.table import PageRow

log = logging.getLogger(__name__)

RETRY_NEXT_RUN = frozenset(
    {
        PageError.FILE_EXPIRED.value,
        PageError.MALFORMED_ANSWER.value,
        PageError.NO_RESULT.value,
        PageError.ANSWER_LOST.value,
        PageError.FAILED_IN_PACK.value,
        ErrorCode.GENERAL_EXCEPTION.value,  # a server failure refused it: free to ask again
    }
)
# Invalid rows that describe the run, not the content: where the file was looked for (it was
# not there, or could not be read) or the task's storage budget (over_budget). The next run
# looks again: the same finding keeps the row as it is (no new row); another one (the file
# turned up, the budget was raised) writes the page's new row, which replaces it.
RECHECK_NEXT_RUN = frozenset({Reason.NOT_FOUND.value, Reason.UNREADABLE.value, Reason.OVER_BUDGET.value})
# Of those, the findings about the whole file: written on page 1 (its pages are not known), so
# any newer row of the source, whichever page a run selects, replaces them.
ABOUT_THE_FILE = frozenset({Reason.NOT_FOUND.value, Reason.UNREADABLE.value})
# Invalid rows that send a file to the other operator, by the kind of run they send it to. Done
# for the operator that wrote them (it would only say so again); not done for the one they
# name, whose rows for the page then replace them.
ROUTED_TO = {Reason.PDF_NOT_SUPPORTED.value: "documents", Reason.NOT_A_PDF.value: "images"}
KEY_COLUMNS = (
    *("source", "source_sha256", "page_number", "engine", "language", "status", "error", "processed_at"),
    *("credits_charged", "credits_refunded"),
)
Matches = Callable[[str | None, str | None], bool]  # (engine, language) -> a row of the run's settings


@dataclass
class RecheckWatch:
    """What makes a closing run supersede rows of :data:`RECHECK_NEXT_RUN` and :data:`ROUTED_TO`.

    Reading every part at close costs memory and time proportional to the table, so it happens
    only when this run wrote a row for a page such a row is about: ``keys``, the pages whose
    routing row names this run's operator; ``pages``, the (source, page) of recheck rows, which
    are about one source (a file not found has no content hash to key it by); or found again a
    file that was missing and whose page already had its row (``found``). A file that stays
    missing, or a page still over the budget, keeps its row and costs nothing.
    """

    keys: set[tuple[str, int]] = field(default_factory=set)
    pages: set[tuple[str, int]] = field(default_factory=set)
    found: set[tuple[str, int]] = field(default_factory=set)
    files: set[str] = field(default_factory=set)  # sources with a row of ABOUT_THE_FILE
    found_files: set[str] = field(default_factory=set)  # of those, found again with their rows stored
    language: str | None = None  # routing rows of this language go whatever engine wrote them

    def touched(self, rows: Iterable[PageRow]) -> bool:
        from airflow_provider_delix.core.table import resume_key

        keys, pages, files = self.keys, self.pages, self.files
        return bool(keys or pages) and any(
            resume_key(r.source_sha256, r.source, r.page_number) in keys
            or (r.source, r.page_number) in pages
            or r.source in files
            for r in rows
        )

    def note(self, source: str, page: int, error: str | None) -> None:
        """A recheck row (:data:`RECHECK_NEXT_RUN`) of this source's page is stored."""
        self.pages.add((source, page))
        if error in ABOUT_THE_FILE:
            self.files.add(source)

    def found_again(self, source: str, page: int) -> bool:
        """This source's page is done and listed again: a recheck row about it (or, for a row
        about the whole file, about any of its pages) goes when the store closes."""
        hit = False
        if (source, page) in self.pages:
            self.found.add((source, page))
            hit = True
        if source in self.files:
            self.found_files.add(source)
            hit = True
        return hit


def retryable(status: str | None, error: str | None) -> bool:
    """A row the next run replaces: ``failed`` for a reason that was not the page's content, or
    ``invalid`` for one that describes the run (:data:`RECHECK_NEXT_RUN`)."""
    if status == "failed":
        return error in RETRY_NEXT_RUN
    return status == "invalid" and error in RECHECK_NEXT_RUN


class CarriedCredits:
    """Credits of stored retryable rows, added once to the next row of the same page.

    Built by :class:`~.resume.ResumeIndex` from the rows it does not count as done; applied by
    :meth:`.store.OutputStore.append` to the rows it journals, whichever path wrote them (a
    chunk's answer, an adopted extract). A page's first new row takes them (the others of its
    content carry 0, as usual), so the table's sum stays what Delix charged once the old row
    is superseded. The run's own figures (manifest, progress) count only its own spending.
    """

    def __init__(self) -> None:
        # key -> (charged, refunded, extract uuid of the row that holds them)
        self._credits: dict[tuple[str, int], tuple[int, int, str | None]] = {}
        self._lock = threading.Lock()

    def note(self, key: tuple[str, int], charged: int, refunded: int, extract_uuid: str | None) -> None:
        """A retryable row of ``key``: the latest try's row holds the most (it carries the earlier ones).

        Exact while each page's tries form one chain, which the claims keep (one writer tries a
        page at a time, and leaves another writer's fresh try to the next run).
        """
        if charged or refunded:
            with self._lock:
                seen = self._credits.get(key)
                if seen is None or (charged, refunded) > seen[:2]:
                    self._credits[key] = (charged, refunded, extract_uuid)

    def note_rows(self, rows: Iterable[PageRow]) -> None:
        """Rows just stored that a later row of the same run is to replace."""
        from airflow_provider_delix.core.table import resume_key

        for row in rows:
            key = resume_key(row.source_sha256, row.source, row.page_number)
            self.note(key, row.credits_charged, row.credits_refunded, row.extract_uuid)

    def discard(self, keys: Iterable[tuple[str, int]]) -> None:
        """Pages that already have a settled row: that row took the credits, or nothing will."""
        for key in keys:
            self._credits.pop(key, None)

    def apply(self, rows: Sequence[PageRow]) -> list[PageRow]:
        """``rows`` with the carried credits added to the first row of each page that has some.

        A row from the same extract as the one it replaces (a collected extract read again, after
        an attempt could not read it or drop its record) already holds that extract's charge:
        it takes the larger of the two, which keeps what earlier tries carried, and not the
        charge twice.
        """
        from airflow_provider_delix.core.table import resume_key

        out = list(rows)
        if not self._credits:
            return out
        with self._lock:
            for i, row in enumerate(out):
                carried = self._credits.pop(resume_key(row.source_sha256, row.source, row.page_number), None)
                if carried is None:
                    continue
                if carried[2] is not None and carried[2] == row.extract_uuid:
                    charged = max(row.credits_charged, carried[0])
                    refunded = max(row.credits_refunded, carried[1])
                else:
                    charged, refunded = row.credits_charged + carried[0], row.credits_refunded + carried[1]
                out[i] = replace(row, credits_charged=charged, credits_refunded=refunded)
        return out


def stale_rows(
    fs: Any, parts: Iterable[str], matches: Matches, watch: RecheckWatch | None = None
) -> dict[str, list[int]]:
    """Part file -> indices of its retryable rows that a newer try of the same page replaces.

    A row that sends its file to the other operator (:data:`ROUTED_TO`) goes once the same
    source's page has another settled row. A row of :data:`RECHECK_NEXT_RUN` (about a source:
    not found, unreadable, over the budget) goes for any newer row of the same source and page
    (the file turned up, keyed by its content now; the budget was raised), or when the closing
    run found the file with its page's row already stored (``watch.found``); one of
    :data:`ABOUT_THE_FILE` for a newer row of any page of the source, or the source found again
    (``watch.found_files``): a run selecting pages 2-3 never writes page 1. Both are about
    one source, so a copy's rows never remove them. Any other retryable row goes when its page
    (resume key) has a settled row; or a newer retryable
    row of the same source; or, when it holds credits, a newer retryable row that holds credits
    (which carried them on). So the rows of one try -- one per source that shares the content,
    only the first holding the credits -- stay together until a later try replaces them. A
    settled row of the other engine of an ``engine="auto"`` run (a probe row, then a danlin try)
    replaces it only when newer: an older one did not carry its credits.

    Only rows of the closing run's settings (``matches``: its engines and language) take part,
    as replaced or as replacing: those are the rows whose credits its index carried on. A row of
    another language or engine answers another question; a run of those settings replaces it.
    """
    import pyarrow.parquet as pq

    from airflow_provider_delix.core.table import resume_key

    settled: dict[tuple[str, int], Any] = {}  # key -> time of its newest settled row
    settled_by: set[tuple[tuple[str, int], str | None]] = set()  # (key, engine) of settled rows
    newest_of_source: dict[tuple[tuple[str, int], str], Any] = {}
    newest_credited: dict[tuple[str, int], Any] = {}
    watched = watch.pages if watch is not None else set()  # (source, page) of recheck rows
    found = watch.found if watch is not None else set()
    files = watch.files if watch is not None else set()  # sources with a row about the whole file
    found_files = watch.found_files if watch is not None else set()
    newest_of_page: dict[tuple[str, int], Any] = {}  # of watched pages: (source, page) -> newest row
    newest_of_file: dict[str, Any] = {}  # of those sources: source -> newest row, any page
    answered: set[tuple[tuple[str, int], str]] = set()  # (key, source) of settled non-routing rows
    retry_rows: list[tuple[tuple[str, int], str, str | None, bool, Any, str, int]] = []
    rechecks: list[tuple[tuple[str, int], Any, str, int, bool]] = []  # ..., part, row, about the file
    routing: list[tuple[tuple[str, int], str, str, int]] = []  # key, source, part, row
    for part in parts:
        with fs.open(part, "rb") as handle:
            table = pq.read_table(handle, columns=list(KEY_COLUMNS))
        columns = [table.column(c).to_pylist() for c in KEY_COLUMNS]
        for row, (source, sha, page, engine, language, status, error, at, charged, refunded) in enumerate(
            zip(*columns, strict=True)
        ):
            routes = status == "invalid" and error in ROUTED_TO
            if not matches(engine, language):
                if watch is not None and language == watch.language:  # another engine's, about the source
                    if routes:
                        routing.append((resume_key(sha, source, page), source, part, row))
                    elif status == "invalid" and retryable(status, error):
                        rechecks.append(((source, page), at, part, row, error in ABOUT_THE_FILE))
                continue
            key = resume_key(sha, source, page)
            if (source, page) in watched:
                newest_of_page[(source, page)] = max(at, newest_of_page.get((source, page), at))
            if source in files:
                newest_of_file[source] = max(at, newest_of_file.get(source, at))
            if routes:
                routing.append((key, source, part, row))
                continue
            if status == "invalid" and retryable(status, error):  # about this source: where, budget
                rechecks.append(((source, page), at, part, row, error in ABOUT_THE_FILE))
                continue
            if not retryable(status, error):
                answered.add((key, source))
                settled[key] = max(at, settled.get(key, at))
                settled_by.add((key, engine))
                continue
            credited = bool(charged or refunded)
            retry_rows.append((key, source, engine, credited, at, part, row))
            newest_of_source[(key, source)] = max(at, newest_of_source.get((key, source), at))
            if credited:
                newest_credited[key] = max(at, newest_credited.get(key, at))
    stale: dict[str, set[int]] = {}
    for key, source, part, row in routing:  # the operator it named has answered this source's page
        if (key, source) in answered:
            stale.setdefault(part, set()).add(row)
    for source_page, at, part, row, whole in rechecks:  # the page (or file) has a newer row, or was found
        source = source_page[0]
        if (
            source_page in found
            or newest_of_page.get(source_page, at) > at
            or (whole and (source in found_files or newest_of_file.get(source, at) > at))
        ):
            stale.setdefault(part, set()).add(row)
    for key, source, engine, credited, at, part, row in retry_rows:
        # Any settled row of the same engine; of the other engine of an auto run, a newer one.
        replaced_by_settled = (key, engine) in settled_by or (key in settled and settled[key] > at)
        if (
            replaced_by_settled
            or newest_of_source[(key, source)] > at
            or (credited and newest_credited[key] > at)
        ):
            stale.setdefault(part, set()).add(row)
    return {part: sorted(rows) for part, rows in stale.items()}


def drop_stale_rows(
    fs: Any, parts: Iterable[str], scratch: str, matches: Matches, watch: RecheckWatch | None = None
) -> int:
    """Rewrite the part files that hold superseded rows without them; returns the rows dropped.

    Each rewrite is written to ``scratch`` first and then moved over the part, so a reader sees
    the old file or the new one, never half of one.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    stale = stale_rows(fs, parts, matches, watch)
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
