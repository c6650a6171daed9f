"""Fixtures for the async hook and trigger tests: a ``delix`` connection on an emulator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from airflow_runner import connection_json
from trigger_support import CONN_ID, FAST_RETRIES


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Point connection ``delix_trigger_test`` (JSON env var form) at an emulator; its id."""

    def _connect(emulator: Any, *, api_key: str | None = None, **extra: Any) -> str:
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{CONN_ID.upper()}",
            connection_json(emulator, api_key=api_key, **{**FAST_RETRIES, **extra}),
        )
        return CONN_ID

    return _connect
