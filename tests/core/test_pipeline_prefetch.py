"""Bounded read-ahead: the archive is never read further ahead than the queue allows."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from airflow_provider_delix.core.pipeline_prefetch import Prefetcher, prepare_in_parallel

pytestmark = pytest.mark.timeout(30)


def counting(pulled: list[int], limit: int | None = None) -> Iterator[int]:
    i = 0
    while limit is None or i < limit:
        pulled.append(i)
        yield i
        i += 1


def test_prefetcher_reads_a_bounded_distance_ahead_and_stops_on_close() -> None:
    pulled: list[int] = []
    reader = Prefetcher(counting(pulled), depth=3, stopped=lambda: False, check_interval=0.01)
    reader.start()
    items = iter(reader)
    assert [next(items), next(items)] == [0, 1]
    time.sleep(0.1)
    assert len(pulled) <= 2 + 3 + 1  # consumed + queue + the one blocked on put
    reader.close()
    assert not reader._thread.is_alive()
    assert not reader.exhausted


def test_prefetcher_passes_every_item_then_marks_exhaustion() -> None:
    reader = Prefetcher(range(50), depth=4, stopped=lambda: False)
    reader.start()
    assert list(reader) == list(range(50)) and reader.exhausted
    reader.close()


def test_prefetcher_reraises_the_input_error_and_honours_stop() -> None:
    def broken() -> Iterator[int]:
        yield 1
        raise OSError("bucket vanished")

    reader = Prefetcher(broken(), depth=2, stopped=lambda: False)
    reader.start()
    with pytest.raises(OSError, match="bucket vanished"):
        list(reader)
    reader.close()
    stop = threading.Event()
    stop.set()
    idle = Prefetcher(counting([]), depth=2, stopped=stop.is_set, check_interval=0.01)
    idle.start()
    assert list(idle) == []
    idle.close()


def test_prepare_in_parallel_keeps_order_and_a_bounded_window() -> None:
    pulled: list[int] = []
    started: list[int] = []

    def prepare(i: int) -> int:
        started.append(i)
        time.sleep(0.001 * (i % 3))
        return i * 10

    out = prepare_in_parallel(counting(pulled), prepare, workers=2, window=4)
    assert [next(out) for _ in range(5)] == [0, 10, 20, 30, 40]
    assert len(pulled) <= 5 + 4
    out.close()
    assert list(prepare_in_parallel(range(7), prepare, workers=3)) == [i * 10 for i in range(7)]
    with pytest.raises(ZeroDivisionError):
        list(prepare_in_parallel([1, 0], lambda i: 1 // i))


def test_closing_the_prefetcher_closes_the_input_generator() -> None:
    closed = threading.Event()

    def source() -> Iterator[int]:
        try:
            yield from range(1000)
        finally:
            closed.set()

    reader = Prefetcher(source(), depth=2, stopped=lambda: False, check_interval=0.01)
    reader.start()
    assert next(iter(reader)) == 0
    reader.close()
    assert closed.wait(5)
