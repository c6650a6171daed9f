"""``ExtractionPipeline``: prepared pages in, one row per page out, through the Delix API.

The engine behind ``ImageExtractionOperator`` (no Airflow here). How it works, and why, is in
``docs/pipeline.md``; in short:

* the calling thread reads prepared sources from a bounded read-ahead, plans chunks of <= 5
  files (:mod:`.planning`), and dispatches each chunk once a worker is free *and* the storage
  budget (:mod:`.budget`) can hold all its files;
* ``max_concurrency`` workers run upload -> extraction (:mod:`.pipeline_worker`); a separate
  pool deletes files one by one, each confirmed delete freeing its budget slot at once -- so
  the budget stays full and no stage waits on a whole batch;
* every exit path -- success, an error, a cancel -- waits for the workers, deletes whatever
  this run still has stored, and closes (or aborts) the store before ``run()`` returns.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from airflow_provider_delix.api.models import (
    MAX_FILES_PER_REQUEST,
    MAX_STORED_BYTES,
    MAX_STORED_FILES,
    Engine,
    Language,
    engine_body,
)
from airflow_provider_delix.core.budget import BudgetInterrupted, StorageBudget
from airflow_provider_delix.core.client import DelixClient
from airflow_provider_delix.core.pipeline_prefetch import Prefetcher
from airflow_provider_delix.core.pipeline_state import (
    NOT_PROCESSED,
    CountingClient,
    CreditsExhaustedError,
    PagesLeftError,
    PipelineCancelledError,
    PipelineSummary,
    Progress,
    ProgressReporter,
    RunStats,
    StorageWaitTimeoutError,
    invalid_row,
    outcome_row,
)
from airflow_provider_delix.core.pipeline_worker import ChunkRunner, Control, RunContext
from airflow_provider_delix.core.planning import Chunk, ChunkPlanner, ContentIndex, PlanStep, SourceLike
from airflow_provider_delix.core.store import OutputStore
from airflow_provider_delix.core.table import PageRow, RowStatus

log = logging.getLogger(__name__)


def default_concurrency(max_stored_files: int, files_per_chunk: int = MAX_FILES_PER_REQUEST) -> int:
    """Enough chunks to fill the budget, plus one uploading while another's deletes confirm."""
    return math.ceil(max_stored_files / files_per_chunk) + 1


