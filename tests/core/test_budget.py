"""StorageBudget: limits under concurrency, per-file release, FIFO fairness, refusal, cancellation."""

from __future__ import annotations

import random
import threading
import time

import pytest

from airflow_provider_delix.core.budget import BudgetInterrupted, BudgetRequestTooLarge, StorageBudget

pytestmark = pytest.mark.timeout(30)


def wait_for(predicate: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def test_acquire_release_usage_and_peak() -> None:
    budget = StorageBudget(30, 1000)
    assert budget.acquire(5, 400)
    assert budget.acquire(5, 400)
    assert not budget.acquire(1, 201, timeout=0.01)  # bytes would pass the limit
    for _ in range(5):
        budget.release(1, 80)  # per file, as deletes confirm
    usage = budget.usage()
    assert (usage.files, usage.bytes, usage.peak_files, usage.peak_bytes) == (5, 400, 10, 800)
    assert budget.acquire(1, 600)
    assert budget.usage().peak_bytes == 1000


def test_request_larger_than_budget_is_an_error_not_a_deadlock() -> None:
    budget = StorageBudget(30, 100)
    with pytest.raises(BudgetRequestTooLarge):
        budget.acquire(31, 1)
    with pytest.raises(BudgetRequestTooLarge):
        budget.acquire(1, 101)
    with pytest.raises(ValueError, match="negative"):
        budget.acquire(-1, 0)
    assert budget.usage().files == 0


def test_releasing_more_than_held_is_refused() -> None:
    budget = StorageBudget(3, 10)
    budget.acquire(1, 5)
    with pytest.raises(ValueError, match="held"):
        budget.release(2, 5)


def test_big_request_is_not_overtaken_by_small_ones() -> None:
    budget = StorageBudget(10, 10_000)
    budget.acquire(8, 0)
    order: list[str] = []

    def take(name: str, files: int) -> None:
        budget.acquire(files, 0)
        order.append(name)

    big = threading.Thread(target=take, args=("big", 5), daemon=True)
    big.start()
    wait_for(lambda: budget.usage().waiting == 1)
    # A 1-file request would fit now (8 + 1 <= 10) but must queue behind the big one.
    small = threading.Thread(target=take, args=("small", 1), daemon=True)
    small.start()
    wait_for(lambda: budget.usage().waiting == 2)
    time.sleep(0.05)
    assert order == []
    for _ in range(4):
        budget.release(1, 0)  # 4 held: the big one fits first, then the small one
    big.join(5)
    small.join(5)
    assert order == ["big", "small"]
    assert budget.usage().files == 10


def test_interrupt_wakes_every_waiter() -> None:
    budget = StorageBudget(1, 10, cancel_check_interval=60)
    budget.acquire(1, 1)
    errors: list[BaseException] = []

    def waiter() -> None:
        try:
            budget.acquire(1, 1)
        except BudgetInterrupted as exc:
            errors.append(exc)

    threads = [threading.Thread(target=waiter, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    wait_for(lambda: budget.usage().waiting == 3)
    started = time.monotonic()
    budget.interrupt()
    for t in threads:
        t.join(5)
    assert len(errors) == 3 and time.monotonic() - started < 2
    with pytest.raises(BudgetInterrupted):
        budget.acquire(0, 0)


def test_a_set_cancel_event_alone_stops_the_wait() -> None:
    budget = StorageBudget(1, 10, cancel_check_interval=0.02)
    budget.acquire(1, 1)
    cancel = threading.Event()
    result: list[str] = []

    def waiter() -> None:
        try:
            budget.acquire(1, 1, cancel=cancel)
            result.append("acquired")
        except BudgetInterrupted:
            result.append("cancelled")

    t = threading.Thread(target=waiter, daemon=True)
    t.start()
    wait_for(lambda: budget.usage().waiting == 1)
    cancel.set()  # nobody notifies the budget: the periodic check must see it
    t.join(5)
    assert result == ["cancelled"]
    assert budget.usage().waiting == 0


def test_limits_hold_under_concurrent_use() -> None:
    budget = StorageBudget(30, 100_000)
    held = {"files": 0, "bytes": 0, "max_files": 0, "max_bytes": 0}
    lock = threading.Lock()
    rng = random.Random(7)
    plans = [[(rng.randint(1, 5), rng.randint(1, 20_000)) for _ in range(40)] for _ in range(12)]

    def worker(plan: list[tuple[int, int]]) -> None:
        for files, nbytes in plan:
            assert budget.acquire(files, nbytes, timeout=10)
            with lock:
                held["files"] += files
                held["bytes"] += nbytes
                held["max_files"] = max(held["max_files"], held["files"])
                held["max_bytes"] = max(held["max_bytes"], held["bytes"])
            time.sleep(0.0005)
            per_file = [nbytes // files] * files
            per_file[0] += nbytes - sum(per_file)
            for size in per_file:  # released file by file, like confirmed deletes
                with lock:
                    held["files"] -= 1
                    held["bytes"] -= size
                budget.release(1, size)

    threads = [threading.Thread(target=worker, args=(plan,), daemon=True) for plan in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    usage = budget.usage()
    assert held["max_files"] <= 30 and held["max_bytes"] <= 100_000
    assert usage.peak_files <= 30 and usage.peak_bytes <= 100_000
    assert usage.peak_files >= 10  # it was actually contended
    assert (usage.files, usage.bytes, usage.waiting) == (0, 0, 0)
