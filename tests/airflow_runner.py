"""Run DAG files with ``dag.test()`` in a subprocess against a migrated SQLite metadata DB.

Why a subprocess: Airflow 3.3's ``dag.test()`` needs a migrated DB and the DAG file inside
``AIRFLOW__CORE__DAGS_FOLDER``, both set before Airflow is first imported; and the kill test
needs a process it can SIGKILL. One migrated ``AIRFLOW_HOME`` serves a whole test session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

RUNNER_FOOTER = """
if __name__ == "__main__":
    _run = dag.test()
    print("DAG_RUN_STATE=" + str(_run.state))
"""


@dataclass(frozen=True)
class AirflowEnv:
    home: Path
    dags: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "DELIX_"))}
        env.update(
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__DAGS_FOLDER=str(self.dags),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{self.home / 'airflow.db'}",
            AIRFLOW__CORE__UNIT_TEST_MODE="False",
            OMP_THREAD_LIMIT="1",
            PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]),
        )
        env.update(extra)
        return env

    def write_dag(self, name: str, source: str) -> Path:
        path = self.dags / f"{name}.py"
        path.write_text(textwrap.dedent(source) + RUNNER_FOOTER)
        return path

    def popen(self, dag_file: Path, **extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, str(dag_file)],
            env=self.env(**extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def run(self, dag_file: Path, *args: str, timeout: float = 300, **extra: str) -> tuple[str, str]:
        """Run the DAG file (with ``args``); return (final dag run state, combined output)."""
        process = subprocess.run(
            [sys.executable, str(dag_file), *args],
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        output = process.stdout + process.stderr
        state = ""
        for line in output.splitlines():
            if line.startswith("DAG_RUN_STATE="):
                state = line.split("=", 1)[1].strip()
        if not state:
            raise AssertionError(f"the DAG run did not finish (exit {process.returncode}):\n{output[-6000:]}")
        return state, output


def signal_when(
    process: subprocess.Popen[str],
    ready: Callable[[], bool],
    sig: int,
    *,
    never: str,
    poll: float = 0.02,
    timeout: float = 120,
) -> None:
    """Send ``sig`` to a run started with :meth:`AirflowEnv.popen` as soon as ``ready()`` holds.

    The interruption tests stop a run at a chosen moment (extractions on the wire, an upload
    burst); if that moment never comes within ``timeout`` seconds, the run is killed and the
    test fails with ``never``.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            break
        time.sleep(poll)
    else:
        process.kill()
        pytest.fail(never)
    process.send_signal(sig)


def migrate(home: Path, dags: Path | None = None) -> AirflowEnv:
    """Migrate a SQLite metadata DB in ``home``; DAG files go to ``dags`` (default ``home/dags``)."""
    dags = dags or home / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    airflow_env = AirflowEnv(home=home, dags=dags)
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=airflow_env.env(),
        check=True,
        capture_output=True,
        timeout=300,
    )
    return airflow_env


def connection_json(emulator: Any, *, api_key: str | None = None, **extra: Any) -> str:
    """A ``delix`` connection for an emulator in the JSON env-var form (``AIRFLOW_CONN_<ID>``)."""
    password = emulator.api_key if api_key is None else api_key
    return json.dumps({"conn_type": "delix", "host": emulator.base_url, "password": password, "extra": extra})