def chunk_size_for(max_stored_files: int) -> int:
    """Files per chunk that let whole chunks fill a budget of ``max_stored_files``.

    A chunk takes its slots whole, so with a budget that is not a multiple of 5 fixed chunks
    of 5 leave slots idle (a share of 7 or 8 of the account's 30 would hold only 5 files).
    The candidates are 5 and the even split of the budget over the fewest chunks
    (``max_stored_files // ceil(max_stored_files / 5)``); the one that holds more files wins,
    5 on a tie (fewer requests). 30 -> 5, 8 -> 4, 7 -> 3, 29 -> 4 (28 files), 3 -> 3.
    """
    full = min(MAX_FILES_PER_REQUEST, max_stored_files)
    even = max_stored_files // math.ceil(max_stored_files / MAX_FILES_PER_REQUEST)
    return max((full, even), key=lambda k: ((max_stored_files // k) * k, k))


class ExtractionPipeline:
    """Runs image extraction over prepared sources into an :class:`OutputStore` (one ``run()``)."""

    def __init__(
        self,
        client: DelixClient,
        store: OutputStore,
        *,
        engine: Engine | str = Engine.DANLIN,
        language: Language | str = Language.FA,
        run_id: str = "manual",
        max_stored_files: int = MAX_STORED_FILES,
        max_stored_bytes: int = MAX_STORED_BYTES,
        max_concurrency: int | None = None,
        delete_concurrency: int | None = None,
        prefetch: int = 8,
        progress: Callable[[Progress], None] | None = None,
        progress_interval: float = 30.0,
        storage_wait_timeout: float = 600.0,
        storage_backoff: tuple[float, float] = (1.0, 30.0),
        under_processing_timeout: float = 60.0,
        misc_rows_per_append: int = 500,
        dedup_cache_size: int = 2048,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
        cancel: threading.Event | None = None,
        cancel_check_interval: float = 0.25,
    ) -> None:
        engine_body(engine, language)  # fail fast on a bad engine/language, before any upload
        self.client = CountingClient(client)
        self.store = store
        self.engine, self.language = str(Engine(engine)), str(Language(language))
        self.run_id = run_id
        self.files_per_chunk = chunk_size_for(max_stored_files)
        self.max_concurrency = max_concurrency or default_concurrency(max_stored_files, self.files_per_chunk)
        self.delete_concurrency = delete_concurrency or 2 * MAX_FILES_PER_REQUEST
        if self.max_concurrency < 1 or self.delete_concurrency < 1 or prefetch < 1:
            raise ValueError("max_concurrency, delete_concurrency and prefetch must be positive.")
        self.cancel_event = cancel if cancel is not None else threading.Event()
        self.budget = StorageBudget(
            max_stored_files, max_stored_bytes, cancel_check_interval=cancel_check_interval, clock=clock
        )
        self.prefetch = prefetch
        self.clock = clock
        self.sleep: Callable[[float], object] = sleep or self.cancel_event.wait
        self.storage_wait_timeout = storage_wait_timeout
        self.storage_backoff = storage_backoff
        self.under_processing_timeout = under_processing_timeout
        self.misc_rows_per_append = misc_rows_per_append
        self.cancel_check_interval = cancel_check_interval
        self.stats = RunStats()
        self.progress = ProgressReporter(progress, progress_interval, clock, self.stats)
        self.index = ContentIndex(dedup_cache_size)
        self.control = Control(self.cancel_event, self._wake)
        self.summary: PipelineSummary | None = None
        self._cv = threading.Condition()
        self._in_flight = 0
        self._ids = itertools.count(1)
        self._misc: list[PageRow] = []
        self._misc_reused = 0  # how many of the rows in _misc are fanned out from cached content
        self._orphans_deleted = 0
        self._started = False

    # ------------------------------------------------------------------ control

    def cancel(self) -> None:
        """Stop as soon as possible (``on_kill``): no new calls, cleanup still runs."""
        self.cancel_event.set()
        self._wake()

    def _wake(self) -> None:
        self.budget.interrupt()
        with self._cv:
            self._cv.notify_all()

    # ------------------------------------------------------------------ run

    def run(self, sources: Iterable[SourceLike]) -> PipelineSummary:
        """Process every page; return the summary or raise (see ``docs/pipeline.md``).

        Whatever happens, files this run uploaded are deleted and the store is closed (on
        success) or aborted (on an error) before this returns or raises.
        """
        if self._started:
            raise RuntimeError("An ExtractionPipeline runs once; build a new one for another run.")
        self._started = True
        start = self.clock()
        chunks = ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="delix-chunk")
        deletes = ThreadPoolExecutor(self.delete_concurrency, thread_name_prefix="delix-delete")
        ctx = RunContext(
            client=self.client,
            store=self.store,
            budget=self.budget,
            index=self.index,
            stats=self.stats,
            progress=self.progress,
            control=self.control,
            deletes=deletes,
            engine=self.engine,
            language=self.language,
            run_id=self.run_id,
            clock=self.clock,
            sleep=self.sleep,
            storage_wait_timeout=self.storage_wait_timeout,
            storage_backoff=self.storage_backoff,
            under_processing_timeout=self.under_processing_timeout,
        )
        reader = Prefetcher(
            sources,
            depth=self.prefetch,
            stopped=self.control.stop_new,
            check_interval=self.cancel_check_interval,
        )
        planner: ChunkPlanner | None = None
        error: BaseException | None = None
        try:
            self._delete_orphans()
            planner = ChunkPlanner(
                max_chunk_bytes=self.budget.max_bytes,
                chunk_id=lambda: f"c{next(self._ids):07d}",
                index=self.index,
                done_keys=self.store.done_keys(),
                unprocessed_keys=self.store.done_keys(statuses=NOT_PROCESSED),
                max_files=self.files_per_chunk,
            )
            reader.start()
            for source in reader:
                self._settle(planner.add(source), chunks, ctx)
                if self.control.stop_new():
                    break
            if reader.exhausted and not self.control.stop_new():
                with self.stats.lock:
                    self.stats.input_complete = True
                for chunk in planner.flush():
                    self._dispatch(chunk, chunks, ctx)
            self._flush_misc(force=True)
        except BaseException as exc:  # also SIGTERM's exception and KeyboardInterrupt: clean up first
            error = exc
            self.control.fail(exc, abort=True)
        finally:
            reader.close()
            chunks.shutdown(wait=True)
            if planner is not None:
                self._abandon(planner.flush())
            deletes.shutdown(wait=True)
            self._final_cleanup(ctx)
            if self._misc:  # only after an error: these pages cost nothing to redo
                self.stats.add_left(len(self._misc))
                self._misc.clear()
            self._close_store(error)
        self.summary = summary = self._summary(start, ctx)
        self.progress.maybe_report()
        failure = self._failure(error, summary)
        if failure is not None:
            if failure is error:
                raise failure
            raise failure from self._cause()
        return summary

    # ------------------------------------------------------------------ steps

    def _delete_orphans(self) -> None:
        """Delete what crashed earlier attempts left on the account, before using any budget."""
        orphans = self.store.orphaned_uploads()
        if not orphans:
            return
        gone: list[str] = []

        def delete(uuid: str) -> None:
            try:
                self.client.delete_file(uuid)
                gone.append(uuid)
            except Exception as exc:
                log.warning("Could not delete orphaned Delix file %s (kept for the next run): %s", uuid, exc)

        with ThreadPoolExecutor(self.delete_concurrency, thread_name_prefix="delix-orphans") as pool:
            list(pool.map(delete, orphans))
        self.store.forget_uploads(gone)
        self._orphans_deleted = len(gone)
        log.info("Deleted %d of %d files left on Delix by an earlier attempt", len(gone), len(orphans))

    def _settle(self, step: PlanStep, pool: ThreadPoolExecutor, ctx: RunContext) -> None:
        self.stats.add_planned(step.pages, step.resumed, step.resumed_not_processed)
        engine, language, run_id = self.engine, self.language, self.run_id
        self._misc.extend(
            invalid_row(page, engine=engine, language=language, run_id=run_id) for page in step.invalid
        )
        self._misc.extend(
            outcome_row(t, out, engine=engine, language=language, run_id=run_id) for t, out in step.reused
        )
        self._misc_reused += len(step.reused)
        self._flush_misc(force=False)
        for i, chunk in enumerate(step.chunks):
            try:
                self._dispatch(chunk, pool, ctx)
            except BaseException:
                self._abandon(step.chunks[i + 1 :])
                raise

    def _flush_misc(self, *, force: bool) -> None:
        """Invalid and reused rows cost no request; they are stored in batches, not one file each."""
        if not self._misc or (not force and len(self._misc) < self.misc_rows_per_append):
            return
        rows, self._misc = self._misc, []
        reused, self._misc_reused = self._misc_reused, 0
        self.store.append(f"m{next(self._ids):07d}", rows)
        self.stats.add_rows(rows, reused=reused)
        self.progress.maybe_report()

    def _dispatch(self, chunk: Chunk, pool: ThreadPoolExecutor, ctx: RunContext) -> None:
        """Wait for a free worker and for budget for the whole chunk, then start it."""
        with self._cv:
            while self._in_flight >= self.max_concurrency and not self.control.stop_new():
                self._cv.wait(self.cancel_check_interval)
            if self.control.stop_new():
                self._abandon([chunk])
                return
            self._in_flight += 1
        try:
            self.budget.acquire(len(chunk.files), chunk.nbytes, cancel=self.cancel_event)
        except BudgetInterrupted:
            self._abandon([chunk])
            self._done_one()
            return
        except BaseException:
            self._abandon([chunk])
            self._done_one()
            raise
        pool.submit(self._run_chunk, ChunkRunner(ctx, chunk))

    def _run_chunk(self, runner: ChunkRunner) -> None:
        try:
            runner.run()
        finally:
            self._done_one()

    def _done_one(self) -> None:
        with self._cv:
            self._in_flight -= 1
            self._cv.notify_all()

    def _abandon(self, chunks: list[Chunk]) -> None:
        """Chunks never started: their pages (duplicates attached included) are left for a re-run."""
        for chunk in chunks:
            for f in chunk.files:
                self.stats.add_left(len(self.index.complete(f, None)))

    def _final_cleanup(self, ctx: RunContext) -> None:
        """Last attempt at every file still stored (a failed delete, an abort mid-chunk)."""
        with ctx.live_lock:
            leftovers = sorted(ctx.live)
        for uuid in leftovers:
            try:
                self.client.delete_file(uuid)
            except Exception as exc:
                log.error("Could not delete Delix file %s; the next run deletes it: %s", uuid, exc)
                continue
            with ctx.live_lock:
                ctx.live.discard(uuid)
                ctx.undeleted.discard(uuid)
        with ctx.live_lock:
            ctx.undeleted |= ctx.live

    def _close_store(self, error: BaseException | None) -> None:
        if error is None and self.control.fatal is None:
            try:
                self.store.close()
                return
            except Exception as exc:
                self.control.fail(exc, abort=True)
        self.store.abort()

    # ------------------------------------------------------------------ outcome

    def _summary(self, start: float, ctx: RunContext) -> PipelineSummary:
        usage = self.budget.usage()
        with self.stats.lock:
            rows = {s.value: self.stats.rows.get(s.value, 0) for s in RowStatus}
            return PipelineSummary(
                run_id=self.run_id,
                rows=rows,
                pages_total=self.stats.pages_total,
                pages_resumed=self.stats.pages_resumed,
                pages_resumed_not_processed=self.stats.pages_resumed_not_processed,
                pages_left=self.stats.pages_left,
                pages_reused=self.stats.pages_reused,
                credits_charged=self.stats.credits_charged,
                credits_refunded=self.stats.credits_refunded,
                requests=self.client.counts(),
                elapsed_seconds=self.clock() - start,
                peak_stored_files=usage.peak_files,
                peak_stored_bytes=usage.peak_bytes,
                orphans_deleted=self._orphans_deleted,
                undeleted_uuids=sorted(ctx.undeleted),
                input_complete=self.stats.input_complete,
                stop_reason=self._stop_reason(),
            )

    def _stop_reason(self) -> str | None:
        c = self.control
        if c.fatal is not None:
            return f"error: {type(c.fatal).__name__}: {c.fatal}"
        if self.cancel_event.is_set():
            return "cancelled"
        if c.storage is not None:
            return "storage full"
        if c.credits is not None:
            return "no credits"
        return None

    def _cause(self) -> BaseException | None:
        c = self.control
        return c.credits or c.storage or c.transient

    def _failure(self, error: BaseException | None, s: PipelineSummary) -> BaseException | None:
        c = self.control
        if error is not None or c.fatal is not None:
            return error or c.fatal
        done = sum(s.rows.values()) + s.pages_resumed
        unread = "" if s.input_complete else ", plus the inputs not read yet"
        left = f"{s.pages_left} page(s) remain{unread}"
        if self.cancel_event.is_set():
            return PipelineCancelledError(f"Cancelled: {done} page(s) done, {left}.", s)
        if c.storage is not None:
            return StorageWaitTimeoutError(f"{c.storage} {done} page(s) done, {left}.", s)
        if c.credits is not None:
            return CreditsExhaustedError(
                f"Delix has no credits left (NO_SUFFICIENT_CREDITS): {done} page(s) are done "
                f"({sum(s.rows.values())} by this run, {s.pages_resumed} by earlier runs) and {left}. "
                "Top up the account and re-run the task: it resumes from the table and never pays "
                "twice for a finished page.",
                s,
            )
        if s.pages_left:
            return PagesLeftError(
                f"{s.pages_left} page(s) got no row because Delix kept failing after the client's "
                f"retries (last error: {c.transient}). Every other page is done ({done}); re-run the "
                "task to do exactly those pages.",
                s,
            )
        return None
