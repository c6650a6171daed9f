"""The queue of asynchronous document extractions: queue delay, workers, speed, faults.

Timing assertions are lower bounds the emulator guarantees (an extract can never be processed
before its delay and processing time have passed) plus the queue's own time stamps
(``ExtractRecord.queued_at/started_at/finished_at``), so a slow machine cannot make them flaky.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import requests

from airflow_provider_delix.emulator.async_queue import async_processing_seconds
from airflow_provider_delix.emulator.config import EmulatorConfig
from airflow_provider_delix.emulator.state import ExtractRecord
from airflow_provider_delix.emulator.testing import InProcessEmulator

from .samples import PROBE, Api, pdf

TRANSIENT = (429, 500, 503)


def store_pdf(api: Api, pages: int = 8) -> str:
    (uuid,) = api.store(pdf([f"page {n}" for n in range(1, pages + 1)]))
    return uuid


def queue(api: Api, file_uuid: str) -> str:
    """Queue the extraction of a stored PDF (more than 5 pages: async); the extract's uuid."""
    answer = api.documents({"engine": PROBE, "files": [{"uuid": file_uuid}]})
    assert answer.status_code == 201, answer.text
    data = answer.json()["data"]
    assert data["status"] == "processing"
    return str(data["uuid"])


def queue_one(api: Api, pages: int = 8) -> str:
    return queue(api, store_pdf(api, pages))


def record(emulator: InProcessEmulator, extract_uuid: str) -> ExtractRecord:
    return emulator.app.account.extracts[extract_uuid]


def until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_processing_time_rule() -> None:
    assert async_processing_seconds(EmulatorConfig(async_pages_per_second=4), 10) == 2.5
    assert async_processing_seconds(EmulatorConfig(latency_extract_page=0.5), 10) == 5.0
    assert async_processing_seconds(EmulatorConfig(), 10) == 0.0


def test_queue_delay_keeps_an_extract_processing(emulator_factory: Any) -> None:
    emulator = emulator_factory(queue_delay=1.0)
    api = Api(emulator)
    file_uuid = store_pdf(api)
    started = time.monotonic()
    uuid = queue(api, file_uuid)
    time.sleep(max(0.0, started + 0.1 - time.monotonic()))
    assert api.extract(uuid).json()["data"]["status"] == "processing"
    assert emulator.stats()["queue"] == {"waiting": 1, "running": 0, "workers": 2}
    done = api.wait_processed(uuid)
    assert time.monotonic() - started >= 1.0
    assert done["failed_pages"] == 0 and isinstance(done["files"][0]["pages"], str)
    rec = record(emulator, uuid)
    assert rec.queued_at is not None and rec.started_at is not None and rec.finished_at is not None
    assert rec.started_at - rec.queued_at >= 1.0
    assert emulator.stats()["queue"] == {"waiting": 0, "running": 0, "workers": 2}


def test_one_worker_processes_queued_extracts_one_after_the_other(emulator_factory: Any) -> None:
    emulator = emulator_factory(async_workers=1, async_pages_per_second=20)  # 8 pages: 0.4 s each
    api = Api(emulator)
    first, second = queue_one(api), queue_one(api)
    assert api.extract(second).json()["data"]["status"] == "processing"
    done = api.wait_processed(first)
    assert done["status"] == "processed"
    api.wait_processed(second)
    a, b = record(emulator, first), record(emulator, second)
    assert a.started_at is not None and a.finished_at is not None
    assert b.started_at is not None and b.finished_at is not None
    assert a.finished_at - a.started_at >= 0.4 and b.finished_at - b.started_at >= 0.4
    assert b.started_at >= a.finished_at  # the only worker was busy with the first one
    assert emulator.stats()["extracts"] == {"total": 2, "processing": 0, "processed": 2}


def test_two_workers_process_two_extracts_at_once(emulator_factory: Any) -> None:
    emulator = emulator_factory(async_workers=2, async_pages_per_second=10)  # 8 pages: 0.8 s each
    api = Api(emulator)
    a_pdf, b_pdf = store_pdf(api), store_pdf(api)
    first, second = queue(api, a_pdf), queue(api, b_pdf)
    api.wait_processed(first)
    api.wait_processed(second)
    a, b = record(emulator, first), record(emulator, second)
    assert a.finished_at is not None and b.started_at is not None
    assert b.started_at < a.finished_at


