"""Live metrics: names and values a StatsD/OpenTelemetry dashboard sees, from a recording sink."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping
from typing import Any

import pytest
from fakes import PRICE_PER_PAGE, FakeClock, FakeDelix, images, invalid_source
from test_pipeline import run

from airflow_provider_delix.core.metrics import RunMetrics

pytestmark = pytest.mark.timeout(60)


class Recorder:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.timings: dict[str, list[float]] = {}
        self.tags: list[dict[str, str]] = []

    def incr(self, name: str, count: int, tags: Mapping[str, str]) -> None:
        self.counts[name] += count
        self.tags.append(dict(tags))

    def timing(self, name: str, seconds: float, tags: Mapping[str, str]) -> None:
        self.timings.setdefault(name, []).append(seconds)
        self.tags.append(dict(tags))


def _out() -> str:
    return f"memory://metrics-{uuid.uuid4().hex}"


def test_pages_credits_requests_and_chunks_match_the_summary() -> None:
    sink = Recorder()
    sources = [*images(12), invalid_source("bad.png")]
    summary, error, _ = run(FakeDelix(), _out(), sources, metrics=sink)
    assert error is None and summary is not None
    assert sink.counts["delix.pages.processed"] == 12 == summary.rows["processed"]
    assert sink.counts["delix.pages.invalid"] == 1
    assert sink.counts["delix.credits.charged"] == 12 * PRICE_PER_PAGE == summary.credits_charged
    assert "delix.credits.refunded" not in sink.counts  # zero counts are not sent
    for endpoint, calls in summary.requests.items():
        assert sink.counts.get(f"delix.requests.{endpoint}", 0) == calls, endpoint
    chunks = summary.requests["upload_files"]
    assert len(sink.timings["delix.chunk_duration"]) == chunks
    assert all(t == {"kind": "images"} for t in sink.tags)


def test_storage_full_refusals_and_the_wait_are_counted() -> None:
    clock = FakeClock()
    sink = Recorder()
    fake = FakeDelix(full_for_uploads=3)
    summary, error, _ = run(
        fake, _out(), images(5), clock=clock, sleep=clock.sleep, max_concurrency=1, metrics=sink
    )
    assert error is None and summary is not None
    assert sink.counts["delix.storage_full_waits"] == 3
    assert sink.timings["delix.storage_wait"] == [pytest.approx(sum(clock.sleeps))]
    assert 0.5 * (1.0 + 2.0 + 4.0) <= sum(clock.sleeps) <= 1.5 * (1.0 + 2.0 + 4.0)  # jittered back-off


def test_a_broken_backend_never_stops_the_run(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def incr(self, *_: Any) -> None:
            raise OSError("statsd is down")

        def timing(self, *_: Any) -> None:
            raise OSError("statsd is down")

    summary, error, _ = run(FakeDelix(), _out(), images(6), metrics=Broken())
    assert error is None and summary is not None and summary.rows["processed"] == 6
    assert sum("Could not emit a Delix metric" in r.message for r in caplog.records) == 1


def test_names_are_built_in_one_place() -> None:
    sink = Recorder()
    metrics = RunMetrics(sink, {"kind": "documents"})
    metrics.pages("failed", 2)
    metrics.request("get_extract")
    metrics.chunk(1.5)
    assert sink.counts == Counter({"delix.pages.failed": 2, "delix.requests.get_extract": 1})
    assert sink.timings == {"delix.chunk_duration": [1.5]}
