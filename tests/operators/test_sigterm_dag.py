"""SIGTERM mid-run (what Airflow sends a task it stops), then a re-run: nothing paid twice, no file left.

On SIGTERM the operator stops sending, lets the requests already on the wire finish and
journals their answers, deletes what it uploaded, and exits; the re-run sends only the pages
without a row.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from airflow_runner import AirflowEnv, connection_json, signal_when
from archives import write_good_scans
from dag_templates import write_operator_dag
from emulator_checks import FAST_RETRIES, assert_charged_once

from airflow_provider_delix.core.table import read_table

pytestmark = pytest.mark.timeout(600)


def test_sigterm_mid_run_then_a_rerun_pays_nothing_twice_and_leaves_no_file(
    airflow_env: AirflowEnv, emulator_factory: Any, tmp_path: Path
) -> None:
    emulator = emulator_factory(latency_upload=0.1, latency_extract_base=0.3, latency_extract_page=0.05)
    truth = write_good_scans(tmp_path / "archive", 60)
    output = tmp_path / "table"
    dag_file = write_operator_dag(
        airflow_env,
        "ocr_term",
        images=tmp_path / "archive",
        output_path=output,
        max_stored_files=30,
        progress_interval=1,
    )
    conn = connection_json(emulator, **FAST_RETRIES)

    def extracting() -> bool:  # stop it while extractions are on the wire
        stats = emulator.stats()
        return stats["calls"].get("POST /image-extraction", 0) >= 5 and stats["files"]["count"] >= 10

    process = airflow_env.popen(dag_file, AIRFLOW_CONN_DELIX_DEFAULT=conn)
    signal_when(process, extracting, signal.SIGTERM, never="the run never got going")
    out, _ = process.communicate(timeout=120)
    stats = emulator.stats()
    assert stats["files"]["count"] == 0, f"a stopped task deletes what it uploaded:\n{out[-4000:]}"
    charged_before = len(stats["charges"])
    assert 0 < charged_before < 60

    state, log = airflow_env.run(dag_file, AIRFLOW_CONN_DELIX_DEFAULT=conn)
    assert state == "success", log[-5000:]
    table = read_table(str(output))
    assert len(table) == 60 and not table.duplicated(["source", "page_number"]).any()
    assert dict(zip(table["source"], table["text"], strict=True)) == truth
    stats = emulator.stats()
    assert_charged_once(stats, 60)
    assert stats["files"]["count"] == 0