def test_settings_act_on_extracts_already_queued(emulator_factory: Any) -> None:
    emulator = emulator_factory(queue_delay=3600, async_workers=1)
    api = Api(emulator)
    uuids = [queue_one(api, pages=6) for _ in range(3)]
    time.sleep(0.05)
    assert emulator.stats()["queue"] == {"waiting": 3, "running": 0, "workers": 1}
    emulator.configure(queue_delay=0, async_workers=3, async_pages_per_second=10)  # releases them
    for uuid in uuids:
        assert api.wait_processed(uuid)["status"] == "processed"
    records = [record(emulator, uuid) for uuid in uuids]
    first_done = min(r.finished_at or 0.0 for r in records)
    assert all(r.started_at is not None and r.started_at < first_done for r in records)  # all at once
    assert emulator.stats()["queue"] == {"waiting": 0, "running": 0, "workers": 3}


def test_reset_forgets_queued_extracts(emulator_factory: Any) -> None:
    emulator = emulator_factory(queue_delay=3600)
    api = Api(emulator)
    uuid = queue_one(api)
    emulator.reset()
    assert emulator.stats()["queue"]["waiting"] == 0
    assert api.extract(uuid).status_code == 404


def _retrying(call: Callable[[], requests.Response], faults: list[str]) -> requests.Response:
    """Repeat a request through injected faults (a client's retry loop); records what it met."""
    for _ in range(500):
        try:
            answer = call()
        except requests.ConnectionError:
            faults.append("dropped")
            continue
        if answer.status_code in TRANSIENT:
            faults.append(str(answer.status_code))
            continue
        return answer
    raise AssertionError("the fault rates never let a request through")


def test_faults_never_lose_or_change_a_queued_extract(emulator_factory: Any) -> None:
    emulator = emulator_factory(async_pages_per_second=50, per_page=3, seed=7)
    api = Api(emulator)
    pages = 10
    uuid = queue_one(api, pages=pages)
    file_uuid = record(emulator, uuid).files[0][0].uuid
    emulator.configure(rate_500=0.25, rate_drop=0.15, rate_429=0.1, retry_after=0)
    faults: list[str] = []

    # Polls while it is queued and running: faulted ones change nothing, the others agree.
    seen: list[dict[str, Any]] = []
    while not seen or seen[-1]["status"] != "processed":
        answer = _retrying(lambda: api.extract(uuid), faults)
        assert answer.status_code == 200
        seen.append(answer.json()["data"])
        time.sleep(0.01)
    assert {d["status"] for d in seen} <= {"processing", "processed"}
    done = seen[-1]
    assert (done["failed_pages"], done["returned_credits"], done["initial_cost"]) == (0, 0, 1000)
    url = done["files"][0]["pages"]

    # The contents, page by page through the faults, then again: the same pages, in order.
    def collect() -> list[tuple[int, str]]:
        collected: list[tuple[int, str]] = []
        for page in range(1, 5):
            answer = _retrying(functools.partial(api.contents, uuid, file_uuid, page), faults)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["meta"]["last_page"] == 4 and body["meta"]["total"] == pages
            assert body["meta"]["current_page"] == page and body["meta"]["per_page"] == 3
            assert body["links"]["next"] == (f"{url}?page={page + 1}" if page < 4 else None)
            collected += [(p["number"], p["text"].strip()) for p in body["data"]]
        return collected

    expected = [(n, f"page {n}") for n in range(1, pages + 1)]
    assert collect() == expected
    assert collect() == expected
    assert {"500", "429", "dropped"} <= set(faults)

    emulator.configure(rate_500=0, rate_drop=0, rate_429=0)
    stats = emulator.stats()
    assert sum(stats["faults"].values()) == len(faults)
    assert stats["extracts"] == {"total": 1, "processing": 0, "processed": 1}
    assert stats["credits"]["charged"] == 1000 and set(stats["charges"].values()) == {1}
    assert stats["pages"] == {"processed": pages, "failed": 0}
    assert stats["queue"]["waiting"] == 0 and stats["queue"]["running"] == 0
