"""Writer leases: which other writers of an output path are dead, so their state may be adopted.

Several writers may share an output path (parallel tasks, a zombie try). Each holds a lease
file under ``_delix_state/writers/`` refreshed by a heartbeat thread; recovery adopts the
journals, temp files and upload records only of writers whose lease is gone or stopped
beating, so it never takes over (or deletes Delix files of) a writer that is still alive.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

from airflow_provider_delix.core.state_dir import StateDir

log = logging.getLogger(__name__)


def _local_pid(lease: Mapping[str, Any]) -> int | None:
    """The lease's pid when its writer ran on this host in another process; None otherwise."""
    if lease.get("host") != socket.gethostname() or not isinstance(lease.get("pid"), int):
        return None
    return None if lease["pid"] == os.getpid() else int(lease["pid"])


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass  # exists, owned by another user
    return True


def process_gone(lease: Mapping[str, Any]) -> bool:
    """True when the lease's writer ran on this host and its process no longer exists.

    Lets an immediate re-run on the same worker (a SIGKILL then a clear) adopt the state at
    once instead of watching the lease go stale; other hosts still wait for staleness.
    """
    pid = _local_pid(lease)
    return pid is not None and not _pid_exists(pid)


def lease_dead(lease: Mapping[str, Any], now: float, stale_after_seconds: float) -> bool:
    """A lease whose writer is gone: not beaten for ``stale_after_seconds``, or its process is gone.

    Without waiting: :meth:`WriterLease.dead_writers` also watches a fresh-looking lease for a
    beat, the key registry's sweeps (:mod:`.orphan_sweep`) take a lease at its word.
    """
    beat = lease.get("heartbeat")
    if not isinstance(beat, int | float):
        return True
    return now - beat > stale_after_seconds or process_gone(lease)


def process_alive(lease: Mapping[str, Any]) -> bool:
    """True when the lease's writer runs on this host (another process) and that process exists.

    Such a writer is alive without watching its beat: writers on one worker (mapped tasks, two
    runs of a DAG) start at once instead of each waiting ``stale_after_seconds`` for the others.
    """
    pid = _local_pid(lease)
    return pid is not None and _pid_exists(pid) and not _zombie(pid)


def _zombie(pid: int) -> bool:
    """A killed process its parent has not reaped yet still answers ``kill(pid, 0)``: it is dead."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[-1].split()[0] in (b"Z", b"X")
    except (OSError, IndexError):
        return False  # no /proc (not Linux): trust kill()


def _heartbeat(ref: weakref.ref[WriterLease], stop: threading.Event, interval: float) -> None:
    # Holds only a weak reference, so a store dropped without close() (a simulated crash) drops
    # its lease, stops beating, and the lease goes stale like a killed process's.
    while not stop.wait(interval):
        lease = ref()
        if lease is None:
            return
        try:
            lease.beat()
        except Exception:  # a missed beat is not fatal; the next one may succeed
            log.warning("Could not refresh the writer lease of %s", lease.run_tag, exc_info=True)
        del lease


class WriterLease:
    """This writer's lease, and the judgement of the other writers' leases."""

    def __init__(
        self, state: StateDir, run_tag: str, *, heartbeat_seconds: float, stale_after_seconds: float
    ) -> None:
        self.state = state
        self.run_tag = run_tag
        self.stale_after_seconds = stale_after_seconds
        self._beats = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._dead: set[str] | None = None
        self.beat()
        threading.Thread(
            target=_heartbeat,
            args=(weakref.ref(self), self._stop, heartbeat_seconds),
            name=f"delix-lease-{run_tag}",
            daemon=True,
        ).start()

    def path(self, tag: str) -> str:
        return f"{self.state.root}/writers/{tag}.json"

    def beat(self) -> None:
        with self._lock:
            if self._stop.is_set():  # released: a late beat must not resurrect the lease
                return
            self._beats += 1
            body = dict(run_tag=self.run_tag, host=socket.gethostname(), pid=os.getpid(), beat=self._beats)
            body["heartbeat"] = time.time()
            self.state.write_bytes(self.path(self.run_tag), json.dumps(body).encode())

    def read(self, tag: str) -> dict[str, Any] | None:
        data = self.state.read_bytes(self.path(tag))
        if data is None:
            return None
        try:
            lease: dict[str, Any] = json.loads(data)
        except ValueError:
            return None
        return lease

    def alive(self, tag: str) -> bool:
        """Whether writer ``tag``'s lease is there and beating (taken at its word, no waiting)."""
        lease = self.read(tag)
        return lease is not None and not lease_dead(lease, time.time(), self.stale_after_seconds)

    def release(self) -> None:
        """Stop beating and drop the lease: the next attempt may adopt our leftovers at once."""
        with self._lock:
            self._stop.set()
        self.state.rm([self.path(self.run_tag)])

    def forget(self, tag: str) -> None:
        self.state.rm([self.path(tag)])

    def dead_writers(self, wait: bool) -> set[str]:
        """Writers (other than us) whose state we may adopt: lease gone, or not beating any more.

        A lease that looks fresh is watched for ``stale_after_seconds``: if its beat did not
        change it is dead, whatever the clocks say. That wait happens only at start-up and only
        when another writer's lease is recent (a crash moments ago, or a live parallel writer)
        and its process is not one this host can see running (:func:`process_alive`).
        """
        if self._dead is not None:
            return self._dead
        state = self.state
        tags = state.tags("journal") | state.tags("uploads") | state.tags("partial") | state.tags("extracts")
        leased = {p.rsplit("/", 1)[-1].removesuffix(".json") for p in state.ls(f"{state.root}/writers")}
        tags, leased = tags - {self.run_tag}, leased - {self.run_tag}
        leases = {tag: self.read(tag) for tag in tags | leased}
        now = time.time()
        stale = self.stale_after_seconds
        dead = {t for t, lease in leases.items() if lease is None or lease_dead(lease, now, stale)}
        alive = tags - dead  # only writers with state are worth waiting for
        watch = {t for t in alive if not process_alive(leases[t] or {})}
        if watch and wait:
            time.sleep(self.stale_after_seconds)
            for tag in watch:
                again = self.read(tag)
                if again is None or again.get("beat") == (leases[tag] or {}).get("beat"):
                    dead.add(tag)
        if alive - dead:
            log.info("Leaving the state of live writers alone: %s", sorted(alive - dead))
        self._dead = dead
        return dead
