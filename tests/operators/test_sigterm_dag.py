"""SIGTERM mid-run (what Airflow sends a task it stops), then a re-run: nothing paid twice, no file left.

On SIGTERM the operator stops sending, lets the requests already on the wire finish and
journals their answers, deletes what it uploaded, and exits; the re-run sends only the pages
without a row.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest
from airflow_runner import AirflowEnv, connection_json
from archives import write_good_scans
from emulator_checks import FAST_RETRIES, assert_charged_once

from airflow_provider_delix.core.table import read_table

pytestmark = pytest.mark.timeout(600)

DAG = """
import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_delix.operators.image_extraction import ImageExtractionOperator

with DAG("ocr_term", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False) as dag:
    ImageExtractionOperator(
        task_id="ocr",
        images={images!r},
        output_path={output!r},
        max_stored_files=30,
        progress_interval=1,
        retries=0,
    )
"""


def test_sigterm_mid_run_then_a_rerun_pays_nothing_twice_and_leaves_no_file(
    airflow_env: AirflowEnv, emulator_factory: Any, tmp_path: Path
) -> None:
    emulator = emulator_factory(latency_upload=0.1, latency_extract_base=0.3, latency_extract_page=0.05)
    truth = write_good_scans(tmp_path / "archive", 60)
    output = tmp_path / "table"
    dag_file = airflow_env.write_dag(
        "ocr_term", DAG.format(images=str(tmp_path / "archive"), output=str(output))
    )
    conn = connection_json(emulator, **FAST_RETRIES)

    process = airflow_env.popen(dag_file, AIRFLOW_CONN_DELIX_DEFAULT=conn)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # stop it while extractions are on the wire
        stats = emulator.stats()
        if stats["calls"].get("POST /image-extraction", 0) >= 5 and stats["files"]["count"] >= 10:
            break
        time.sleep(0.02)
    else:
        process.kill()
        pytest.fail("the run never got going")
    process.send_signal(signal.SIGTERM)
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
