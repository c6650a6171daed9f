"""Fixtures shared by the core tests (plain Python: this folder also runs without Airflow)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_delix.core.table import open_output


@pytest.fixture(params=["local", "memory"])
def out(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An output path, once on the local disk and once on ``memory://`` (cleaned up after)."""
    if request.param == "local":
        yield str(tmp_path / "out")
        return
    url = f"memory://out-{uuid.uuid4().hex}"
    yield url
    fs, path = open_output(url)
    if fs.exists(path):
        fs.rm(path, recursive=True)
