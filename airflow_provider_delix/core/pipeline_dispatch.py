"""Dispatching planned chunks to workers: a free worker, then budget for the whole chunk.

Also the shapes of dispatch around the steady state: the first budget of files goes out in
tail-size chunks (the ramp), the end of the input is cut smaller (the tail, :mod:`.tail`),
pages that failed inside packs are sent again as images, and files another writer held are
sent once it let them go (:mod:`.claims`). Chunks never started are abandoned: their pages are
left for a re-run. Split out of :mod:`.pipeline`, whose run loop calls these.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from airflow_provider_delix.core.budget import BudgetInterrupted, StorageBudget
from airflow_provider_delix.core.options import PipelineTuning, RunOptions
from airflow_provider_delix.core.pipeline_context import Control, RunContext
from airflow_provider_delix.core.pipeline_worker import ChunkRunner
from airflow_provider_delix.core.planning import Chunk, ChunkFile, ChunkPlanner, ContentIndex
from airflow_provider_delix.core.run_cleanup import RunCleanup
from airflow_provider_delix.core.run_stats import RunStats
from airflow_provider_delix.core.tail import TailPolicy

log = logging.getLogger(__name__)


class PipelineDispatch:
    """The dispatcher of :class:`.pipeline.ExtractionPipeline` (its state is set up by ``__init__``)."""

    options: RunOptions
    tuning: PipelineTuning
    budget: StorageBudget
    cleanup: RunCleanup
    control: Control
    cancel_event: threading.Event
    stats: RunStats
    index: ContentIndex
    tail: TailPolicy | None
    max_concurrency: int
    _pool_size: int
    _limit: int
    _cv: threading.Condition
    _in_flight: int
    _held: deque[Chunk]
    _held_files: int
    _ramp_left: int
    _ids: itertools.count[int]
    _defer: bool
    _held_pages: int

    def _stopping(self) -> bool:
        return self._defer or self.control.stop_new()

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
