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
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from airflow_provider_delix.api.errors import DelixAuthError
from airflow_provider_delix.api.models import MAX_FILES_PER_REQUEST
from airflow_provider_delix.core.adopt import Adoption, adopt_extracts
from airflow_provider_delix.core.budget import BudgetInterrupted, StorageBudget
from airflow_provider_delix.core.claims import claim_book
from airflow_provider_delix.core.client import DelixClient
from airflow_provider_delix.core.counting_client import CountingClient
from airflow_provider_delix.core.jobs import ExtractionJob, job_for
from airflow_provider_delix.core.key_registry import KeyRegistry
from airflow_provider_delix.core.metrics import MetricsSink, RunMetrics
from airflow_provider_delix.core.options import PipelineTuning, RunOptions
from airflow_provider_delix.core.packing import Packer, PackLimits
from airflow_provider_delix.core.pipeline_context import Control, RunContext
from airflow_provider_delix.core.pipeline_prefetch import Prefetcher
from airflow_provider_delix.core.pipeline_worker import ChunkRunner
from airflow_provider_delix.core.planning import (
    Chunk,
    ChunkFile,
    ChunkPlanner,
    ContentIndex,
    PlanStep,
    SourceLike,
)
from airflow_provider_delix.core.resume import ResumeIndex
from airflow_provider_delix.core.rows import invalid_row, outcome_row
from airflow_provider_delix.core.run_cleanup import ClaimingClient, RunCleanup
from airflow_provider_delix.core.run_stats import Progress, ProgressReporter, RunStats
from airflow_provider_delix.core.store import OutputStore
from airflow_provider_delix.core.summary import (
    CreditsExhaustedError,
    PagesLeftError,
    PipelineCancelledError,
    PipelineSummary,
    StorageWaitTimeoutError,
)
from airflow_provider_delix.core.table import PageRow, RowStatus
from airflow_provider_delix.core.tail import TailPolicy
from airflow_provider_delix.core.window import window_for

