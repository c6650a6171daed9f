"""Metrics of a run, emitted as they happen, to whatever the caller plugs in.

Pages, credits, requests and storage waits exist in the manifest and the logs once a run ends;
a platform team watches them live, on the dashboards its StatsD or OpenTelemetry backend
feeds. The core does not know Airflow, so it talks to a :class:`MetricsSink`; the operators
plug in Airflow's ``Stats`` (see ``operators/_metrics.py``), tests a recorder. Every name is
under the ``delix.`` prefix and documented in ``docs/metrics.md``:

========================================  =======  =============================================
name                                      kind     meaning
========================================  =======  =============================================
``delix.pages.<status>``                  counter  rows written: processed/failed/rejected/invalid
``delix.credits.charged``                 counter  credits Delix charged (per the rows written)
``delix.credits.refunded``                counter  credits Delix refunded for failed pages
``delix.requests.<endpoint>``             counter  API calls by client method (retries not counted)
``delix.storage_full_waits``              counter  uploads refused because the shared account was full
``delix.storage_wait``                    timer    time a chunk waited for account space
``delix.chunk_duration``                  timer    one chunk from upload to its last row
========================================  =======  =============================================

Tags (for backends that take them): ``kind`` (images/documents) plus what the caller adds
(the operator adds ``dag_id`` and ``task_id``). A sink must never raise into the run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

log = logging.getLogger(__name__)

PREFIX = "delix"


class MetricsSink(Protocol):
    def incr(self, name: str, count: int, tags: Mapping[str, str]) -> None: ...

    def timing(self, name: str, seconds: float, tags: Mapping[str, str]) -> None: ...


class NoMetrics:
    """The default: nothing is emitted."""

    def incr(self, name: str, count: int, tags: Mapping[str, str]) -> None:
        return None

    def timing(self, name: str, seconds: float, tags: Mapping[str, str]) -> None:
        return None


class RunMetrics:
    """What the pipeline calls: names built in one place, the run's tags added, errors contained."""

    def __init__(self, sink: MetricsSink | None, tags: Mapping[str, str]) -> None:
        self._sink: MetricsSink = sink or NoMetrics()
        self._tags = dict(tags)
        self._warned = False

    def pages(self, status: str, count: int) -> None:
        self._incr(f"pages.{status}", count)

    def credits(self, charged: int, refunded: int) -> None:
        self._incr("credits.charged", charged)
        self._incr("credits.refunded", refunded)

    def request(self, endpoint: str) -> None:
        self._incr(f"requests.{endpoint}", 1)

    def storage_full(self) -> None:
        self._incr("storage_full_waits", 1)

    def storage_wait(self, seconds: float) -> None:
        self._timing("storage_wait", seconds)

    def chunk(self, seconds: float) -> None:
        self._timing("chunk_duration", seconds)

    def _incr(self, name: str, count: int) -> None:
        if count:
            try:
                self._sink.incr(f"{PREFIX}.{name}", count, self._tags)
            except Exception as exc:
                self._failed(exc)

    def _timing(self, name: str, seconds: float) -> None:
        try:
            self._sink.timing(f"{PREFIX}.{name}", seconds, self._tags)
        except Exception as exc:
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        if not self._warned:  # a broken metrics backend must not stop (or flood) the run
            self._warned = True
            log.warning("Could not emit a Delix metric (further failures are not logged): %s", exc)
