"""Fixtures for the async hook and trigger tests: a ``delix`` connection on an emulator."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from trigger_support import CONN_ID, FAST_RETRIES


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Point connection ``delix_trigger_test`` (JSON env var form) at an emulator; its id."""

    def _connect(emulator: Any, *, api_key: str | None = None, **extra: Any) -> str:
        value = {
            "conn_type": "delix",
            "host": emulator.base_url,
            "password": emulator.api_key if api_key is None else api_key,
            "extra": {**FAST_RETRIES, **extra},
        }
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(value))
        return CONN_ID

    return _connect
