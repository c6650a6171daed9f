"""OutputStore: streams page rows into Parquet part files and keeps the resume state beside them.

Why it is built this way (details in ``docs/table.md``):

* Credits cost money, so a row must be durable the moment :meth:`OutputStore.append` returns:
  each chunk is first written as a small Arrow IPC journal file. Part files are large and close
  only every ``rows_per_file`` rows; when one closes, the journals of its rows are deleted.
* Readers must never see half a file. A part is written under ``_delix_state/partial/`` and moved to
  its final name only once complete. This is done on object storage too, although one PUT is
  atomic there: fsspec files close themselves on garbage collection, so a dying writer could
  otherwise publish a footer-less object under the final name. The move costs one server-side
  copy per part file (every 20,000 rows by default), which is cheap.
* Several writers may share an output path (parallel tasks, a zombie try): recovery adopts the
  state only of writers whose lease is gone or stopped beating (``core/lease.py``), so it never
  takes over (or deletes Delix files of) a writer that is still alive.

The journal's format is in ``core/row_journal.py``; the records of uploaded Delix files, which
the store keeps beside its rows, in ``core/upload_records.py``.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import uuid
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from airflow_provider_delix.core.exclusive import FileMarkers
from airflow_provider_delix.core.lease import WriterLease
from airflow_provider_delix.core.ledger import ExtractLedger
from airflow_provider_delix.core.row_journal import journal_bytes, read_journals
from airflow_provider_delix.core.state_dir import StateDir, safe_name
from airflow_provider_delix.core.supersede import CarriedCredits, Matches, RecheckWatch, drop_stale_rows
from airflow_provider_delix.core.table import (
    SCHEMA,
    Location,
    PageRow,
    RowStatus,
    iter_batches,
    open_output,
    resume_key,
    rows_to_record_batch,
)
from airflow_provider_delix.core.upload_records import UploadRecords

_ROW_ID = ("source_sha256", "page_number", "source", "processed_at")
_RESUME_COLUMNS = (
    *("source", "source_sha256", "page_number", "status", "engine", "language", "error"),
    *("credits_charged", "credits_refunded", "extract_uuid", "processed_at"),
)
RowId = tuple[Any, ...]  # the values of _ROW_ID: one stored row, wherever it is

log = logging.getLogger(__name__)

STATE_DIR = "_delix_state"
Key = tuple[str, int]


def _safe_tag(tag: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", tag).strip("_-")[:80]
    return f"{cleaned or 'run'}-{uuid.uuid4().hex[:8]}"


class OutputStore:
    """The output table plus its resume state, on any fsspec storage.

    ``output_path`` is a local path or URI (opened with ``storage_options``) or a location that
    carries its filesystem (``ObjectStoragePath``, ``FsPath``: credentials from a connection).

    ``append`` may be called from several threads. Use as a context manager: a clean exit closes
    the last part file; an exception calls :meth:`abort`.
    """

    def __init__(
        self,
        output_path: Location,
        *,
        run_tag: str = "run",
        storage_options: Mapping[str, Any] | None = None,
        row_group_rows: int = 1000,
        rows_per_file: int = 20_000,
        compression: str = "zstd",
        heartbeat_seconds: float = 10.0,
        stale_after_seconds: float = 45.0,
    ) -> None:
        if row_group_rows < 1 or rows_per_file < 1:
            raise ValueError("row_group_rows and rows_per_file must be positive")
        self.output_path = output_path
        self.storage_options = dict(storage_options or {})
        self.fs, self.path = open_output(output_path, self.storage_options)
        # A random suffix makes every attempt's files its own, even when the caller reuses a tag.
        self.run_tag = _safe_tag(run_tag)
        self.row_group_rows = row_group_rows
        self.rows_per_file = rows_per_file
        self.compression = compression
        self.stale_after_seconds = stale_after_seconds
        self._state = f"{self.path}/{STATE_DIR}"
        self._lock = threading.RLock()
        self._pending: list[pa.RecordBatch] = []  # rows of the next row group: the only buffer
        self._pending_rows = self._pending_bytes = self.max_buffered_bytes = 0
        self._writer: pq.ParquetWriter | None = None
        self._file: Any = None
        self._tmp_path, self._file_rows, self._seq = "", 0, 0
        self._file_journals: set[str] = set()  # journals whose rows are in the open part
        self._in_flight: set[str] = set()  # journals being written, not yet in a part
        self._counts: Counter[str] = Counter()
        self.recovered_rows, self.parts, self._closed = 0, list[str](), False
        self.settings: Matches | None = None  # the run's engines and language: the rows it replaces
        self.drop_stale_on_close = False  # some row of those settings is to be replaced
        self.carried = CarriedCredits()  # their credits, for the pages' next rows (the run's index's)
        self.watch = RecheckWatch()  # rows a new row of this run may replace (the index's)
        self._sd = StateDir(self.fs, self._state)
        self._sd.mkdirs(self.path)
        self._lease = WriterLease(
            self._sd,
            self.run_tag,
            heartbeat_seconds=heartbeat_seconds,
            stale_after_seconds=stale_after_seconds,
        )
        self.ledger = ExtractLedger(self._sd, self.run_tag, self._lease)
        self.uploads = UploadRecords(self._sd, self.run_tag, self._lease, self._lock)

    # ----------------------------------------------------------------- writing
    def append(self, chunk_id: str, rows: Sequence[PageRow], *, holding: Sequence[PageRow] = ()) -> None:
        """Store the rows of one chunk; they are durable (journaled) when this returns.

        ``holding``: retryable rows that hold the credits of pages this run sends again or
        leaves. Their credits go to the pages' next rows, and the store supersedes them when it
        closes (core/supersede.py); only those of the run's own settings (another language's
        page is another page).
        """
        if not rows and not holding:
            return
        safe_name(chunk_id)
        # Credits of the rows these replace go on them (core/supersede.py).
        stored = self.carried.apply([*rows, *holding])
        batch = rows_to_record_batch(stored)
        stem = f"{self._state}/journal/{self.run_tag}/{chunk_id}"
        with self._lock:
            self._check_open()
            # A chunk appended twice gets a second journal instead of overwriting unpublished rows.
            journal, k = f"{stem}.arrow", 1
            while journal in self._file_journals or journal in self._in_flight:
                k += 1
                journal = f"{stem}.{k}.arrow"
            self._in_flight.add(journal)
        try:
            # Outside the lock: workers journal in parallel.
            self._sd.write_bytes(journal, journal_bytes(batch))
            with self._lock:
                self._check_open()
                self._add(batch, [journal])
                self._counts.update(batch.column("status").to_pylist())
        finally:
            with self._lock:
                self._in_flight.discard(journal)
        self.drop_stale_on_close |= self.watch.touched(rows)  # a page a recheck/routing row is about
        if holding:
            settings = self.settings
            held = stored[len(rows) :]
            self.carried.note_rows(r for r in held if settings is None or settings(r.engine, r.language))
            self.drop_stale_on_close = True

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"OutputStore for {self.output_path} is closed")

    def _add(self, batch: pa.RecordBatch, journals: list[str]) -> None:
        self._file_journals.update(journals)
        if batch.num_rows == 0:  # nothing to write (recovered rows all published already)
            return
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        self._pending_bytes += batch.nbytes
        self.max_buffered_bytes = max(self.max_buffered_bytes, self._pending_bytes)
        self._file_rows += batch.num_rows
        if self._pending_rows >= self.row_group_rows:
            self._flush_row_group()
        # Rotate at chunk boundaries so that a chunk (one journal) always lives in one part file.
        if self._file_rows >= self.rows_per_file:
            self._finish_part()

    def _flush_row_group(self) -> None:
        if not self._pending:
            return
        if self._writer is None:
            tmp_dir = f"{self._state}/partial/{self.run_tag}"
            self._sd.mkdirs(tmp_dir)
            self._tmp_path = f"{tmp_dir}/{self._part_name()}"
            self._file = open(self._tmp_path, "wb") if self._sd.local else self.fs.open(self._tmp_path, "wb")  # noqa: SIM115
            self._writer = pq.ParquetWriter(self._file, SCHEMA, compression=self.compression)
        table = pa.Table.from_batches(self._pending, schema=SCHEMA)
        self._writer.write_table(table, row_group_size=max(table.num_rows, 1))
        self._pending, self._pending_rows, self._pending_bytes = [], 0, 0

    @property
    def part_prefix(self) -> str:
        """How this writer's part files are named: others tell its rows from theirs by it."""
        return f"part-{self.run_tag}-"

    def _part_name(self) -> str:
        return f"{self.part_prefix}{self._seq:05d}.parquet"

    def _finish_part(self) -> None:
        """Close the open part, publish it under its final name, then drop the journals it covers."""
        self._flush_row_group()
        if self._writer is None:
            self._sd.rm(self._file_journals)
            self._file_journals = set()
            return
        self._writer.close()
        if self._sd.local:
            self._file.flush()
            os.fsync(self._file.fileno())
        self._file.close()
        final = f"{self.path}/{self._part_name()}"
        if self._sd.local:
            os.replace(self._tmp_path, final)  # same file system: atomic rename
        else:
            self.fs.mv(self._tmp_path, final)
        self._sd.rm(self._file_journals)
        self.parts.append(final)
        self._writer, self._file, self._tmp_path = None, None, ""
        self._file_rows, self._file_journals = 0, set()
        self._seq += 1

    # ----------------------------------------------------------------- closing
    def close(self) -> None:
        """Publish the last part file and release the lease. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._finish_part()
            self._closed = True
            if self.drop_stale_on_close and self.settings is not None:
                self._drop_stale(self.settings)
            self._release()

    def _drop_stale(self, matches: Matches) -> None:
        """Rows of pages this output has since done again go (:mod:`.supersede`); never fails the run."""
        try:
            self.fs.invalidate_cache(self.path)
            parts = sorted(self.fs.glob(f"{self.path}/*.parquet"))
            drop_stale_rows(self.fs, parts, f"{self._state}/partial/{self.run_tag}", matches, self.watch)
        except Exception:
            log.warning("Could not replace superseded rows; the next run tries again.", exc_info=True)

    def abort(self) -> None:
        """Best-effort close that never raises: what can be published is; journals keep the rest."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for step in (self._finish_part, self._release):
                try:
                    step()
                except Exception:  # journals keep every row that could not be published
                    log.warning(
                        "OutputStore %s: %s failed while aborting", self.run_tag, step.__name__, exc_info=True
                    )

    def _release(self) -> None:
        self._lease.release()

    def __enter__(self) -> OutputStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    @property
    def state(self) -> StateDir:
        """The resume state's directory (other writers' claims are read there: core/claims.py)."""
        return self._sd

    # ----------------------------------------------------------------- counters
    @property
    def buffered_bytes(self) -> int:
        """Bytes of rows held in memory waiting for the next row group (bounded by row_group_rows)."""
        return self._pending_bytes

    @property
    def counts(self) -> dict[str, int]:
        """Rows appended by this store, by status (every status present, zero included)."""
        with self._lock:
            return {status.value: self._counts.get(status.value, 0) for status in RowStatus}

    # ----------------------------------------------------------------- resume
    def recover(self, *, wait: bool = True) -> int:
        """Adopt what crashed writers left: publish their journal rows once, delete their temp parts.

        Writers that start together all see the same dead writers: exactly one of them publishes
        each one's rows (:mod:`.exclusive`), the others leave them to it. Rows already in a part
        file (a crash between publishing a part and deleting its journals) are skipped: the same
        row, keyed by (source_sha256, page_number, source, processed_at). Not by page alone: a row
        of the same page in another language, or the row a re-sent page's new row replaces, is
        another row. Returns the number of rows recovered.
        """
        recovered = 0
        dead = sorted(self._lease.dead_writers(wait))
        markers = FileMarkers(self._sd, "recovering", self.run_tag, self._lease.alive)
        for tag in dead:
            # Writers starting together all see this one dead: exactly one publishes its rows.
            if not markers.take(tag):
                log.info("Another writer of this output publishes the rows writer %s journalled.", tag)
                continue
            # Released only once published: after a failure the rows may sit in this writer's
            # open part, which its abort publishes; its marker keeps others off until then.
            recovered += self._recover_writer(tag)
            markers.release(tag)
        if dead:  # no marker was written otherwise: no listing at every start
            self._sd.rmdir(f"{self._state}/recovering/{self.run_tag}", only_if_empty=True)
        self.recovered_rows += recovered
        return recovered

    def _recover_writer(self, tag: str) -> int:
        self._sd.rmdir(f"{self._state}/partial/{tag}")
        self._sd.rmdir(f"{self._state}/recovering/{tag}")  # a dead writer's own markers
        batches = read_journals(self._sd, self._sd.files("journal", tag, ".arrow"), missing_ok=True)
        wanted = {k for b in batches.values() for k in _row_ids(b)}
        seen = self._stored_rows(wanted)
        recovered = 0
        with self._lock:
            self._check_open()
            for path in sorted(batches):
                batch = batches[path]
                keep = []
                for i, key in enumerate(_row_ids(batch)):
                    if key not in seen:
                        seen.add(key)
                        keep.append(i)
                self._add(batch.take(pa.array(keep, pa.int64())), [path])
                recovered += len(keep)
            self._finish_part()  # journals of the dead writer are gone once this returns
        self._sd.rmdir(f"{self._state}/journal/{tag}", only_if_empty=True)
        self._lease.forget(tag)
        return recovered

    def _stored_rows(self, wanted: set[RowId]) -> set[RowId]:
        """Which of ``wanted`` are already in published part files (streamed, bounded memory)."""
        if not wanted:
            return set()
        shas = sorted({k[0] for k in wanted if k[0] is not None})
        where = ds.field("source_sha256").isin(shas) | ds.field("source_sha256").is_null()
        found: set[RowId] = set()
        for batch in iter_batches(
            self.output_path,
            list(_ROW_ID),
            storage_options=self.storage_options,
            where=where,
        ):
            found.update(k for k in _row_ids(batch) if k in wanted)
        return found

    def resume_rows(self) -> Iterator[tuple[Any, ...]]:
        """Source, hash, page, status, engine, language, error, credits, extract and time of each row.

        Parts and journals both count.

        Journals of every writer count (also live ones): their rows are durable, so extracting
        those pages again would only spend credits twice. Journals are read *before* the parts:
        a journal that vanishes in between was published into a part that is then read, so no
        row can slip between the two reads. A state file that exists but cannot be read raises
        :class:`StateUnreadableError`: treating it as "no state" would pay again for its pages.
        """
        from airflow_provider_delix.core.stored_rows import stored_rows  # it reads through the store

        return stored_rows(self, _RESUME_COLUMNS)

    def done_keys(self, statuses: Collection[RowStatus | str] | None = None) -> set[Key]:
        """(source_sha256, page_number) of every stored row, whatever its engine and language.

        ``statuses`` narrows the result. Runs use :meth:`resume_rows` through
        :class:`~airflow_provider_delix.core.resume.ResumeIndex`, which also matches the settings.
        """
        wanted = None if statuses is None else {str(RowStatus(s)) for s in statuses}
        return {
            resume_key(sha, source, page)
            for source, sha, page, status, *_rest in self.resume_rows()
            if wanted is None or status in wanted
        }


def _row_ids(batch: pa.RecordBatch) -> list[RowId]:
    cols = (batch.column(c).to_pylist() for c in _ROW_ID)
    return list(zip(*cols, strict=True))
