"""Fixtures of the decorator tests: one migrated Airflow home per session (as tests/operators)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from airflow_runner import AirflowEnv, migrate


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowEnv]:
    yield migrate(tmp_path_factory.mktemp("airflow_home"))
