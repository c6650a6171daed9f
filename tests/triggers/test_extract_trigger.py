"""DelixExtractTrigger.run() against the in-process emulator: success, 404, timeout, faults, key."""

from __future__ import annotations

import importlib
import json
import logging
import time
from typing import Any

import pytest
from trigger_support import SECRET_KEY, queue_extract, run_trigger

from airflow_provider_delix.triggers.delix import DelixExtractTrigger

TRIGGER_PATH = "airflow_provider_delix.triggers.delix.DelixExtractTrigger"


def test_serialize_round_trips_and_keeps_the_deadline() -> None:
    before = time.time()
    trigger = DelixExtractTrigger(["e1", "e2"], "delix_x", poll_interval=5, timeout=30)
    path, kwargs = trigger.serialize()
    assert path == TRIGGER_PATH
    assert kwargs["extract_uuids"] == ["e1", "e2"] and kwargs["delix_conn_id"] == "delix_x"
    assert kwargs["poll_interval"] == 5.0 and kwargs["timeout"] == 30.0
    assert before + 30 <= kwargs["end_time"] <= time.time() + 30
    json.dumps(kwargs)  # stored by Airflow as JSON
    module, _, name = path.rpartition(".")
    again = getattr(importlib.import_module(module), name)(**kwargs)
    assert again.serialize() == (path, kwargs)  # a restarted trigger keeps the original deadline
    assert DelixExtractTrigger(["e"], "c").serialize()[1] == {
        "extract_uuids": ["e"],
        "delix_conn_id": "c",
        "poll_interval": 60.0,
        "timeout": None,
        "end_time": None,
    }


def test_bad_arguments() -> None:
    with pytest.raises(TypeError):
        DelixExtractTrigger("one-uuid", "c")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one"):
        DelixExtractTrigger([], "c")


def test_success_once_every_extract_is_processed(emulator: Any, connect: Any) -> None:
    conn_id = connect(emulator)
    emulator.configure(queue_delay=0.3, async_workers=1, async_pages_per_second=40)
    first, second = queue_extract(conn_id), queue_extract(conn_id)
    started = time.monotonic()
    events = run_trigger(DelixExtractTrigger([first, second], conn_id, poll_interval=0.05))
    assert events == [{"status": "success", "extract_uuids": [first, second]}]
    assert time.monotonic() - started >= 0.3  # not before the queue let them through
    stats = emulator.stats()
    assert stats["extracts"]["processed"] == 2
    assert stats["calls"]["GET /extracts/{uuid}"] >= 4  # polled while they were processing


def test_an_extract_that_is_already_processed_fires_at_once(emulator: Any, connect: Any) -> None:
    conn_id = connect(emulator)
    uuid = queue_extract(conn_id)
    time.sleep(0.2)
    events = run_trigger(DelixExtractTrigger([uuid, uuid], conn_id, poll_interval=3600))
    assert events == [{"status": "success", "extract_uuids": [uuid, uuid]}]


def test_a_missing_extract_is_an_error_event(emulator: Any, connect: Any) -> None:
    conn_id = connect(emulator)
    uuid = queue_extract(conn_id)
    (event,) = run_trigger(DelixExtractTrigger([uuid, "no-such-extract"], conn_id, poll_interval=0.05))
    assert event["status"] == "error" and event["extract_uuids"] == [uuid, "no-such-extract"]
    assert "no-such-extract" in event["message"] and "404" in event["message"]
    assert conn_id in event["message"]
    assert emulator.stats()["calls_by_status"]["GET /extracts/{uuid}"]["404"] == 1  # never retried


def test_timeout_event_names_the_pending_extracts(emulator: Any, connect: Any) -> None:
    conn_id = connect(emulator)
    emulator.configure(queue_delay=3600)
    uuid = queue_extract(conn_id)
    started = time.monotonic()
    (event,) = run_trigger(DelixExtractTrigger([uuid], conn_id, poll_interval=0.1, timeout=0.4))
    assert time.monotonic() - started >= 0.4
    assert event["status"] == "timeout" and event["pending_extract_uuids"] == [uuid]
    assert event["extract_uuids"] == [uuid] and uuid in event["message"]


