"""Run the example DAG files with ``dag.test()`` in a subprocess against a migrated Airflow home.

A module of its own (not conftest) so test files can import it by a name no other test folder uses.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from airflow_runner import AirflowEnv as BaseAirflowEnv
from airflow_runner import migrate

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
sys.path.insert(0, str(DAGS))  # the helpers are imported as Airflow imports them: delix_etl.*


class AirflowEnv(BaseAirflowEnv):
    """The shared runner (tests/airflow_runner.py) pointed at the repository's ``dags/``."""

    def run_dag(self, dag_file: str, *args: str, timeout: float = 180, **extra: str) -> str:
        """Run ``dags/<dag_file>`` once; return its output, fail the test with it if the run failed."""
        state, output = self.run(DAGS / dag_file, *args, timeout=timeout, **extra)
        if state != "success":
            pytest.fail(f"{dag_file} {' '.join(args)} ended {state}:\n{output[-6000:]}")
        return output


def migrated(home: Path) -> AirflowEnv:
    """A migrated Airflow home whose DAGs folder is the repository's ``dags/``."""
    base = migrate(home, DAGS)
    return AirflowEnv(home=base.home, dags=base.dags)
