"""The rows other writers of an output made since this run started (core/claims.py).

Rows present when the run started (every part file, other writers' journals) are its resume
index's. What others add afterwards is read here, journals first, then part files: a settled
row makes its page *done* for this run (its file is dropped, its row not written twice); a
retryable row (an answer lost, ...) that the run's resume index did not read is another
writer's *fresh try*: this run does not send that page again (its carried credits predate that row);
the next run sends it and carries the row on (core/supersede.py).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Container, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from airflow_provider_delix.core.state_dir import StateDir
from airflow_provider_delix.core.supersede import RECHECK_NEXT_RUN, ROUTED_TO, retryable
from airflow_provider_delix.core.table import resume_key

Key = tuple[str, int]
_ROW_COLUMNS = (
    "source",
    "source_sha256",
    "page_number",
    "status",
    "engine",
    "language",
    "error",
    "processed_at",
)


class OthersRows:
    """What other writers of the output wrote since this run started (this run's settings)."""

    def __init__(
        self,
        state: StateDir,
        run_tag: str,
        *,
        fs: Any,
        path: str,
        own_parts: str,
        matches: Callable[[str | None, str | None], bool],
    ) -> None:
        self._state, self._tag = state, run_tag
        self._fs, self._path, self._own_parts = fs, path, own_parts
        self._matches = matches
        self._lock = threading.Lock()
        # Rows present at start (parts, and other writers' journals) are the resume index's.
        self._read: set[str] = {*self.parts(), *self._journals()}
        self._done: set[Key] = set()  # keys other writers gave a settled row
        self._tried: set[Key] = set()  # keys another writer tried since this run started
        self._started = dt.datetime.now(dt.UTC)  # without ``known``: a try is fresh if newer than this
        # The retryable rows this run's resume index read (ResumeIndex.retry_ids): any other is
        # a fresh try. By identity, not by clock: another host's clock may be behind ours.
        self.known: Container[tuple[Any, ...]] | None = None
        self.dropped_rows = 0  # rows not written because another writer had written them

    def new_parts(self) -> bool:
        """Another writer published rows since this one started (it may have left already)."""
        with self._lock:
            read = set(self._read)
        return any(p not in read and not self._own(p) for p in self.parts())

    def done_keys(self) -> set[Key]:
        """Keys of settled rows other writers made since this run started."""
        journals = self._journals()
        with self._lock:
            journals = [p for p in journals if p not in self._read]
        for path, data in self._state.read_many(journals, missing_ok=True).items():
            self._add_rows(path, pa.ipc.open_stream(data).read_all())
        with self._lock:
            parts = [p for p in self.parts() if p not in self._read]
        for part in parts:
            try:
                with self._fs.open(part, "rb") as handle:
                    self._add_rows(part, pq.read_table(handle, columns=list(_ROW_COLUMNS)))
            except FileNotFoundError:
                continue
        with self._lock:
            return set(self._done)

    def settled_keys(self) -> set[Key]:
        """What this run does not send: rows other writers made since it started, fresh tries too."""
        done = self.done_keys()
        with self._lock:
            return done | self._tried

    def keep_rows(self, keys: Sequence[Key]) -> list[bool]:
        """Which rows to write: False for a page another writer already wrote (counted)."""
        with self._lock:
            if not self._done:
                return [True] * len(keys)
            keep = [k not in self._done for k in keys]
            self.dropped_rows += keep.count(False)
            return keep

    def parts(self) -> list[str]:
        self._fs.invalidate_cache(self._path)
        try:
            return [str(p) for p in self._fs.glob(f"{self._path}/*.parquet")]
        except FileNotFoundError:
            return []

    def _own(self, path: str) -> bool:
        return path.rsplit("/", 1)[-1].startswith(self._own_parts)

    def _add_rows(self, path: str, table: pa.Table) -> None:
        columns = [table.column(c).to_pylist() for c in _ROW_COLUMNS]
        keys: set[Key] = set()
        tried: set[Key] = set()
        for source, sha, page, status, engine, language, error, at in zip(*columns, strict=True):
            if not self._matches(engine, language):
                continue
            if status == "invalid" and (error in ROUTED_TO or error in RECHECK_NEXT_RUN):
                continue  # about the run that wrote it (where it looked, which operator): no try, no answer
            if not retryable(status, error):
                keys.add(resume_key(sha, source, page))
            elif self._fresh((sha, page, source, at)):
                tried.add(resume_key(sha, source, page))
        with self._lock:
            self._read.add(path)
            self._done |= keys
            if not self._own(path):  # this run's own retries go on
                self._tried |= tried

    def _fresh(self, row_id: tuple[Any, ...]) -> bool:
        """A retryable row another writer made since this run started: not in its resume index."""
        if self.known is not None:
            return row_id not in self.known
        return row_id[3] is not None and row_id[3] >= self._started

    def _journals(self) -> list[str]:
        """Other writers' journals (rows not yet in a part)."""
        return [
            p
            for tag in sorted(self._state.tags("journal") - {self._tag})
            for p in self._state.files("journal", tag, ".arrow")
        ]
