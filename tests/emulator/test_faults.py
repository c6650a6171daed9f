"""Injected faults: 429 with Retry-After, 500, 503, dropped connections; none changes any state."""

from __future__ import annotations

import time
import urllib.error
from typing import Any

import pytest
import requests

from airflow_provider_delix.emulator.testing import InProcessEmulator

from .samples import ENGINE_FA, Api, png


def test_429_carries_retry_after(emulator: InProcessEmulator, api: Api) -> None:
    emulator.configure(rate_429=1.0)
    answer = api.files()
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "1"
    emulator.configure(retry_after=7)
    assert api.files().headers["Retry-After"] == "7"
    assert emulator.stats()["calls_by_status"]["GET /files"] == {"429": 2}


@pytest.mark.parametrize(("setting", "status"), [("rate_429", 429), ("rate_500", 500), ("rate_503", 503)])
def test_http_faults_change_no_state(
    emulator: InProcessEmulator, api: Api, setting: str, status: int
) -> None:
    (kept,) = api.store(png("kept"))
    emulator.configure(**{setting: 1.0})
    assert api.upload(png("new")).status_code == status
    assert api.images({"engine": ENGINE_FA, "files": [{"uuid": kept}]}).status_code == status
    assert api.delete(kept).status_code == status
    assert api.files().status_code == status
    emulator.configure(**{setting: 0.0})
    assert [f["uuid"] for f in api.files().json()["data"]] == [kept]
    stats = emulator.stats()
    assert stats["credits"]["charged"] == 0 and stats["extracts"]["total"] == 0
    assert stats["faults"] == {str(status): 4}


def test_general_exception_is_a_422_with_the_enum_and_changes_no_state(
    emulator: InProcessEmulator, api: Api
) -> None:
    (kept,) = api.store(png("kept"))
    emulator.configure(rate_general_exception=1.0)
    answer = api.images({"engine": ENGINE_FA, "files": [{"uuid": kept}]})
    assert answer.status_code == 422 and answer.json()["error"] == "GENERAL_EXCEPTION"
    assert answer.json()["message"]
    emulator.configure(rate_general_exception=0.0)
    assert emulator.stats()["credits"]["charged"] == 0 and emulator.stats()["extracts"]["total"] == 0


def test_dropped_connections_close_without_an_answer(emulator: InProcessEmulator, api: Api) -> None:
    (kept,) = api.store(png("kept"))
    emulator.configure(rate_drop=1.0)
    with pytest.raises(requests.ConnectionError):
        api.upload(png("new"))
    with pytest.raises(requests.ConnectionError):
        api.delete(kept)
    emulator.configure(rate_drop=0.0)
    assert [f["uuid"] for f in api.files().json()["data"]] == [kept]
    assert emulator.stats()["calls_by_status"]["POST /files"] == {"207": 1, "dropped": 1}


def test_faults_follow_the_seed(emulator_factory: Any) -> None:
    def statuses(seed: int) -> list[int | str]:
        api = Api(emulator_factory(rate_500=0.3, rate_503=0.2, seed=seed))
        return [api.files().status_code for _ in range(30)]

    first = statuses(5)
    assert first == statuses(5) and {500, 503, 200} <= set(first)
    assert first != statuses(6)


def test_latencies(emulator: InProcessEmulator, api: Api) -> None:
    emulator.configure(latency_other=0.2, latency_upload=0.1)
    started = time.monotonic()
    api.files()
    middle = time.monotonic()
    api.store(png("x"))
    assert middle - started >= 0.2 and time.monotonic() - middle >= 0.1


def test_admin_rejects_bad_settings(emulator: InProcessEmulator) -> None:
    for bad in (
        {"nope": 1},
        {"rate_429": 2},
        {"rate_500": 0.6, "rate_503": 0.6},
        {"document_mode": "x"},
        {"ocr": "tesseract"},
        {"queue_delay": -1},
        {"async_pages_per_second": -0.5},
        {"async_workers": 0},
    ):
        with pytest.raises(urllib.error.HTTPError, match="400"):
            emulator.configure(**bad)
    assert emulator.config()["rate_429"] == 0.0


def test_an_emulator_bug_is_a_plain_500_not_the_422_enum(
    emulator: InProcessEmulator, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The spec's GENERAL_EXCEPTION is a 422 refusal; a crash inside the server is the transient
    # kind of failure, so its answer must not carry the enum a client treats as a refusal.
    def crash(*_args: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(emulator.app, "_dispatch", crash)
    answer = api.files()
    assert answer.status_code == 500
    assert "error" not in answer.json() and "boom" in answer.json()["message"]
    assert emulator.stats()["internal_errors"] == 1
