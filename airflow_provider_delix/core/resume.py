"""Which pages already have a row for *these* settings, so a re-run never pays for them again.

A page is done when the table (or a journal of any writer) holds a row for the same content
(``source_sha256``; the name for an unreadable source), page number, language and engine. The
engine and language are part of the key because they change the answer: re-running an output
path with another language must extract again, while the same settings must send nothing.
Rows of an ``auto`` document run carry the engine actually used (probe or danlin), so such a
run accepts rows of either.

Checked before the expensive preparation (decoding, re-encoding, splitting) and again by the
planner.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from airflow_provider_delix.core.codes import PageError
from airflow_provider_delix.core.supersede import (
    RECHECK_NEXT_RUN,
    ROUTED_TO,
    CarriedCredits,
    RecheckWatch,
    retryable,
)
from airflow_provider_delix.core.table import RowStatus, resume_key

Key = tuple[str, int]
PROBE = "probe"  # the engine that reads a PDF's text layer (api.models.Engine.PROBE)
_NOT_PROCESSED = {RowStatus.FAILED.value, RowStatus.REJECTED.value, RowStatus.INVALID.value}

# One stored row as the index reads it: source, source_sha256, page_number, status, engine,
# language and (optionally) error, credits_charged, credits_refunded, extract_uuid, processed_at.
RowKey = tuple[Any, ...]


class ResumeIndex:
    """The done pages of one run's settings; ``key in index`` uses :func:`resume_key` keys."""

    def __init__(
        self,
        rows: Iterable[RowKey],
        *,
        engines: Iterable[str],
        language: str | None,
        kind: str | None = None,
    ) -> None:
        self.engines = frozenset(engines)
        self.language = language
        self.kind = kind  # "images" or "documents": which routing rows are about this run
        self._done: set[Key] = set()
        # hash((key, source)) of each settled row: a done page listed under a source without a
        # row of its own (a copy, a renamed file) gets one copied from the stored row (core/copies.py).
        self._sources: set[int] = set()
        self._not_processed: set[Key] = set()
        self._settled: set[Key] = set()
        again: set[Key] = set()
        # Rows of RECHECK_NEXT_RUN: key -> the finding; the run writes a row only if it differs.
        self._recheck: dict[Key, str] = {}
        self._recheck_sources: set[int] = set()  # hash((key, source)) of those rows
        # Rows of the run's language made with another engine, by hash((key, source)) -> their
        # invalid reason (None for others): a routing row ("use the other operator") or the same
        # recheck finding for that source's page would only repeat what is stored.
        self._elsewhere: dict[int, str | None] = {}
        self.watch = RecheckWatch(language=language)  # what this run's new rows replace (core/supersede.py)
        routing: set[Key] = set()  # keys with a row sending the file to one operator
        answered: set[Key] = set()  # keys with a settled row that is not such a row
        self.carried = CarriedCredits()
        self.alone: set[Key] = set()  # to be sent as images, not packed (retry_packed_failures)
        self._tried: set[tuple[Key, str | None]] = set()  # retryable rows: (key, extract uuid)
        # The retryable rows read here, by identity: another writer's retryable row that is not
        # one of them is a try it made since (core/others_rows.py).
        self.retry_ids: set[tuple[Any, ...]] = set()
        for row in rows:
            source, sha, page, status, engine, row_language = row[:6]
            error = row[6] if len(row) > 6 else None
            key = resume_key(sha, source, page)
            routes = status == RowStatus.INVALID and error in ROUTED_TO
            if routes and row_language == language and ROUTED_TO.get(str(error)) == kind:
                # "use this operator", whatever engine the other operator ran: not done for it,
                # and this run's row for the page replaces it (core/supersede.py).
                routing.add(key)
                self.watch.keys.add(key)
                continue
            if not self.matches(engine, row_language):
                if self._probed(engine, row_language, status, error):
                    self._done.add(key)
                    self._sources.add(hash((key, source)))
                if row_language == language:  # this source's page, with another engine (still())
                    self._elsewhere[hash((key, source))] = error if status == RowStatus.INVALID else None
                    if status == RowStatus.INVALID and error in RECHECK_NEXT_RUN:
                        self.watch.note(source, page, error)  # about the source: this run's row replaces it
                continue
            if routes:
                routing.add(key)
            elif status == RowStatus.INVALID and error in RECHECK_NEXT_RUN:
                self._recheck[key] = error
                self._recheck_sources.add(hash((key, source)))
                self.watch.note(source, page, error)  # about this source: its next row replaces it
                continue
            elif retryable(status, error):
                again.add(key)  # not about the page: done again (core.supersede)
                if len(row) > 9:
                    self._tried.add((key, row[9]))
                if len(row) > 10:
                    self.retry_ids.add((sha, page, source, row[10]))
                if row[6] == PageError.FAILED_IN_PACK:
                    self.alone.add(key)
                if len(row) > 8:  # its credits go to the page's next row (core.supersede)
                    self.carried.note(
                        key, int(row[7] or 0), int(row[8] or 0), row[9] if len(row) > 9 else None
                    )
                continue
            self._done.add(key)
            self._sources.add(hash((key, source)))
            if not routes:
                answered.add(key)
            if status in _NOT_PROCESSED:
                self._not_processed.add(key)
        self.carried.discard(self._done)
        self.retry_ids = {r for r in self.retry_ids if resume_key(r[0], r[2], r[1]) not in self._done}
        self.alone -= self._done
        self.sent_again = len(again - self._done)
        self.rechecked = len(self._recheck)  # not found, unreadable, over the budget: looked at again
        # Some retryable row is stored: once the page has a newer row, the old one must go; or a
        # routing row whose page the operator it named has answered since.
        # A recheck row beside a settled row of its page is left from a close that did not
        # supersede (it failed, or the worker was killed): heal it now.
        self.has_stale = (
            bool(again) or bool(routing & answered) or any(k in self._done for k in self._recheck)
        )

    def matches(self, engine: str | None, language: str | None) -> bool:
        """Whether a row made with ``engine``/``language`` answers this run's settings."""
        return engine in self.engines and (language == self.language)

    def answers(self, engine: str | None, language: str | None) -> bool:
        """Whether a settled row of these settings settles a page for this run: one of its own
        settings, or for an image run a ``probe`` row (only a PDF page has one, and the image
        operator could only send that file to the document operator)."""
        return self.matches(engine, language) or (
            self.kind == "images" and engine == PROBE and language == self.language
        )

    def _probed(self, engine: str | None, language: str | None, status: str, error: str | None) -> bool:
        """A settled row of other settings that :meth:`answers` for this run (called for rows
        that do not :meth:`match <matches>`)."""
        return self.answers(engine, language) and not (
            retryable(status, error) or (status == RowStatus.INVALID and error in ROUTED_TO)
        )

    def still(self, key: Key, source: str, error: str) -> bool:
        """Whether a stored row already says ``error`` for this page of this source (a file still
        missing, a page still over the budget), or the other operator already answered a page
        this run would send it to: then the run writes nothing for it."""
        here = hash((key, source))
        if error in ROUTED_TO:
            return here in self._elsewhere
        mine = self._recheck.get(key) == error and here in self._recheck_sources
        return mine or (here in self._elsewhere and self._elsewhere[here] == error)

    def __contains__(self, key: object) -> bool:
        return key in self._done

    def __len__(self) -> int:
        return len(self._done)

    def done(self, sha256: str | None, source: str, page_number: int) -> bool:
        return resume_key(sha256, source, page_number) in self._done

    def add(self, key: Key, source: str) -> None:
        """Pages settled during this run (adopted extracts) count as done for the planner.

        Their rows are this run's (counted in its rows), so the planner does not count them as
        resumed as well: see :attr:`settled`.
        """
        self._done.add(key)
        self._settled.add(key)
        self._sources.add(hash((key, source)))

    def has_source(self, key: Key, source: str) -> bool:
        """Whether the done page ``key`` has a row under ``source`` (not only under another)."""
        return hash((key, source)) in self._sources

    def tried(self, key: Key, extract_uuid: str | None) -> bool:
        """Whether a stored retryable row of ``key`` came from that extract (core/adopt.py)."""
        return extract_uuid is not None and (key, extract_uuid) in self._tried

    @property
    def settled(self) -> set[Key]:
        """Done keys whose row this run wrote (adopted extracts), not an earlier one."""
        return self._settled

    @property
    def not_processed(self) -> set[Key]:
        """Done keys whose row is failed, rejected or invalid (they count against the ratio)."""
        return self._not_processed


def empty_index(engines: Iterable[str] = ("danlin",), language: str | None = "fa") -> ResumeIndex:
    return ResumeIndex((), engines=engines, language=language)
