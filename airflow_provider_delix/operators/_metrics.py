"""The core's live metrics sent through Airflow's ``Stats``: StatsD and OpenTelemetry alike.

Airflow routes ``Stats`` to whatever the deployment configured (``[metrics] statsd_on``,
``otel_on``, a custom logger) and adds its own prefix (``airflow.`` by default), so the
operators need no metrics client of their own. Names and meaning: ``core/metrics.py`` and
``docs/metrics.md``. Tags name the DAG and the task (map index included) so a dashboard can
split per mapped task; backends without tags ignore them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any


class AirflowStats:
    """A :class:`~airflow_provider_delix.core.metrics.MetricsSink` over ``Stats``."""

    def __init__(self, tags: Mapping[str, str]) -> None:
        from airflow.providers.common.compat.sdk import Stats

        self._stats: Any = Stats
        self._tags = dict(tags)

    def incr(self, name: str, count: int, tags: Mapping[str, str]) -> None:
        self._stats.incr(name, count, tags={**self._tags, **tags})

    def timing(self, name: str, seconds: float, tags: Mapping[str, str]) -> None:
        self._stats.timing(name, dt.timedelta(seconds=seconds), tags={**self._tags, **tags})


def task_tags(ti: Any) -> dict[str, str]:
    """``dag_id``, ``task_id`` and ``map_index`` of the running task instance."""
    return {
        "dag_id": str(getattr(ti, "dag_id", "")),
        "task_id": str(getattr(ti, "task_id", "")),
        "map_index": str(getattr(ti, "map_index", -1)),
    }
