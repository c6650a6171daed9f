"""Counters every worker updates, and the throttled progress callback that reads them."""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from airflow_provider_delix.core.metrics import RunMetrics
from airflow_provider_delix.core.table import PageRow

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Progress:
    """Passed to the progress callback."""

    pages_done: int  # resumed + rows written
    pages_total: int | None  # known once every input has been read
    pages_per_second: float  # rows written by this run per second
    eta_seconds: float | None
    credits_charged: int
    credits_refunded: int
    pages_planned: int = 0  # pages of the inputs planned so far, resumed ones included
    inputs_planned: int = 0  # inputs those pages came from (for pages per input before the end)
    credits_at_risk: int = 0  # of credits_charged: assumed for sends whose answer was lost


class RunStats:
    """Counters updated by every worker; one lock, short critical sections."""

    def __init__(self, metrics: RunMetrics | None = None) -> None:
        self.metrics = metrics or RunMetrics(None, {})  # live counters beside these totals
        self.lock = threading.Lock()
        self.rows: Counter[str] = Counter()
        self.pages_total = 0
        self.inputs_planned = 0
        self.pages_resumed = 0
        self.pages_resumed_not_processed = 0
        self.pages_left = 0
        self.pages_waiting = 0  # in queued extracts handed to the next attempt (deferral)
        self.pages_reused = 0
        self.pages_in_doubt = 0  # sent without an answer: Delix may have charged for them
        # Paid sends whose answer was lost after sending (core/lost_answers.py): the table counts
        # them as charged (credits_at_risk of its credits_charged); Delix charged them if it applied them.
        self.requests_in_doubt = 0
        self.credits_at_risk = 0
        self.files_in_doubt = 0  # uploaded, but the answer did not name them: maybe left on Delix
        self.credits_charged = 0
        self.credits_refunded = 0
        self.input_complete = False

    def add_rows(self, rows: Sequence[PageRow], *, reused: int = 0) -> None:
        by_status: Counter[str] = Counter(str(row.status) for row in rows)
        charged = sum(row.credits_charged for row in rows)
        refunded = sum(row.credits_refunded for row in rows)
        with self.lock:
            self.rows.update(by_status)
            self.credits_charged += charged
            self.credits_refunded += refunded
            self.pages_reused += reused
        for status, count in by_status.items():
            self.metrics.pages(status, count)
        self.metrics.credits(charged, refunded)

    def add_holding(self, rows: Sequence[PageRow]) -> None:
        """Credits of rows that only hold them while their pages are sent again or left: not
        counted as rows (the pages' own rows are, when they come), their credits are."""
        charged = sum(row.credits_charged for row in rows)
        refunded = sum(row.credits_refunded for row in rows)
        with self.lock:
            self.credits_charged += charged
            self.credits_refunded += refunded
        self.metrics.credits(charged, refunded)

    def add_left(self, pages: int) -> None:
        with self.lock:
            self.pages_left += pages

    def add_in_doubt(self, pages: int) -> None:
        with self.lock:
            self.pages_in_doubt += pages

    def add_lost_answers(self, requests: int, pages: int, credits: int) -> None:
        """``requests`` sends of one paid request lost their answer; its ``pages`` are in doubt."""
        with self.lock:
            self.requests_in_doubt += requests
            self.pages_in_doubt += pages
            self.credits_at_risk += credits

    def add_waiting(self, pages: int) -> None:
        with self.lock:
            self.pages_waiting += pages

    def add_planned(self, pages: int, resumed: int, resumed_not_processed: int = 0) -> None:
        """One input planned: its pages, and how many of them an earlier attempt already did."""
        with self.lock:
            self.inputs_planned += 1
            self.pages_total += pages
            self.pages_resumed += resumed
            self.pages_resumed_not_processed += resumed_not_processed

    def add_resumed(self, pages: int) -> None:
        """Pages found done after they were planned (a copy whose stored row went since)."""
        with self.lock:
            self.pages_resumed += pages

    def written(self) -> int:
        with self.lock:
            return sum(self.rows.values())


class ProgressReporter:
    """Calls ``callback`` at most once per ``interval`` seconds of ``clock``; never raises."""

    def __init__(
        self,
        callback: Callable[[Progress], None] | None,
        interval: float,
        clock: Callable[[], float],
        stats: RunStats,
    ) -> None:
        self._callback = callback
        self._interval = interval
        self._clock = clock
        self._stats = stats
        self._lock = threading.Lock()
        self._start = clock()
        self._last: float | None = None

    def maybe_report(self) -> None:
        if self._callback is None:
            return
        with self._lock:
            now = self._clock()
            if self._last is not None and now - self._last < self._interval:
                return
            self._last = now
        with self._stats.lock:
            written = sum(self._stats.rows.values())
            done = written + self._stats.pages_resumed
            planned, inputs = self._stats.pages_total, self._stats.inputs_planned
            total = planned if self._stats.input_complete else None
            charged, refunded = self._stats.credits_charged, self._stats.credits_refunded
            at_risk = self._stats.credits_at_risk
        elapsed = max(now - self._start, 1e-9)
        rate = written / elapsed
        eta = None
        if total is not None:
            left = max(total - done, 0)
            eta = 0.0 if left == 0 else (left / rate if rate > 0 else math.inf)
        try:
            self._callback(Progress(done, total, rate, eta, charged, refunded, planned, inputs, at_risk))
        except Exception:
            log.warning("The progress callback failed; the run goes on", exc_info=True)
