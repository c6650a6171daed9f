"""``StorageBudget``: the account's 30 files / 100 MB, shared by this run's worker threads.

Delix refuses an upload that would push the account past ``max_stored_files`` or
``max_stored_bytes`` (``STORAGE_COUNT_EXCEEDED`` / ``STORAGE_SIZE_EXCEEDED``), and a refusal
costs a round trip and a back-off. So the pipeline never *asks* for more than the account
holds: a file takes its slot before its upload starts and gives it back only once its delete
is confirmed (the server counts the file for that whole time).

Design points, each because of how the pipeline uses it:

* ``acquire`` takes a whole chunk (files and bytes) at once. Acquiring file by file would let
  two half-served chunks hold the last slots between them and wait on each other forever.
* ``release`` is per file, so each confirmed delete frees its slot immediately instead of
  waiting for the slowest delete of its chunk.
* Waiters are served first come, first served: a 5-file chunk is not overtaken forever by a
  stream of 1-file chunks that happen to fit first.
* A request bigger than the whole budget raises :class:`BudgetRequestTooLarge` at once: it can
  never be served, and blocking on it would hang the run.
* Waiting is cancellation-aware. ``interrupt()`` wakes every waiter at once (the pipeline calls
  it on stop and cancel). A bare ``threading.Event`` cannot notify a ``Condition``, so when a
  ``cancel`` event is given the wait also re-checks it every ``cancel_check_interval`` seconds
  -- a sleep, not a spin -- for callers that set only the event.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


class BudgetRequestTooLarge(ValueError):
    """The request can never fit in the budget; raised instead of blocking forever."""


class BudgetInterrupted(Exception):
    """``acquire`` gave up because the run is cancelled or stopping."""


@dataclass(frozen=True, slots=True)
class BudgetUsage:
    """A consistent snapshot of the budget (read under its lock)."""

    files: int
    bytes: int
    peak_files: int
    peak_bytes: int
    waiting: int


class StorageBudget:
    """Thread-safe, fair, blocking counter of stored files and bytes."""

    def __init__(
        self,
        max_files: int,
        max_bytes: int,
        *,
        cancel_check_interval: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_files < 1 or max_bytes < 1:
            raise ValueError(
                f"A storage budget needs at least 1 file and 1 byte, got {max_files}/{max_bytes}."
            )
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.limit = max_files  # the effective file limit: the window's, see set_limit
        self._cancel_check_interval = cancel_check_interval
        self._clock = clock
        self._cond = threading.Condition(threading.Lock())
        self._files = 0
        self._bytes = 0
        self._peak_files = 0
        self._peak_bytes = 0
        self._queue: deque[object] = deque()  # tickets of waiting acquirers, oldest first
        self._interrupted = False

    def check(self, files: int, nbytes: int) -> None:
        """Raise :class:`BudgetRequestTooLarge` if a request could never be served."""
        if files < 0 or nbytes < 0:
            raise ValueError(f"Cannot acquire a negative amount ({files} files, {nbytes} bytes).")
        if files > self.max_files or nbytes > self.max_bytes:
            raise BudgetRequestTooLarge(
                f"A request for {files} file(s) / {nbytes} bytes can never fit in a storage budget of "
                f"{self.max_files} files / {self.max_bytes} bytes."
            )

    def set_limit(self, files: int) -> None:
        """Follow the task's storage window (:mod:`.window`): at most ``files`` held, never more
        than ``max_files``. A chunk bigger than the limit still starts when nothing is held, so
        a window that shrank below a chunk planned earlier cannot hang the run."""
        with self._cond:
            self.limit = max(1, min(files, self.max_files))
            self._cond.notify_all()

    def _fits(self, files: int, nbytes: int) -> bool:
        room = self._files + files <= self.limit or self._files == 0
        return room and self._bytes + nbytes <= self.max_bytes

    def try_acquire(self, files: int, nbytes: int) -> bool:
        """Take the amount now if it fits and nobody is queued before us; never blocks."""
        return self.acquire(files, nbytes, timeout=0)

    def acquire(
        self,
        files: int,
        nbytes: int,
        *,
        timeout: float | None = None,
        cancel: threading.Event | None = None,
    ) -> bool:
        """Block until ``files`` and ``nbytes`` fit, then take them; FIFO among waiters.

        Returns False when ``timeout`` expires; raises :class:`BudgetInterrupted` when ``cancel``
        is set or :meth:`interrupt` was called, and :class:`BudgetRequestTooLarge` when the
        request exceeds the whole budget.
        """
        self.check(files, nbytes)
        deadline = None if timeout is None else self._clock() + timeout
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            try:
                while True:
                    if self._interrupted or (cancel is not None and cancel.is_set()):
                        raise BudgetInterrupted("Waiting for Delix storage was interrupted.")
                    if self._queue[0] is ticket and self._fits(files, nbytes):
                        self._files += files
                        self._bytes += nbytes
                        self._peak_files = max(self._peak_files, self._files)
                        self._peak_bytes = max(self._peak_bytes, self._bytes)
                        return True
                    wait: float | None = None
                    if deadline is not None:
                        wait = deadline - self._clock()
                        if wait <= 0:
                            return False
                    if cancel is not None:
                        wait = (
                            self._cancel_check_interval
                            if wait is None
                            else min(wait, self._cancel_check_interval)
                        )
                    self._cond.wait(wait)
            finally:
                self._queue.remove(ticket)
                # The head may have changed (we were head, or we left): let the next one look.
                self._cond.notify_all()

    def hold(self, files: int, nbytes: int) -> None:
        """Take capacity at once, even past the limit: files that may be stored without this run
        knowing their uuids (an upload whose answer was lost), held until an orphan sweep has
        looked (:mod:`.run_cleanup`). Given back with :meth:`release`; peaks are not changed."""
        if files < 0 or nbytes < 0:
            raise ValueError(f"Cannot hold a negative amount ({files} files, {nbytes} bytes).")
        with self._cond:
            self._files += files
            self._bytes += nbytes

    def release(self, files: int, nbytes: int) -> None:
        """Give back capacity, typically one file once its delete is confirmed."""
        with self._cond:
            if files > self._files or nbytes > self._bytes or files < 0 or nbytes < 0:
                raise ValueError(
                    f"Releasing {files} file(s) / {nbytes} bytes but only "
                    f"{self._files} / {self._bytes} are held."
                )
            self._files -= files
            self._bytes -= nbytes
            self._cond.notify_all()

    def interrupt(self) -> None:
        """Make every current and future ``acquire`` raise :class:`BudgetInterrupted`."""
        with self._cond:
            self._interrupted = True
            self._cond.notify_all()

    @property
    def interrupted(self) -> bool:
        with self._cond:
            return self._interrupted

    def usage(self) -> BudgetUsage:
        with self._cond:
            return BudgetUsage(
                files=self._files,
                bytes=self._bytes,
                peak_files=self._peak_files,
                peak_bytes=self._peak_bytes,
                waiting=len(self._queue),
            )
