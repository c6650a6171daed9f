"""Fixtures for hook tests: a ``delix`` connection pointing at an emulator on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from airflow_runner import connection_json

from airflow_provider_delix.hooks.delix import DelixHook

CONN_ID = "delix_test"


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Point connection ``delix_test`` (JSON env var form) at an emulator; returns the conn id."""

    def _connect(emulator: Any, *, api_key: str | None = None, **extra: Any) -> str:
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{CONN_ID.upper()}", connection_json(emulator, api_key=api_key, **extra)
        )
        return CONN_ID

    return _connect


class SleepRecorder:
    """Stands in for ``time.sleep`` in the retry loop: records waits, spends no wall time."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def hook(emulator: Any, connect: Callable[..., str], sleeps: SleepRecorder) -> Iterator[DelixHook]:
    """A hook on a fresh emulator (groundtruth OCR, no faults) whose retries don't sleep."""
    hook = DelixHook(connect(emulator), sleep=sleeps)
    yield hook
    hook.close()
