"""DelixExtractSensor against the emulator: not done while queued, done once processed; deferrable."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowSensorTimeout, TaskDeferred
from pdfs import make_pdf

from airflow_provider_delix.api.errors import DelixNotFoundError
from airflow_provider_delix.api.models import StoredFile
from airflow_provider_delix.hooks.delix import DelixHook
from airflow_provider_delix.sensors.delix import DelixExtractSensor
from airflow_provider_delix.triggers.delix import DelixExtractTrigger


def test_sensor_waits_for_a_queued_document_extraction(
    emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_DELIX_DEFAULT",
        json.dumps({"conn_type": "delix", "host": emulator.base_url, "password": emulator.api_key}),
    )
    emulator.configure(latency_extract_page=0.1)
    hook = DelixHook()
    (pdf,) = hook.upload_files([("long.pdf", make_pdf([f"page {n}" for n in range(1, 9)]))])
    assert isinstance(pdf, StoredFile)
    queued = hook.extract_documents([pdf.uuid], "danlin", "en")
    sensor = DelixExtractSensor(task_id="wait", extract_uuid=queued.uuid)
    assert sensor.poke_interval == 60.0
    assert sensor.poke({}) is False
    deadline = time.monotonic() + 30
    while not sensor.poke({}):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    with pytest.raises(DelixNotFoundError):
        DelixExtractSensor(task_id="missing", extract_uuid="nope").poke({})


def _queue(monkeypatch: pytest.MonkeyPatch, emulator: Any) -> str:
    monkeypatch.setenv(
        "AIRFLOW_CONN_DELIX_DEFAULT",
        json.dumps({"conn_type": "delix", "host": emulator.base_url, "password": emulator.api_key}),
    )
    hook = DelixHook()
    (pdf,) = hook.upload_files([("long.pdf", make_pdf([f"page {n}" for n in range(1, 9)]))])
    assert isinstance(pdf, StoredFile)
    return hook.extract_documents([pdf.uuid], "probe").uuid


def test_not_deferrable_by_default() -> None:
    sensor = DelixExtractSensor(task_id="wait", extract_uuid="e")
    assert sensor.deferrable is False and sensor.poll_interval == 60.0
    assert DelixExtractSensor(task_id="w", extract_uuid="e", poke_interval=5).poll_interval == 5.0


def test_deferrable_sensor_defers_to_the_trigger_while_processing(
    emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.configure(queue_delay=0.6)
    uuid = _queue(monkeypatch, emulator)
    sensor = DelixExtractSensor(
        task_id="wait", extract_uuid=uuid, deferrable=True, poll_interval=0.05, timeout=120
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, DelixExtractTrigger) and deferred.value.method_name == "execute_complete"
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_delix.triggers.delix.DelixExtractTrigger"
    assert kwargs["extract_uuids"] == [uuid] and kwargs["delix_conn_id"] == "delix_default"
    assert kwargs["poll_interval"] == 0.05 and kwargs["timeout"] == 120.0

    async def fire() -> list[dict[str, Any]]:  # what the triggerer does, then the resumed task
        return [event.payload async for event in trigger.run()]

    (event,) = asyncio.run(asyncio.wait_for(fire(), 60))
    assert event == {"status": "success", "extract_uuids": [uuid]}
    assert sensor.execute_complete({}, event) is None


def test_deferrable_sensor_completes_at_once_when_processed(
    emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    uuid = _queue(monkeypatch, emulator)
    DelixHook().wait_for_extract(uuid, poll_interval=0.05, timeout=30)
    sensor = DelixExtractSensor(task_id="wait", extract_uuid=uuid, deferrable=True)
    assert sensor.execute({}) is None  # no TaskDeferred


def test_execute_complete_fails_clearly_on_error_and_timeout() -> None:
    sensor = DelixExtractSensor(task_id="wait", extract_uuid="e1", deferrable=True)
    gone = {"status": "error", "message": "Extract e1 is gone from Delix (HTTP 404)", "extract_uuids": ["e1"]}
    with pytest.raises(AirflowException, match="Extract e1 is gone from Delix"):
        sensor.execute_complete({}, gone)
    late = {"status": "timeout", "message": "still processing after 60 s", "extract_uuids": ["e1"]}
    with pytest.raises(AirflowSensorTimeout, match="still processing"):
        sensor.execute_complete({}, late)
    with pytest.raises(AirflowException, match="no message"):
        sensor.execute_complete({}, None)


def test_a_refused_key_fails_the_sensor_without_retries(
    emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the operators do: a new try cannot fix the key, so the task must not be retried."""
    from airflow.providers.common.compat.sdk import AirflowFailException

    monkeypatch.setenv(
        "AIRFLOW_CONN_DELIX_DEFAULT",
        json.dumps({"conn_type": "delix", "host": emulator.base_url, "password": "not-the-key"}),
    )
    sensor = DelixExtractSensor(task_id="wait", extract_uuid="e", poke_interval=0.05)
    with pytest.raises(AirflowFailException, match="delix_default") as failed:
        sensor.poke({})  # type: ignore[arg-type]
    assert "not-the-key" not in str(failed.value)
