"""``ExtractionPipeline``: prepared pages in, one row per page out, through the Delix API.

The engine behind ``ImageExtractionOperator`` (no Airflow here). How it works, and why, is in
``docs/pipeline.md``; in short:

* the calling thread reads prepared sources from a bounded read-ahead, plans chunks of <= 5
  files (:mod:`.planning`), and dispatches each chunk once a worker is free *and* the storage
  budget (:mod:`.budget`) can hold all its files (:mod:`.pipeline_dispatch`);
* ``max_concurrency`` workers run upload -> extraction (:mod:`.pipeline_worker`); a separate
  pool deletes files one by one, each confirmed delete freeing its budget slot at once -- so
  the budget stays full and no stage waits on a whole batch;
* every exit path -- success, an error, a cancel -- waits for the workers, deletes whatever
  this run still has stored, and closes (or aborts) the store before ``run()`` returns
  (:mod:`.pipeline_leftovers`, which also adopts and deletes what earlier attempts left);
  the summary, and the error ``run()`` raises, are built in :mod:`.pipeline_outcome`.

This module holds the run loop; the dispatcher, the cleanup and the outcome are base classes
of :class:`ExtractionPipeline` in those modules, so each reads on its own.
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

from airflow_provider_delix.api.models import MAX_FILES_PER_REQUEST
from airflow_provider_delix.core.adopt import Adoption
from airflow_provider_delix.core.budget import StorageBudget
from airflow_provider_delix.core.claims import claim_book
from airflow_provider_delix.core.client import DelixClient
from airflow_provider_delix.core.copies import BATCH as COPY_BATCH
from airflow_provider_delix.core.copies import copied_rows
from airflow_provider_delix.core.counting_client import CountingClient
from airflow_provider_delix.core.jobs import ExtractionJob, job_for
from airflow_provider_delix.core.key_registry import KeyRegistry
from airflow_provider_delix.core.metrics import MetricsSink, RunMetrics
from airflow_provider_delix.core.options import PipelineTuning, RunOptions
from airflow_provider_delix.core.packing import Packer, PackLimits
from airflow_provider_delix.core.pipeline_context import Control, RunContext
from airflow_provider_delix.core.pipeline_dispatch import PipelineDispatch
from airflow_provider_delix.core.pipeline_leftovers import PipelineLeftovers
from airflow_provider_delix.core.pipeline_outcome import PipelineOutcome
from airflow_provider_delix.core.pipeline_prefetch import Prefetcher
from airflow_provider_delix.core.planning import (
    Chunk,
    ChunkPlanner,
    ContentIndex,
    PageTarget,
    PlanStep,
    SourceLike,
)
from airflow_provider_delix.core.resume import ResumeIndex
from airflow_provider_delix.core.rows import invalid_row, outcome_row
from airflow_provider_delix.core.run_cleanup import ClaimingClient, RunCleanup
from airflow_provider_delix.core.run_stats import Progress, ProgressReporter, RunStats
from airflow_provider_delix.core.store import OutputStore
from airflow_provider_delix.core.summary import PipelineSummary
from airflow_provider_delix.core.table import PageRow
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


class ExtractionPipeline(PipelineDispatch, PipelineLeftovers, PipelineOutcome):
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
        self._copies: list[PageTarget] = []  # done under another source: rows to copy
        self._resume: ResumeIndex | None = None
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
            fair_share=self.cleanup.fair_share,
            lost_copies_swept=self.cleanup.sweeps_orphans,
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
                self.store.resume_rows(),
                engines=self.options.row_engines(),
                language=self.options.language,
                kind=self.options.kind,
            )
            self.store.carried, self.store.settings, self.store.watch = (
                resume.carried,
                resume.matches,
                resume.watch,
            )
            self._resume = resume
            ctx.claims.know(resume.retry_ids)
            if resume.has_stale:
                self.store.drop_stale_on_close = True
            if resume.sent_again:
                log.info(
                    "%d page(s) failed earlier for a reason that was not their content (file_expired, "
                    "malformed_answer, no_result, answer_lost, failed_in_pack): they are sent again.",
                    resume.sent_again,
                )
            if resume.rechecked:
                log.info(
                    "%d page(s) have a row about an earlier run, not their content (not_found, "
                    "unreadable, over_budget): they are looked at again, and get a new row only if "
                    "that changed.",
                    resume.rechecked,
                )
            self._adopt(resume, ctx.claims.adoption_claims())
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
                alone_keys=resume.alone,
                known_source=self._known_source,
                still_invalid=lambda target, error: resume.still(target.key, target.source, error),
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
            self._write_copies()
            self._flush_misc(force=True)
        except BaseException as exc:  # also SIGTERM's exception and KeyboardInterrupt: clean up first
            error = exc
            self.control.fail(exc, abort=True)
        finally:
            if reader is not None:
                reader.close()
            chunks.shutdown(wait=True)
            self._record_kept(ctx)
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

    def _settle(self, step: PlanStep, pool: ThreadPoolExecutor, ctx: RunContext) -> None:
        self.stats.add_planned(step.pages, step.resumed, step.resumed_not_processed)
        engine, language, run_id = self.options.engine, self.options.language, self.run_id
        self._misc.extend(
            invalid_row(page, engine=engine, language=language, run_id=run_id) for page in step.invalid
        )
        self._misc.extend(
            outcome_row(t, out, engine=read_by or engine, language=language, run_id=run_id)
            for t, out, read_by in step.reused
        )
        self._misc_reused += len(step.reused)
        self._copies.extend(step.copies)
        if len(self._copies) >= COPY_BATCH:
            self._write_copies()
        self._flush_misc(force=False)
        self._hold(step.chunks, pool, ctx)

    def _known_source(self, target: PageTarget) -> bool:
        """Whether a done page has a row under this source (else one is copied, core/copies.py).

        A source whose file was missing (a ``not_found`` row) and is back, its page's row already
        stored, is noted: its ``not_found`` row goes when the store closes.
        """
        if self.store.watch.found_again(target.source, target.page_number):
            self.store.drop_stale_on_close = True
        return self._resume is not None and self._resume.has_source(target.key, target.source)

    def _write_copies(self) -> None:
        """Rows for pages the table holds under another source, copied from it (core/copies.py)."""
        targets, self._copies = self._copies, []
        if targets and self._resume is not None:  # the index: built before anything is planned
            rows, not_copied = copied_rows(self.store, targets, self._resume, self.run_id)
            self._misc.extend(rows)
            self._misc_reused += len(rows)
            self.stats.add_resumed(not_copied)  # they have their row elsewhere; nothing failed

    def _flush_misc(self, *, force: bool) -> None:
        """Invalid and reused rows cost no request; they are stored in batches, not one file each."""
        if not self._misc or (not force and len(self._misc) < self.tuning.misc_rows_per_append):
            return
        rows, self._misc = self._misc, []
        reused, self._misc_reused = self._misc_reused, 0
        self.store.append(f"m{next(self._ids):07d}", rows)
        self.stats.add_rows(rows, reused=reused)
        self.progress.maybe_report()
