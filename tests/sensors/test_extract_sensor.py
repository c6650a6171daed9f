"""DelixExtractSensor against the emulator: not done while queued, done once processed."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from pdfs import make_pdf

from airflow_provider_delix.api.errors import DelixNotFoundError
from airflow_provider_delix.api.models import StoredFile
from airflow_provider_delix.hooks.delix import DelixHook
from airflow_provider_delix.sensors.delix import DelixExtractSensor


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
