"""The queue of asynchronous (queued) document extractions and the workers that drain it.

The model, all of it read from the settings at the moment it matters, so a
``POST /_emulator/config`` acts on extracts already queued:

* an extract queued at time *q* becomes *ready* at *q* + ``queue_delay``;
* at most ``async_workers`` extracts are processed at once; a free worker takes the oldest
  ready extract (first in, first out). Lowering ``async_workers`` lets the running ones finish
  and starts no new one until fewer run; raising it starts more at once;
* a worker is busy with one extract for its processing time (see
  :func:`async_processing_seconds`) and then runs the OCR backend; only then does the extract
  become ``processed``. Until that moment it is ``processing`` for every poll.

The queue only ever holds extracts that were created, charged and stored by a request that
succeeded, and nothing but a worker or ``POST /_emulator/reset`` takes one out: an injected
fault hits an HTTP request before it reaches any handler, so it can never lose, duplicate or
change a queued extract. Times are ``time.monotonic()``: the emulator clock that
``POST /_emulator/clock`` advances ages stored files, not the queue.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_provider_delix.emulator.config import EmulatorConfig
from airflow_provider_delix.emulator.state import Account, ExtractRecord


def async_processing_seconds(config: EmulatorConfig, pages: int) -> float:
    """How long one worker spends on a queued extract of ``pages`` pages (before its OCR).

    ``pages / async_pages_per_second``, or ``latency_extract_page`` per page when the speed is 0.
    """
    if config.async_pages_per_second > 0:
        return pages / config.async_pages_per_second
    return config.latency_extract_page * pages


@dataclass
class _Queued:
    record: ExtractRecord
    account: Account  # the account the extract was charged to (a reset swaps in a new one)


class AsyncQueue:
    """First in, first out, ``queue_delay`` before an extract is ready, ``async_workers`` at a time.

    ``process(account, record)`` does the work of one extract on a worker thread and must not
    raise. Worker threads are started on demand, up to the largest ``async_workers`` seen; the
    extra ones of a lowered setting stay idle.
    """

    def __init__(
        self,
        config: Callable[[], EmulatorConfig],
        process: Callable[[Account, ExtractRecord], None],
    ) -> None:
        self._config = config
        self._process = process
        self._cond = threading.Condition()
        self._waiting: deque[_Queued] = deque()
        self._running = 0
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._spawn()

    def put(self, account: Account, record: ExtractRecord) -> None:
        """Queue a created (and charged) extract; it stays ``processing`` until a worker ends it."""
        with self._cond:
            record.queued_at = time.monotonic()
            self._waiting.append(_Queued(record, account))
            self._spawn()
            self._cond.notify_all()

    def wake(self) -> None:
        """Re-read the settings now (called after ``POST /_emulator/config``)."""
        with self._cond:
            self._spawn()
            self._cond.notify_all()

    def clear(self) -> None:
        """Forget every extract still waiting (reset); running ones finish on their old account."""
        with self._cond:
            self._waiting.clear()
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._waiting.clear()
            self._cond.notify_all()

    def snapshot(self) -> dict[str, Any]:
        """``waiting`` (queued, no worker yet), ``running`` (a worker on it) and ``workers``."""
        with self._cond:
            return {
                "waiting": len(self._waiting),
                "running": self._running,
                "workers": self._config().async_workers,
            }

    # -- workers ---------------------------------------------------------------------------
    def _spawn(self) -> None:
        """Start threads until there are ``async_workers`` of them (called under the lock)."""
        while not self._closed and len(self._threads) < self._config().async_workers:
            thread = threading.Thread(
                target=self._work, name=f"delix-async-{len(self._threads)}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _next(self) -> _Queued | None:
        """Block until a worker may start the oldest ready extract; None once closed."""
        with self._cond:
            while not self._closed:
                config = self._config()
                if self._waiting and self._running < config.async_workers:
                    head = self._waiting[0]
                    assert head.record.queued_at is not None
                    wait = head.record.queued_at + config.queue_delay - time.monotonic()
                    if wait <= 0:
                        self._waiting.popleft()
                        self._running += 1
                        head.record.started_at = time.monotonic()
                        return head
                    self._cond.wait(wait)
                else:
                    self._cond.wait()
            return None

    def _work(self) -> None:
        while (item := self._next()) is not None:
            try:
                self._process(item.account, item.record)
            finally:
                with self._cond:
                    self._running -= 1
                    self._cond.notify_all()
