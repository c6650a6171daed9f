"""Shared pytest fixtures: the Delix emulator on loopback, and the ``tesseract`` marker policy.

* ``emulator``: a fresh in-process emulator (``groundtruth`` OCR, no faults, unlimited
  credits) per test; see ``airflow_provider_delix.emulator.testing`` for its methods.
* ``emulator_factory``: ``emulator_factory(**config)`` starts another one with settings
  (``api_key=...``, ``rate_429=...``, ``ocr="tesseract"``...); all are stopped after the test.
* Tests marked ``tesseract`` are skipped when the binary or its fas/eng/ara/tur models are
  missing, except when the ``CI`` environment variable is set: there a missing Tesseract must
  fail the run, not silently shrink it.
* ``s3_server``: one real S3-compatible server (SeaweedFS, ``tests/s3_server.py``) per session
  with the buckets ``scans`` and ``tables``; skipped when ``weed`` cannot run, failed under ``CI``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

# Importing Airflow writes into $AIRFLOW_HOME (~/airflow when unset): keep a bare `pytest` out
# of the user's home too (scripts/test.sh sets one per lane).
os.environ.setdefault(
    "AIRFLOW_HOME",
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "build", "airflow-home"),
)

from airflow_provider_delix.emulator.tesseract import tesseract_available
from airflow_provider_delix.emulator.testing import InProcessEmulator, run_emulator

S3_BUCKETS = ("scans", "tables")

# The longest test files, longest first (measured in CI: ``--durations`` in scripts/test.sh).
# Two xdist workers take tests in collection order: starting these first keeps one of them
# from being the last thing left running on one core while the other idles.
LONGEST_FIRST = (
    "test_sigkill_dag.py",  # ~270 s on a loaded 2-core machine
    "test_document_dag.py",  # ~260 s
    "test_example_dags.py",  # ~240 s
    "test_operator_dag.py",  # ~170 s
    "test_shared_output_dag.py",
    "test_orphans_dag.py",
    "test_s3.py",
    "test_bench_smoke.py",
    "test_packing_dag.py",  # with the deferred run: ~95 s
    "test_lost_answers_dag.py",
    "test_sigterm_dag.py",
    "test_memory_dag.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest files first (stable: a file's own order is kept); every worker sorts the same."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@functools.cache
def _have_tesseract() -> bool:
    return tesseract_available()


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("tesseract") is None or _have_tesseract():
        return
    if os.environ.get("CI"):
        pytest.fail("tesseract with fas/eng/ara/tur is required when CI is set (run scripts/bootstrap.sh)")
    pytest.skip("tesseract with fas/eng/ara/tur data is not installed")


@pytest.fixture
def emulator_factory() -> Iterator[Callable[..., InProcessEmulator]]:
    with ExitStack() as stack:

        def start(**config: Any) -> InProcessEmulator:
            return stack.enter_context(run_emulator(**config))

        yield start


@pytest.fixture
def emulator(emulator_factory: Callable[..., InProcessEmulator]) -> InProcessEmulator:
    return emulator_factory()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """SeaweedFS for the whole session: starting it costs ~3 s, buckets isolate nothing we need."""
    from s3_server import S3ServerUnavailable, run_s3_server, weed_binary

    try:
        weed_binary()
    except S3ServerUnavailable as error:
        if os.environ.get("CI"):
            pytest.fail(f"{error}; a real S3 server is required when CI is set")
        pytest.skip(str(error))
    with run_s3_server(tmp_path_factory.mktemp("seaweedfs"), S3_BUCKETS) as server:
        yield server
