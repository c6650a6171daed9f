"""``ShareReader``: the equal share of the account the key registry names, for the storage window.

Every writer on the key holds a lease in the registry, so the live ones can be counted and the
account split among them (:func:`~.window.fair_share`). Two things make the count unreliable,
and each is handled here rather than in the window:

* **a registry that sees only part of the key** (``foreign_uploaders``: the default registry
  under an executor that may use other hosts, or other programs on the key). The files the
  last orphan sweep found claimed by no visible writer are taken off the account first. That
  count is refreshed by a sweep at least every ``unseen_ttl`` seconds while it is used (sweeps
  also run on refusals). A writer that sees no other live writer there gets no share at all:
  on a Kubernetes pod the default registry lists the pod alone, and a share of "the whole
  account" would stop it from giving way to the pods it cannot see (AIMD alone decides);
* **the cost of reading it**: one read lists the leases and claims of every writer, so it is
  done by one thread at a time, at most every ``interval`` seconds plus ``per_writer`` seconds
  per live writer (16 writers: every 4 s), and a failed read is not retried for
  ``failure_backoff`` seconds (the window runs on AIMD alone meanwhile).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from airflow_provider_delix.core.key_registry import KeyRegistry
from airflow_provider_delix.core.orphan_sweep import SweepReport
from airflow_provider_delix.core.window import fair_share


class ShareReader:
    """Cached, single-flight reads of the registry's equal share for one writer (thread-safe)."""

    def __init__(
        self,
        registry: KeyRegistry,
        tag: str,
        *,
        clock: Callable[[], float],
        last_sweep: Callable[[], tuple[SweepReport | None, float]],
        request_sweep: Callable[[], None],
        interval: float = 1.0,
        per_writer: float = 0.25,
        unseen_ttl: float = 15.0,
        failure_backoff: float = 30.0,
    ) -> None:
        self.registry, self.tag, self.clock = registry, tag, clock
        self.last_sweep, self.request_sweep = last_sweep, request_sweep
        self.interval, self.per_writer = interval, per_writer
        self.unseen_ttl, self.failure_backoff = unseen_ttl, failure_backoff
        self.reads = 0
        self._lock = threading.Lock()
        self._share: float | None = None
        self._until = float("-inf")  # the cached answer (a share or None) holds until then
        self._reading = False

    def share(self) -> float | None:
        now = self.clock()
        with self._lock:
            if now < self._until or self._reading:
                return self._share  # fresh, or another thread is reading: the last answer
            self._reading = True
        share, until = None, now + self.failure_backoff
        try:
            view = self.registry.read()
            self.reads += 1
            live = 1 + view.live_besides(self.tag)
            until = now + self.interval + self.per_writer * live
            share = self._split(live, now)
        except Exception:  # unreadable: AIMD alone until the back-off ends
            share = None
        finally:
            with self._lock:
                self._share, self._until, self._reading = share, until, False
        return share

    def _split(self, live: int, now: float) -> float | None:
        if not self.registry.foreign_uploaders:
            return fair_share(live)  # every uploader on the key is in this registry
        if live < 2:
            return None  # a registry of one may be one of many: no evidence it sees the key
        report, at = self.last_sweep()
        if report is None or now - at > self.unseen_ttl:
            self.request_sweep()  # the count of unseen files is used: keep it fresh
        return fair_share(live, report.unclaimed if report is not None else 0)
