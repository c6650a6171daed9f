"""Exactly one live writer does a piece of work that several writers of an output can see.

Writers that share an output path (mapped tasks, overlapping DAG runs, deferrable tasks that
resume together) all see what a dead writer left: its journalled rows (:meth:`.store.OutputStore.recover`)
and its paid extracts (:mod:`.adopt_claims`). Doing such a piece twice writes its rows twice.

Each piece has a name that is the same for every writer. Before doing it, a writer writes a
*marker* under that name in its own state, with the time of its claim and ``decided=False``,
then reads the same name in every live writer's state:

* another marker is decided (its writer is doing the work): withdraw;
* another undecided marker is earlier, by ``(claimed_at, writer tag)``: withdraw;
* a later undecided marker: wait until it withdraws or decides (then withdraw), at most
  ``decide_timeout``; past it, withdraw (the work stays for a later attempt);
* none: mark ours decided and do the work.

A writer reads only after its own marker is written, so of two markers at least one writer
sees the other; both order the same two markers the same way, and the earlier one waits for
the later one to say what it did. So exactly one does the work. To withdraw, or to finish, is
to remove the marker. Markers of dead writers are ignored: their work was not finished, and
it is what the next writer picks up.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from airflow_provider_delix.core.state_dir import StateDir

Marker = tuple[str, float, bool]  # writer tag, claimed_at, decided


def decide(
    mine: tuple[float, str],
    others: Callable[[], list[Marker]],
    *,
    poll_seconds: float,
    timeout: float,
    clock: Callable[[], float],
    sleep: Callable[[float], object],
) -> bool:
    """Whether our marker ``(claimed_at, tag)``, already written, wins (see the module docstring)."""
    deadline = clock() + timeout
    while True:
        seen = others()
        if any(decided or (at, tag) < mine for tag, at, decided in seen):
            return False
        if not seen:
            return True
        if clock() >= deadline:
            return False
        sleep(poll_seconds)  # ours is earlier: wait for the later ones to say


class FileMarkers:
    """Markers as small JSON files, ``<state>/<kind>/<writer tag>/<name>.json``."""

    def __init__(
        self,
        state: StateDir,
        kind: str,
        run_tag: str,
        alive: Callable[[str], bool],
        *,
        poll_seconds: float = 0.2,
        decide_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self._state, self._kind, self._tag, self._alive = state, kind, run_tag, alive
        self.poll_seconds, self.decide_timeout = poll_seconds, decide_timeout
        self._clock, self._sleep = clock, sleep

    def take(self, name: str) -> bool:
        """True: this writer does the work named ``name`` (release it after); False: another does."""
        at = time.time()
        self._write(name, at, decided=False)
        if decide(
            (at, self._tag),
            lambda: self._others(name),
            poll_seconds=self.poll_seconds,
            timeout=self.decide_timeout,
            clock=self._clock,
            sleep=self._sleep,
        ):
            self._write(name, at, decided=True)
            return True
        self.release(name)
        return False

    def release(self, name: str) -> None:
        self._state.rm([self._path(self._tag, name)])

    def _path(self, tag: str, name: str) -> str:
        return f"{self._state.root}/{self._kind}/{tag}/{name}.json"

    def _write(self, name: str, at: float, *, decided: bool) -> None:
        body = {"claimed_at": at, "decided": decided}
        self._state.write_bytes(self._path(self._tag, name), json.dumps(body).encode())

    def _others(self, name: str) -> list[Marker]:
        out: list[Marker] = []
        for tag in sorted(self._state.tags(self._kind) - {self._tag}):
            data = self._state.read_bytes(self._path(tag, name))
            if data is None or not self._alive(tag):
                continue
            try:
                body = json.loads(data)
                out.append((tag, float(body["claimed_at"]), bool(body["decided"])))
            except (ValueError, KeyError, TypeError):
                out.append((tag, 0.0, True))  # unreadable: a marker that exists is a claim
        return out
