"""A discrete-event simulation of N tasks sharing one 30-file Delix account, in simulated time.

Each task is the pipeline reduced to what matters for sharing storage: the real
:class:`StorageWindow` and :class:`StorageBudget` (the window drives the budget's limit), chunks
sized by the real ``chunk_size_for`` of the current window, a worker cap, and the chunk life of
``ChunkRunner``: take the slots, upload (the account decides when the request ends, as the
emulator does), refused -> window cut, give the slots back, jittered wait, queue again;
stored -> extraction -> one delete per file, each freeing its slot. No threads, no sleeps:
deterministic for a seed, so the window's convergence and fairness can be asserted.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_delix.core.budget import StorageBudget
from airflow_provider_delix.core.pipeline import chunk_size_for
from airflow_provider_delix.core.window import StorageWindow, fair_share

ACCOUNT = 30
U, E_BASE, E_PAGE, D = 0.5, 1.0, 0.1, 0.1  # the bench's latencies (bound 30 / 2.1 images/s)
BOUND = ACCOUNT / (U + E_BASE + 5 * E_PAGE + D)


@dataclass
class Task:
    name: str
    images: int
    window: StorageWindow
    budget: StorageBudget
    workers: int = 7
    planned: int = 0
    done: int = 0
    in_flight: int = 0
    refusals: int = 0
    progress: list[tuple[float, int]] = field(default_factory=list)  # (time, images done)
    finished_at: float | None = None
    queue: deque[tuple[int, int]] = field(default_factory=deque)  # (files, attempt) waiting for slots
    window_area: float = 0.0  # integral of the window limit over time, for averages
    start: float = 0.0  # mapped tasks start seconds apart

    @property
    def elapsed(self) -> float:
        assert self.finished_at is not None
        return self.finished_at - self.start


@dataclass
class Result:
    tasks: list[Task]
    end: float
    high_water: int
    stored_area: float  # integral of the account's stored files over time

    def utilisation(self, until: float | None = None) -> float:
        return self.stored_area / (ACCOUNT * (until or self.end))


class Simulation:
    def __init__(
        self,
        sizes: list[int],
        *,
        seed: int,
        initial: list[float | None] | None = None,
        window_class: type[StorageWindow] = StorageWindow,
        registry: bool = False,
        starts: list[float] | None = None,
        shares: bool = False,
    ) -> None:
        rng = random.Random(seed)
        self.shares = shares  # refusals carry the registry's equal share (live tasks)
        self.now = 0.0
        self.stored = 0
        self.high_water = 0
        self.stored_area = 0.0
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self.tasks = []
        for i, n in enumerate(sizes):
            budget = StorageBudget(ACCOUNT, 10**9)
            start = None if initial is None else initial[i]
            if registry and len(sizes) == 1:  # window_for(others=0): the registry knows no other
                start = float(ACCOUNT)
            window = window_class(
                ACCOUNT,
                initial=start,
                rng=random.Random(rng.random()),
                on_change=budget.set_limit,
            )
            budget.set_limit(window.limit)
            self.tasks.append(Task(f"t{i}", n, window, budget, start=0.0 if starts is None else starts[i]))

    # ------------------------------------------------------------------ engine

    def at(self, delay: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._events, (self.now + delay, next(self._seq), action))

    def run(self, horizon: float = 10_000.0) -> Result:
        for task in self.tasks:
            self.at(task.start, lambda: None)  # wakes the loop when the task starts
        while self._events:
            when, _, action = heapq.heappop(self._events)
            assert when <= horizon, "the simulation did not finish"
            self._advance(when)
            action()
            for task in self.tasks:
                if self.now >= task.start:
                    self._pump(task)
        return Result(self.tasks, self.now, self.high_water, self.stored_area)

    def _advance(self, when: float) -> None:
        dt = when - self.now
        self.stored_area += self.stored * dt
        for task in self.tasks:
            if task.finished_at is None and self.now >= task.start:
                task.window_area += task.window.limit * dt
        self.now = when

    # ------------------------------------------------------------------ one task

    def _pump(self, task: Task) -> None:
        """Plan a chunk when a worker is free, then start every queued chunk that fits (FIFO)."""
        left = task.images - task.planned
        if left and task.in_flight < task.workers and not any(a == 0 for _, a in task.queue):
            files = min(left, chunk_size_for(task.window.limit))
            task.planned += files
            task.in_flight += 1
            task.queue.append((files, 0))
        while task.queue:
            files, attempt = task.queue[0]
            if not task.budget.try_acquire(files, files):
                return
            task.queue.popleft()
            self._upload(task, files, attempt)

    def _upload(self, task: Task, files: int, attempt: int) -> None:
        token = task.window.sending()

        def answered() -> None:
            if self.stored + files > ACCOUNT:  # STORAGE_COUNT_EXCEEDED: the whole request
                task.refusals += 1
                share = fair_share(self.live()) if self.shares else None
                task.window.refused(token, held=task.budget.usage().files - files, share=share)
                task.budget.release(files, files)
                delay = task.window.retry_delay(attempt + 1, 1.0, 30.0)
                self.at(delay, lambda: task.queue.append((files, attempt + 1)))
                return
            self.stored += files
            self.high_water = max(self.high_water, self.stored)
            use = task.budget.usage()
            waiting = bool(task.queue) or task.planned < task.images
            task.window.stored(
                token,
                files,
                limited=waiting or use.files + files > task.budget.limit,
                share=fair_share(self.live()) if self.shares else None,
            )
            self.at(E_BASE + E_PAGE * files, lambda: self.at(D, lambda: self._deleted(task, files)))

        self.at(U, answered)

    def live(self) -> int:
        """Tasks started and not finished: the live writers the key's registry lists."""
        return sum(1 for t in self.tasks if t.start <= self.now and t.finished_at is None)

    def _deleted(self, task: Task, files: int) -> None:
        self.stored -= files  # the files of a chunk are deleted in parallel: all after D
        task.budget.release(files, files)
        task.in_flight -= 1
        task.done += files
        task.progress.append((self.now, task.done))
        if task.done == task.images:
            task.finished_at = self.now


def simulate(sizes: list[int], *, seed: int, **options: Any) -> Result:
    """One seeded run; ``options`` are :class:`Simulation`'s (initial windows, starts, shares...)."""
    return Simulation(sizes, seed=seed, **options).run()
