"""Fixtures of the emulator conformance tests: an ``Api`` client on the shared ``emulator``."""

from __future__ import annotations

import pytest

from airflow_provider_delix.emulator.testing import InProcessEmulator

from .samples import Api


@pytest.fixture
def api(emulator: InProcessEmulator) -> Api:
    return Api(emulator)