def test_throttling_and_server_errors_are_retried(emulator: Any, connect: Any) -> None:
    conn_id = connect(emulator, max_retries=20)
    # The extract outlives many polls (8 pages at 8 pages/s): with a short one, a stall of the
    # machine could let it finish before the poll that draws a given fault.
    emulator.configure(async_pages_per_second=8)
    uuid = queue_extract(conn_id)
    emulator.configure(rate_429=0.3, rate_500=0.2, rate_503=0.1, retry_after=0, seed=11)
    events = run_trigger(DelixExtractTrigger([uuid], conn_id, poll_interval=0.05))
    assert events == [{"status": "success", "extract_uuids": [uuid]}]
    statuses = emulator.stats()["calls_by_status"]["GET /extracts/{uuid}"]
    assert statuses.get("429", 0) and statuses.get("500", 0) and statuses.get("200", 0)


def test_dropped_connections_are_retried(emulator: Any, connect: Any) -> None:
    conn_id = connect(emulator, max_retries=20)
    uuid = queue_extract(conn_id)
    emulator.configure(rate_drop=0.4, seed=3)
    events = run_trigger(DelixExtractTrigger([uuid], conn_id, poll_interval=0.05))
    assert events == [{"status": "success", "extract_uuids": [uuid]}]
    assert emulator.stats()["faults"]["drop"] >= 1


def test_a_failing_delix_is_polled_again_until_the_timeout(emulator: Any, connect: Any) -> None:
    conn_id = connect(emulator, max_retries=1)
    uuid = queue_extract(conn_id)
    emulator.configure(rate_500=1.0)
    (event,) = run_trigger(DelixExtractTrigger([uuid], conn_id, poll_interval=0.05, timeout=0.3))
    assert event["status"] == "timeout" and "HTTP 500" in event["message"]
    assert emulator.stats()["calls_by_status"]["GET /extracts/{uuid}"]["500"] >= 4  # several polls


def logged(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> str:
    """Everything logged: stdlib records (caplog) and what Airflow's structlog wrote to the fds."""
    out, err = capfd.readouterr()
    records = [f"{r.name} {r.getMessage()} {r.msg} {r.args}" for r in caplog.records]
    return "\n".join([caplog.text, *records, out, err])


def test_a_refused_key_is_an_error_naming_the_connection_never_the_key(
    emulator_factory: Any, connect: Any, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    emulator = emulator_factory(api_key=SECRET_KEY)
    uuid = queue_extract(connect(emulator))
    wrong = SECRET_KEY[::-1]
    conn_id = connect(emulator, api_key=wrong)
    with caplog.at_level(logging.DEBUG):
        (event,) = run_trigger(DelixExtractTrigger([uuid], conn_id, poll_interval=0.05))
    assert event["status"] == "error"
    assert f"connection '{conn_id}'" in event["message"] and "refused the API key" in event["message"]
    assert emulator.stats()["calls_by_status"]["GET /extracts/{uuid}"] == {"401": 1}  # never retried
    text = json.dumps(event) + logged(caplog, capfd)
    assert "refused the API key" in text
    assert wrong not in text and SECRET_KEY not in text


def test_the_key_is_in_no_log_or_event_of_a_run_with_retries(
    emulator_factory: Any, connect: Any, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    emulator = emulator_factory(api_key=SECRET_KEY, async_pages_per_second=8)  # outlives many polls
    conn_id = connect(emulator, max_retries=20)
    uuid = queue_extract(conn_id)
    emulator.configure(rate_429=0.3, rate_500=0.3, retry_after=0, seed=1)
    with caplog.at_level(logging.DEBUG):
        events = run_trigger(DelixExtractTrigger([uuid], conn_id, poll_interval=0.05))
    assert events == [{"status": "success", "extract_uuids": [uuid]}]
    statuses = emulator.stats()["calls_by_status"]["GET /extracts/{uuid}"]
    assert statuses.get("429", 0) and statuses.get("500", 0)
    text = json.dumps(events) + logged(caplog, capfd)
    assert "HTTP 429" in text and "still processing" in text  # the retries and polls were logged...
    assert SECRET_KEY not in text  # ...without the key
