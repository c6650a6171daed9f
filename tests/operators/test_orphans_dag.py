"""No orphans, end to end through ``airflow dags test`` against the emulator (``docs/cleanup.md``).

* Upload answers lost after the server stored the files (every third ``POST /files``): the
  hook's retry stores a second copy, the run never learns the first copy's uuids, and without
  the key registry those files would stay on the account for 24 h. The run completes, every
  page is charged once, and **0 files** are left.
* A run SIGKILL'd during an upload burst (uploads slow, so several are on the wire): the
  files it had stored, claimed or not yet answered, are all deleted by the next run: **0 files**.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest
from airflow_runner import AirflowEnv, connection_json, signal_when
from archives import write_good_scans
from dag_templates import write_operator_dag
from emulator_checks import FAST_RETRIES, assert_charged_once

from airflow_provider_delix.core.table import read_table

pytestmark = pytest.mark.timeout(600)


def _dag(env: AirflowEnv, dag_id: str, images: Path, output: Path) -> Path:
    return write_operator_dag(
        env, dag_id, images=images, output_path=output, max_failed_ratio=None, progress_interval=1
    )


def test_lost_upload_answers_leave_no_file_on_the_account(
    airflow_env: AirflowEnv, emulator_factory: Any, tmp_path: Path
) -> None:
    emulator = emulator_factory(latency_upload=0.02, latency_delete=0.01)
    emulator.lose_answers(every=3)
    truth = write_good_scans(tmp_path / "archive", 60)
    output = tmp_path / "table"
    dag_file = _dag(airflow_env, "ocr_lost_uploads", tmp_path / "archive", output)

    # An upload is re-sent at most once after a lost answer (each send may have stored its
    # files), and a chunk whose call lost both answers is sent again, at most 3 calls: with a
    # third of the answers lost, a chunk may still lose all six and leave its pages to the
    # next try, as Airflow's retries would run it. Nothing may be left on the account either way.
    for _attempt in range(3):
        state, log = airflow_env.run(
            dag_file, AIRFLOW_CONN_DELIX_DEFAULT=connection_json(emulator, **FAST_RETRIES)
        )
        if state == "success":
            break
        assert "got no row" in log and "re-run the task" in log, log[-5000:]
        assert emulator.stats()["files"]["count"] == 0, "a failed try left files on the account"
    assert state == "success", log[-5000:]
    stats = emulator.stats()
    lost = stats["faults"]["lost_after_apply_drop"]
    assert lost >= 4, "answers must really have been lost after the files were stored"
    table = read_table(str(output))
    assert len(table) == 60 and not table.duplicated(["source", "page_number"]).any()
    assert dict(zip(table["source"], table["text"], strict=True)) == truth
    assert_charged_once(stats, 60)
    assert stats["files"]["count"] == 0, "the copies of the lost answers were swept"
    assert stats["calls"]["GET /files"] >= 2  # the start and end sweeps at least


def test_a_rerun_after_a_sigkill_during_an_upload_burst_leaves_no_file(
    airflow_env: AirflowEnv, emulator_factory: Any, tmp_path: Path
) -> None:
    emulator = emulator_factory(latency_upload=0.5)
    truth = write_good_scans(tmp_path / "archive", 60)
    output = tmp_path / "table"
    dag_file = _dag(airflow_env, "ocr_kill_uploads", tmp_path / "archive", output)
    conn = connection_json(emulator, **FAST_RETRIES)

    def upload_burst() -> bool:  # files stored and uploads still on the wire
        stats = emulator.stats()
        return stats["files"]["count"] >= 10 and stats["calls"].get("POST /files", 0) >= 4

    process = airflow_env.popen(dag_file, AIRFLOW_CONN_DELIX_DEFAULT=conn)
    signal_when(process, upload_burst, signal.SIGKILL, never="the run never reached an upload burst")
    process.wait(timeout=30)
    time.sleep(0.6)  # the uploads on the wire at the kill finish on the server
    left = emulator.stats()["files"]["count"]
    assert left >= 10, "the killed run must have left files behind"

    state, log = airflow_env.run(dag_file, AIRFLOW_CONN_DELIX_DEFAULT=conn)
    assert state == "success", log[-5000:]
    table = read_table(str(output))
    assert len(table) == 60 and not table.duplicated(["source", "page_number"]).any()
    assert dict(zip(table["source"], table["text"], strict=True)) == truth
    stats = emulator.stats()
    assert stats["files"]["count"] == 0, "the re-run deleted everything the killed run left"
    assert all(n <= 2 for n in stats["charges"].values())
