"""Run the example DAG files with ``dag.test()`` in a subprocess against a migrated Airflow home.

A module of its own (not conftest) so test files can import it by a name no other test folder uses.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
sys.path.insert(0, str(DAGS))  # the helpers are imported as Airflow imports them: delix_etl.*


@dataclass(frozen=True)
class AirflowEnv:
    home: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "DELIX_"))}
        env.update(
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{self.home / 'airflow.db'}",
            AIRFLOW__CORE__UNIT_TEST_MODE="False",
            OMP_THREAD_LIMIT="1",
        )
        env.update(extra)
        return env

    def run_dag(self, dag_file: str, *args: str, timeout: float = 180, **extra: str) -> str:
        """Run ``dags/<dag_file>`` once; return its output, fail the test with it if the run failed."""
        result = subprocess.run(
            [sys.executable, str(DAGS / dag_file), *args],
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        output = result.stdout + result.stderr
        if result.returncode != 0 or "DAG_RUN_STATE=success" not in output:
            pytest.fail(f"{dag_file} {' '.join(args)} failed (exit {result.returncode}):\n{output[-6000:]}")
        return output
