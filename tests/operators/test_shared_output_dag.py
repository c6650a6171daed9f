"""Runs that share one ``output_path``, and pages stranded by a server restart: ``dag.test()``.

* Two DAG runs over the same archive into the same table, started together (two dates of a
  daily DAG that were cleared at once): the writers *join* (``core/claims.py``), so the table
  holds one row per page and the emulator's charge ledger shows every page paid once.
* A server restart that loses the stored files twice while chunks sit between upload and
  extraction: those pages end ``failed/file_expired`` (never charged), the task still succeeds,
  and a re-run on the same output path finishes exactly them -- one row per page, each paid once.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from airflow_runner import AirflowEnv, connection_json
from archives import write_good_scans
from dag_templates import operator_dag
from emulator_checks import FAST_RETRIES, assert_charged_once

from airflow_provider_delix.core.table import read_table

pytestmark = pytest.mark.timeout(300)

GATE = """
import pathlib, time
pathlib.Path({ready!r}).touch()
while not pathlib.Path({go!r}).exists():  # the test starts both runs together
    time.sleep(0.02)
"""


def _copy(env: AirflowEnv, home: Path) -> AirflowEnv:
    """A second Airflow home with a copy of the migrated metadata DB (no second migration)."""
    (home / "dags").mkdir(parents=True)
    shutil.copyfile(env.home / "airflow.db", home / "airflow.db")
    return AirflowEnv(home=home, dags=home / "dags")


def _dag(
    env: AirflowEnv, dag_id: str, images: Path, output: Path, gate: tuple[Path, str] | None = None
) -> Path:
    source = operator_dag(
        dag_id,
        images=images,
        output_path=output,
        max_failed_ratio=None,
        max_stored_files=10,
        poll_interval=0.2,
        progress_interval=1,
    )
    if gate is not None:
        source += GATE.format(ready=str(gate[0] / f"ready-{gate[1]}"), go=str(gate[0] / "go"))
    return env.write_dag(dag_id, source)


def test_two_runs_on_one_output_at_once_pay_and_write_each_page_once(
    airflow_env: AirflowEnv, emulator_factory: Any, tmp_path: Path
) -> None:
    emulator = emulator_factory(latency_upload=0.05, latency_extract_base=0.5, latency_delete=0.01)
    truth = write_good_scans(tmp_path / "archive", 40)
    output = tmp_path / "table"
    conn = connection_json(emulator, **FAST_RETRIES)
    envs = [airflow_env, _copy(airflow_env, tmp_path / "home_b")]  # SQLite: one writer process each
    runs = [
        env.popen(
            _dag(env, f"ocr_shared_{day}", tmp_path / "archive", output, gate=(tmp_path, day)),
            AIRFLOW_CONN_DELIX_DEFAULT=conn,
        )
        for env, day in zip(envs, ("a", "b"), strict=True)
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready-{day}").exists() for day in ("a", "b")):  # both parsed their DAG
        assert time.monotonic() < deadline and all(run.poll() is None for run in runs), "a run did not start"
        time.sleep(0.05)
    (tmp_path / "go").touch()
    logs = [run.communicate(timeout=240)[0] for run in runs]
    for log in logs:
        assert "DAG_RUN_STATE=success" in log, log[-5000:]
    assert any("Other writers share this output path" in log for log in logs), "the runs never overlapped"

    table = read_table(str(output))
    assert len(table) == 40 and not table.duplicated(["source", "page_number"]).any()
    assert (table["status"] == "processed").all()
    assert dict(zip(table["source"], table["text"], strict=True)) == truth
    stats = emulator.stats()
    assert_charged_once(stats, 40)
    assert stats["files"]["count"] == 0
    assert int(table["credits_charged"].sum()) == stats["credits"]["charged"]


def _restart_twice(emulator: Any, done: threading.Event) -> None:
    """Once extractions are under way, lose every stored file twice, ~an extraction apart."""
    while not done.is_set() and not emulator.stats()["calls"].get("POST /image-extraction"):
        time.sleep(0.02)
    for pause in (0.2, 0.45, 0.45):
        time.sleep(pause)
        if not done.is_set():
            emulator.restart()


def test_a_restart_that_loses_files_twice_strands_pages_a_rerun_finishes(
    airflow_env: AirflowEnv, emulator_factory: Any, tmp_path: Path
) -> None:
    emulator = emulator_factory(latency_upload=0.1, latency_extract_base=0.6, latency_delete=0.01)
    truth = write_good_scans(tmp_path / "archive", 30)
    output = tmp_path / "table"
    dag_file = _dag(airflow_env, "ocr_restart", tmp_path / "archive", output)
    conn = connection_json(emulator, **FAST_RETRIES)

    done = threading.Event()
    restarts = threading.Thread(target=_restart_twice, args=(emulator, done))
    restarts.start()
    try:
        state, log = airflow_env.run(dag_file, AIRFLOW_CONN_DELIX_DEFAULT=conn)
    finally:
        done.set()
        restarts.join()
    assert state == "success", log[-5000:]
    first = read_table(str(output))
    stranded = first[(first["status"] == "failed") & (first["error"] == "file_expired")]
    assert len(stranded) > 0, f"no file was lost twice: {emulator.stats()['faults']}"
    assert (stranded["credits_charged"] == 0).all()

    state, log = airflow_env.run(dag_file, AIRFLOW_CONN_DELIX_DEFAULT=conn)
    assert state == "success", log[-5000:]
    table = read_table(str(output))
    assert len(table) == 30 and not table.duplicated(["source", "page_number"]).any()
    assert (table["status"] == "processed").all()
    assert dict(zip(table["source"], table["text"], strict=True)) == truth
    again = table[table["source"].isin(stranded["source"])]
    assert set(again["run_id"]) != set(first.loc[first["source"].isin(stranded["source"]), "run_id"])
    stats = emulator.stats()
    assert_charged_once(stats, 30)
    assert stats["files"]["count"] == 0
