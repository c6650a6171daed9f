"""Bounded read-ahead of prepared sources, so preparing inputs overlaps with the API work.

Memory must stay bounded for archives of millions of files: nothing here ever holds more
than ``depth`` prepared sources (each at most a few pages of <= 2 MB), and the input iterator
is consumed lazily -- the archive is never materialised.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_END = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prepare_in_parallel(
    refs: Iterable[R], prepare: Callable[[R], T], *, workers: int = 2, window: int | None = None
) -> Generator[T, None, None]:
    """``map(prepare, refs)`` on ``workers`` threads, in input order, at most ``window`` ahead.

    Decoding and normalising images is the CPU part of a run; a couple of threads keep the
    uploader fed (Pillow releases the GIL while decoding) without reading the archive ahead
    of what the storage budget can take.
    """
    window = window or 2 * workers
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="delix-prepare") as pool:
        pending: deque[Future[T]] = deque()
        try:
            for ref in refs:
                pending.append(pool.submit(prepare, ref))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for fut in pending:
                fut.cancel()


class Prefetcher(Generic[T]):
    """Iterates ``source`` on a background thread into a queue of at most ``depth`` items.

    The consumer re-checks ``stopped()`` every ``check_interval`` seconds while the queue is
    empty, so a stopping run does not wait for the next input to be prepared. ``close()``
    drains the queue, which unblocks a producer stuck on ``put``; it then exits at its next
    check. An exception raised by the input iterator is re-raised in the consumer.
    """

    def __init__(
        self, source: Iterable[T], *, depth: int, stopped: Callable[[], bool], check_interval: float = 0.25
    ) -> None:
        self._source = source
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
        self._stopped = stopped
        self._closed = threading.Event()
        self._check_interval = check_interval
        self._thread = threading.Thread(target=self._produce, name="delix-prefetch", daemon=True)
        self.exhausted = False

    def start(self) -> None:
        self._thread.start()

    def _produce(self) -> None:
        item: object = _END
        iterator = iter(self._source)
        try:
            for element in iterator:
                if self._closed.is_set():
                    return
                self._queue.put(element)
                if self._closed.is_set():
                    return
        except BaseException as exc:
            item = _Failure(exc)
        finally:
            # Close a generator here, on the thread running it: its thread pool (see
            # prepare_in_parallel) shuts down now rather than whenever it is collected.
            close = getattr(iterator, "close", None)
            if callable(close):
                close()
        if not self._closed.is_set():
            self._queue.put(item)

    def __iter__(self) -> Iterator[T]:
        while not self._stopped():
            try:
                item = self._queue.get(timeout=self._check_interval)
            except queue.Empty:
                continue
            if item is _END:
                self.exhausted = True
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item  # type: ignore[misc]  # only T or the two markers are ever queued

    def close(self, join_timeout: float = 30.0) -> None:
        self._closed.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread.is_alive():
            self._thread.join(join_timeout)
            # Still alive only if the input iterator itself is stuck; it is a daemon thread.