Sources = Iterable[SourceLike] | Callable[[ResumeIndex], Iterable[SourceLike]]

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
        options: RunOptions | None = None,
        *,
        job: ExtractionJob | None = None,
        run_id: str = "manual",
        tuning: PipelineTuning | None = None,
        progress: Callable[[Progress], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
        cancel: threading.Event | None = None,
        metrics: MetricsSink | None = None,
        archive_size: Callable[[], int | None] | None = None,
        registry: KeyRegistry | None = None,
    ) -> None:
        self.options = options = options or RunOptions()
        self.tuning = tuning = tuning or PipelineTuning()
        self.job = job or job_for(options)
        run_metrics = RunMetrics(metrics, {"kind": options.kind})
        self.store = store
        self.run_id = run_id
        self.files_per_chunk = chunk_size_for(options.max_stored_files)
        # Queued documents go one per chunk (planning.ChunkFile), so a document run may need a
        # chunk per stored file to fill its budget; their workers mostly sleep between polls.
        # Packs of images (packing="pdf") are queued PDFs too, one per chunk.
        per_chunk = 1 if options.kind == "documents" or options.packing != "none" else self.files_per_chunk
        self.max_concurrency = options.max_concurrency or default_concurrency(
            options.max_stored_files, per_chunk
        )
        # Images with the default concurrency end in smaller chunks (core/tail.py), which need
        # more workers once the input has ended; a user's max_concurrency is kept as given.
        self.tail: TailPolicy | None = None
        # Not for packs: one pack is a whole budget slot of queued pages, and holding back a
        # budget's worth of packs would hold back the whole run.
        if options.kind == "images" and options.packing == "none" and options.max_concurrency is None:
            self.tail = TailPolicy(options.max_stored_files, self.files_per_chunk)
        self._pool_size = max(self.max_concurrency, self.tail.concurrency if self.tail else 0)
        self._limit = self.max_concurrency  # chunks in flight; raised to _pool_size for the tail
        self._held: deque[Chunk] = deque()  # planned, not dispatched: the tail's look-ahead
        self._held_files = 0
        self._ramp_left = self.tail.lookahead if self.tail else 0  # first files, in tail-size chunks
        if self._ramp_left:
            self._limit = self._pool_size
        # One delete thread per budget slot: when several chunks finish together, every one
        # of their files is deleted at once instead of in waves (each wave holds slots D longer).
        # Every request in flight holds at least one slot, so this never needs more
        # connections than the budget has files.
        self.delete_concurrency = tuning.delete_concurrency or options.max_stored_files
        self.cancel_event = cancel if cancel is not None else threading.Event()
        self.budget = StorageBudget(
            options.max_stored_files,
            options.max_stored_bytes,
            cancel_check_interval=tuning.cancel_check_interval,
            clock=clock,
        )
        self.window = window_for(options.max_stored_files, on_change=self.budget.set_limit)
        # Every upload is claimed in the key registry; sweeps delete what nobody claims (cleanup.md).
        self.cleanup = RunCleanup(
            registry, self.budget, tag=store.run_tag, clock=clock, stopped=self.cancel_event.is_set
        )
        self.client = CountingClient(ClaimingClient(client, self.cleanup), on_call=run_metrics.request)
        self.cleanup.client = self.client
        self.clock = clock
        self.sleep: Callable[[float], object] = sleep or self.cancel_event.wait
        self.stats = RunStats(run_metrics)
        self.progress = ProgressReporter(progress, options.progress_interval, clock, self.stats)
        self.index = ContentIndex(tuning.dedup_cache_size)
        self.control = Control(self.cancel_event, self._wake)
        self.summary: PipelineSummary | None = None
        self._cv = threading.Condition()
        self._in_flight = 0
        self._ids = itertools.count(1)
        self._misc: list[PageRow] = []
        self._misc_reused = 0  # how many of the rows in _misc are fanned out from cached content
        self._orphans_deleted = 0
        self._files_in_doubt = 0
        self._adoption = Adoption()
        self._defer = False  # deferrable: only parked extracts can free the budget; stop here
        self._started = False
        self._archive_size = archive_size or (lambda: None)
        self._held_pages = 0  # left because another writer of the output still held them

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

    def run(self, sources: Sources) -> PipelineSummary:
        """Process every page; return the summary or raise (see ``docs/pipeline.md``).

        ``sources`` are prepared sources, or a function that prepares them lazily given the
        resume index (so a retry skips finished pages before decoding them). Whatever happens,
        files this run uploaded are deleted (except those of queued extracts parked for the
        next attempt) and the store is closed (on success) or aborted (on an error) before this
        returns or raises. A summary with ``waiting_extracts`` asks the caller to come back.
        """
        if self._started:
            raise RuntimeError("An ExtractionPipeline runs once; build a new one for another run.")
        self._started = True
        start = self.clock()
        tuning = self.tuning
        chunks = ThreadPoolExecutor(self._pool_size, thread_name_prefix="delix-chunk")
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
            job=self.job,
            options=self.options,
            tuning=tuning,
            run_id=self.run_id,
            clock=self.clock,
            sleep=self.sleep,
            window=self.window,
        )
        reader: Prefetcher[SourceLike] | None = None
        planner: ChunkPlanner | None = None
        error: BaseException | None = None
        try:
            self.cleanup.start()
            others = self.cleanup.other_live_writers()
            if others is not None:  # alone on the key: the window starts at the whole account
                self.window = ctx.window = window_for(
                    self.options.max_stored_files, on_change=self.budget.set_limit, others=others
                )
            # Before the resume index: a part another writer publishes after this is read by the claims.
            ctx.claims = claim_book(self.store, self.options.row_engines(), self.options.language)
            resume = ResumeIndex(
                self.store.resume_rows(), engines=self.options.row_engines(), language=self.options.language
            )
            if resume.has_stale:
                self.store.drop_stale_on_close = True
            if resume.sent_again:
                log.info(
                    "%d page(s) failed earlier for a reason that was not their content (file_expired, "
                    "malformed_answer, no_result, answer_lost): they are sent again.",
                    resume.sent_again,
                )
            self._adopt(resume)
            self._delete_orphans()
            self.cleanup.exclude |= self._adoption.waiting_files
            ctx.claims.join()
            planner = ChunkPlanner(
                max_chunk_bytes=self.budget.max_bytes,
                chunk_id=lambda: f"c{next(self._ids):07d}",
                index=self.index,
                done_keys=resume,
                unprocessed_keys=resume.not_processed,
                settled_keys=resume.settled,
                max_files=self.files_per_chunk,
                packer=self._packer(),
            )
            if self._adoption.waiting:
                self._defer = True  # the trigger waits for them first; nothing new is sent
            else:
                iterable = sources(resume) if callable(sources) else sources
                reader = Prefetcher(
                    iterable,
                    depth=tuning.prefetch,
                    stopped=self._stopping,
                    check_interval=tuning.cancel_check_interval,
                )
                reader.start()
                for source in reader:
                    planner.max_files = chunk_size_for(self.window.limit)  # a chunk takes its slots whole
                    self._settle(planner.add(source), chunks, ctx)
                    if self._stopping():
                        break
                if reader.exhausted and not self._stopping():
                    with self.stats.lock:
                        self.stats.input_complete = True
                    self._hold(planner.flush(), chunks, ctx)
                    self._dispatch_tail(chunks, ctx)
                    self._send_again(planner, chunks, ctx)
                    self._join_deferred(planner, chunks, ctx)
            self._flush_misc(force=True)
        except BaseException as exc:  # also SIGTERM's exception and KeyboardInterrupt: clean up first
            error = exc
            self.control.fail(exc, abort=True)
        finally:
            if reader is not None:
                reader.close()
            chunks.shutdown(wait=True)
            if planner is not None:
                self._abandon([*self._take_held(), *planner.flush()])
                self._abandon(planner.place_now(self._take_retries(ctx)))
            with ctx.live_lock:
                self._abandon([Chunk("deferred", ctx.deferred)] if ctx.deferred else [])
                ctx.deferred = []
            deletes.shutdown(wait=True)
            self._final_cleanup(ctx)
            self.cleanup.finish(sweep=not self.control.key_refused())
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

    def _packer(self) -> Packer | None:
        if self.options.packing == "none":
            return None
        limits = PackLimits(self.options.max_stored_files, self.budget.max_bytes)
        return Packer(limits, self.options.engine, self._archive_size)

    def _stopping(self) -> bool:
        return self._defer or self.control.stop_new()

    def _adopt(self, resume: ResumeIndex) -> None:
        self._adoption = adopt_extracts(
            self.client,
            self.store,
            resume,
            self.options,
            self.stats,
            run_id=self.run_id,
            clock=self.clock,
            sleep=self.sleep,
            aborting=self.control.aborting,
        )
        self.stats.add_waiting(self._adoption.waiting_pages)
        self.stats.add_in_doubt(self._adoption.in_doubt_pages)

    def _delete_orphans(self) -> None:
        """Delete what crashed earlier attempts left on the account, before using any budget.

        Files of extracts still processing are not orphans: Delix is using them (a delete would
        answer FILE_UNDER_PROCESSING), and the attempt that collects the extract deletes them.
        """
        waiting = self._adoption.waiting_files
        orphans = [uuid for uuid in self.store.orphaned_uploads() if uuid not in waiting]
        self._files_in_doubt = self.store.uploads_in_doubt()
        if self._files_in_doubt:
            log.warning(
                "An earlier attempt stopped while uploading %d file(s): Delix may have stored them "
                "under uuids it never answered, and the API cannot tell whose a stored file is. No task "
                "claims them in the key registry, so the orphan sweep deletes them (unless the key has "
                "foreign_uploaders: then Delix does, 24 h after upload) (files_in_doubt).",
                self._files_in_doubt,
            )
        if not orphans:
            return
        gone: list[str] = []

        refused: list[DelixAuthError] = []

        def delete(uuid: str) -> None:
            if refused:
                return  # the key was refused: every other delete would be too
            try:
                self.client.delete_file(uuid)
                gone.append(uuid)
            except DelixAuthError as exc:
                refused.append(exc)
            except Exception as exc:
                log.warning("Could not delete orphaned Delix file %s (kept for the next run): %s", uuid, exc)

        with ThreadPoolExecutor(self.delete_concurrency, thread_name_prefix="delix-orphans") as pool:
            list(pool.map(delete, orphans))
        self.store.forget_uploads(gone)
        self._orphans_deleted = len(gone)
        if refused:
            raise refused[0]
        log.info("Deleted %d of %d files left on Delix by an earlier attempt", len(gone), len(orphans))

    def _settle(self, step: PlanStep, pool: ThreadPoolExecutor, ctx: RunContext) -> None:
        self.stats.add_planned(step.pages, step.resumed, step.resumed_not_processed)
        engine, language, run_id = self.options.engine, self.options.language, self.run_id
        self._misc.extend(
            invalid_row(page, engine=engine, language=language, run_id=run_id) for page in step.invalid
        )
        self._misc.extend(
            outcome_row(t, out, engine=engine, language=language, run_id=run_id) for t, out in step.reused
        )
        self._misc_reused += len(step.reused)
        self._flush_misc(force=False)
        self._hold(step.chunks, pool, ctx)

    def _hold(self, chunks: list[Chunk], pool: ThreadPoolExecutor, ctx: RunContext) -> None:
        """Queue planned chunks; dispatch the oldest while more than the tail's look-ahead is held.

        Chunks still held when this raises are abandoned by ``run()``'s cleanup.
        """
        self._held.extend(chunks)
        self._held_files += sum(len(c.files) for c in chunks)
        keep = self.tail.lookahead if self.tail is not None else 0
        while self._held and self._held_files - len(self._held[0].files) >= keep:
            chunk = self._held.popleft()
            self._held_files -= len(chunk.files)
            parts = self._ramp(chunk)
            for i, part in enumerate(parts):
                try:
                    self._dispatch(part, pool, ctx)
                except BaseException:
                    self._abandon(parts[i + 1 :])
                    raise

    def _ramp(self, chunk: Chunk) -> list[Chunk]:
        """The run's first budget of files goes in tail-size chunks too: the first round ends sooner."""
        if self._ramp_left <= 0 or self.tail is None or any(f.page_map is not None for f in chunk.files):
            return [chunk]
        self._ramp_left -= len(chunk.files)
        if self._ramp_left <= 0:
            with self._cv:
                self._limit = self.max_concurrency
        return [Chunk(f"c{next(self._ids):07d}", files) for files in self.tail.split(chunk.files)]

    def _take_held(self) -> list[Chunk]:
        held = list(self._held)
        self._held.clear()
        self._held_files = 0
        return held

    def _dispatch_tail(self, pool: ThreadPoolExecutor, ctx: RunContext) -> None:
        """The input has ended: what is held is the tail; cut it smaller and dispatch it all."""
        held = self._take_held()
        files = [f for chunk in held for f in chunk.files]
        if self.tail is not None and self.tail.active and all(f.page_map is None for f in files):
            held = [Chunk(f"c{next(self._ids):07d}", group) for group in self.tail.split(files)]
            with self._cv:
                self._limit = self._pool_size
        for i, chunk in enumerate(held):
            try:
                self._dispatch(chunk, pool, ctx)
            except BaseException:
                self._abandon(held[i + 1 :])
                raise

    def _send_again(self, planner: ChunkPlanner, pool: ThreadPoolExecutor, ctx: RunContext) -> None:
        """Send the pages that failed inside packs again as images, until no chunk is left.

        Only with ``retry_packed_failures``: chunks hand such pages back as they finish.
        """
        check = self.tuning.cancel_check_interval
        while True:
            with self._cv:
                while self._in_flight and not ctx.retries and not self._stopping():
                    self._cv.wait(check)
                if self._stopping():
                    return
                files = self._take_retries(ctx)
                if not files and not self._in_flight:
                    return
            if files:
                log.info("Sending %d page(s) that failed inside a pack again, as images.", len(files))
            for chunk in planner.place_now(files):
                self._dispatch(chunk, pool, ctx)

    def _join_deferred(self, planner: ChunkPlanner, pool: ThreadPoolExecutor, ctx: RunContext) -> None:
        """Files another writer held (core/claims.py): wait for its rows, then send what is missing."""
        claims = ctx.claims
        for _ in range(5):  # each round waits for the holders; a page rarely needs more than one
            with ctx.live_lock:
                files, ctx.deferred = ctx.deferred, []
            if not files or claims is None or self._stopping():
                ctx.deferred.extend(files)  # counted as left by run()'s cleanup
                return
            settled = claims.settle_deferred(files, self.index.keys_of, aborting=self.control.aborting)
            for f in settled.done:
                self.stats.add_planned(0, sum(len(ts) for _, ts in self.index.settle(f, lambda _: None)))
            if settled.held:
                log.warning(
                    "%d file(s) are still held by another writer of this output after %.0f s; their "
                    "pages are left for a re-run (nothing is paid twice).",
                    len(settled.held),
                    claims.wait_timeout,
                )
                before = self.stats.pages_left
                self._abandon([Chunk("held", settled.held)])
                self._held_pages += self.stats.pages_left - before
            for chunk in planner.place_now(settled.free):
                self._dispatch(chunk, pool, ctx)
            self._send_again(planner, pool, ctx)

    @staticmethod
    def _take_retries(ctx: RunContext) -> list[ChunkFile]:
        with ctx.live_lock:
            files, ctx.retries[:] = list(ctx.retries), []
        return files

    def _flush_misc(self, *, force: bool) -> None:
        """Invalid and reused rows cost no request; they are stored in batches, not one file each."""
        if not self._misc or (not force and len(self._misc) < self.tuning.misc_rows_per_append):
            return
        rows, self._misc = self._misc, []
        reused, self._misc_reused = self._misc_reused, 0
        self.store.append(f"m{next(self._ids):07d}", rows)
        self.stats.add_rows(rows, reused=reused)
        self.progress.maybe_report()

    def _dispatch(self, chunk: Chunk, pool: ThreadPoolExecutor, ctx: RunContext) -> None:
        """Wait for a free worker and for budget for the whole chunk, then start it."""
        check = self.tuning.cancel_check_interval
        with self._cv:
            while self._in_flight >= self._limit and not self._stopping():
                self._cv.wait(check)
            if self._stopping():
                self._abandon([chunk])
                return
            self._in_flight += 1
        try:
            self.cleanup.before_first_upload()  # what earlier runs on the key left goes first
            if self.options.deferrable:
                acquired = self._acquire_or_defer(chunk, ctx)
            else:
                self.budget.acquire(len(chunk.files), chunk.nbytes, cancel=self.cancel_event)
                acquired = True
        except BudgetInterrupted:
            acquired = False
        except BaseException:
            self._abandon([chunk])
            self._done_one()
            raise
        if not acquired:
            self._abandon([chunk])
            self._done_one()
            return
        pool.submit(self._run_chunk, ChunkRunner(ctx, chunk))

    def _acquire_or_defer(self, chunk: Chunk, ctx: RunContext) -> bool:
        """Budget for the chunk, unless only parked (queued) extracts hold it: then defer."""
        check = self.tuning.cancel_check_interval
        while not self.budget.try_acquire(len(chunk.files), chunk.nbytes):
            with self._cv:
                others_active = self._in_flight - 1
                if ctx.parked and others_active == 0:
                    self._defer = True
                    return False
                if self.control.stop_new():
                    return False
                self._cv.wait(check)
        return True

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
                self.stats.add_left(sum(len(ts) for _, ts in self.index.settle(f, lambda _: None)))

    def _final_cleanup(self, ctx: RunContext) -> None:
        """Last attempt at every file still stored (a failed delete, an abort mid-chunk)."""
        with ctx.live_lock:
            leftovers = sorted(ctx.live)
        if self.control.key_refused():
            leftovers = []  # the key was refused: a delete would be refused too (the next run deletes them)
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
                orphans_deleted=self._orphans_deleted + self.cleanup.deleted,
                orphans_reported=[f.to_dict() for f in self.cleanup.reported.values()],
                undeleted_uuids=sorted(ctx.undeleted),
                input_complete=self.stats.input_complete,
                stop_reason=self._stop_reason(ctx),
                pages_waiting=self.stats.pages_waiting,
                waiting_extracts=sorted([*self._adoption.waiting, *ctx.parked]),
                extracts_adopted=self._adoption.adopted,
                extracts_lost=self._adoption.lost,
                pages_in_doubt=self.stats.pages_in_doubt,
                files_in_doubt=self._files_in_doubt + self.stats.files_in_doubt,
                requests_in_doubt=self.stats.requests_in_doubt,
                credits_at_risk=self.stats.credits_at_risk,
            )

    def _stop_reason(self, ctx: RunContext) -> str | None:
        c = self.control
        if c.fatal is not None:
            return f"error: {type(c.fatal).__name__}: {c.fatal}"
        if self.cancel_event.is_set():
            return "cancelled"
        if c.storage is not None:
            return "storage full"
        if c.credits is not None:
            return "no credits"
        if ctx.parked or self._adoption.waiting:
            return "waiting for queued extracts"
        return None

    def _cause(self) -> BaseException | None:
        c = self.control
        return c.credits or c.storage or c.waits or c.transient

    def _failure(self, error: BaseException | None, s: PipelineSummary) -> BaseException | None:  # noqa: PLR0911
        c = self.control
        if error is not None or c.fatal is not None:
            return error or c.fatal
        done = sum(s.rows.values()) + s.pages_resumed
        unread = "" if s.input_complete else ", plus the inputs not read yet"
        left = f"{s.pages_left} page(s) remain{unread}"
        if self.cancel_event.is_set():
            return PipelineCancelledError(f"Cancelled: {done} page(s) done, {left}.", s)
        if c.storage is not None:
            return StorageWaitTimeoutError(
                f"{c.storage} {done} page(s) done, {left}. {self.cleanup.occupancy()}", s
            )
        if c.credits is not None:
            return CreditsExhaustedError(
                f"Delix has no credits left (NO_SUFFICIENT_CREDITS): {done} page(s) are done "
                f"({sum(s.rows.values())} by this run, {s.pages_resumed} by earlier runs) and {left}. "
                "Top up the account and re-run the task: it resumes from the table and never pays "
                "twice for a finished page.",
                s,
            )
        if s.waiting:
            return None  # not a failure: the caller defers (or re-runs) and the next attempt goes on
        if c.waits is not None:
            return PagesLeftError(f"{c.waits} {done} page(s) done, {left}.", s)
        if s.pages_left and self._held_pages:
            return PagesLeftError(
                f"{s.pages_left} page(s) got no row: {self._held_pages} of them are held by another writer "
                "of this output_path that did not finish them in time, or that died after Delix answered "
                f"its request. Every other page is done ({done}); re-run the task to finish them without "
                "paying twice.",
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
