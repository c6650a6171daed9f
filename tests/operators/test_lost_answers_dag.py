"""Answers lost after Delix applied the request: ``dag.test()`` against the emulator's charge ledger.

Two ways an extraction is charged and its answer never arrives:

* the server is slower than the client's ``extraction_timeout`` (every send times out);
* the answer is lost on the way back after the extraction was charged (a dropped connection,
  a gateway's 502 or 504), for 10 % of the uploads and extractions of 300 images.

Either way a paid request is sent at most twice, the table's credits equal the ledger's, the
manifest's ``credits_at_risk`` is what the lost sends cost, and every page has one row.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from airflow_runner import AirflowEnv, connection_json
from archives import write_good_scans
from emulator_checks import FAST_RETRIES

from airflow_provider_delix.core.table import read_table

pytestmark = pytest.mark.timeout(600)

DAG = """
import json
import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow.providers.common.compat.standard.operators import PythonOperator
from airflow_provider_delix.operators.image_extraction import ImageExtractionOperator


def _show(ti):
    manifest = ti.xcom_pull(task_ids="ocr") or ti.xcom_pull(task_ids="ocr", key="manifest")
    print("MANIFEST=" + json.dumps(manifest))


with DAG({name!r}, schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False) as dag:
    ocr = ImageExtractionOperator(
        task_id="ocr",
        images={images!r},
        output_path={output!r},
        max_stored_files=10,
        progress_interval=1,
        retries=0,
    )
    ocr >> PythonOperator(task_id="show", python_callable=_show, trigger_rule="all_done")
"""


def _run(airflow_env: AirflowEnv, name: str, emulator: Any, tmp_path: Path, count: int, **extra: Any) -> Any:
    archive = tmp_path / "archive"
    truth = write_good_scans(archive, count)
    output = tmp_path / "table"
    dag_file = airflow_env.write_dag(name, DAG.format(name=name, images=str(archive), output=str(output)))
    _state, log = airflow_env.run(
        dag_file, AIRFLOW_CONN_DELIX_DEFAULT=connection_json(emulator, **FAST_RETRIES, **extra)
    )
    match = re.search(r"MANIFEST=(\{.*\})", log)
    assert match, log[-5000:]
    return truth, read_table(str(output)), json.loads(match.group(1)), log


def test_an_extraction_slower_than_the_timeout_is_paid_at_most_twice_and_reported(
    airflow_env: AirflowEnv, emulator_factory: Any, tmp_path: Path
) -> None:
    emulator = emulator_factory(latency_extract_answer=2.5)
    truth, table, manifest, log = _run(
        airflow_env, "ocr_slow_answers", emulator, tmp_path, 12, extraction_timeout=1
    )
    stats = emulator.stats()
    # Each extraction was sent twice (never a third time), and both sends were charged.
    assert set(stats["charges"].values()) == {2} and len(stats["charges"]) == 12
    assert stats["calls"]["POST /image-extraction"] == 2 * manifest["requests"]["extract_images"]

    # No answer ever came: one failed answer_lost row per image, carrying both sends.
    assert len(table) == 12 and set(table["source"]) == set(truth)
    assert (table["status"] == "failed").all() and (table["error"] == "answer_lost").all()
    assert int(table["credits_charged"].sum()) == stats["credits"]["charged"] == 12 * 2 * 200
    # Every credit charged is at risk: Delix charged them only because it applied the lost sends.
    assert manifest["credits_at_risk"] == stats["credits"]["charged"]
    assert manifest["requests_in_doubt"] == stats["calls"]["POST /image-extraction"]
    assert manifest["counts"]["failed"] == 12 and manifest["pages_left"] == 0
    # All pages failed: over max_failed_ratio, so the task fails with its rows written.
    assert "were not processed" in log and "max_failed_ratio" in log
    assert "re-sending once, the first may have been charged" in log
    assert re.search(r"credits \d+ charged / 0 refunded / \d+ at risk", log), "the progress line says it"
    assert "(credits_at_risk)" in log
    assert stats["files"]["count"] == 0, "the files are deleted once their extraction has answered"


def test_ten_percent_of_answers_lost_after_apply_on_uploads_and_extractions(
    airflow_env: AirflowEnv, emulator_factory: Any, tmp_path: Path
) -> None:
    # Issue 11's must-show: 300 images, 10 % of the answers to applied uploads (files stored) and
    # extractions (charged) lost on the way back (dropped, or a gateway's 502/504).
    emulator = emulator_factory(rate_lost_after_apply=0.1, lost_after_apply_on="upload,extraction", seed=7)
    truth, table, manifest, log = _run(airflow_env, "ocr_lost_answers", emulator, tmp_path, 300)
    stats = emulator.stats()
    by_status = stats["calls_by_status"]

    def lost_on(endpoint: str) -> int:
        return sum(
            n for status, n in by_status.get(endpoint, {}).items() if status in ("dropped", "502", "504")
        )

    lost_uploads, lost_extractions = lost_on("POST /files"), lost_on("POST /image-extraction")
    assert lost_uploads > 0 and lost_extractions > 0, "answers must actually have been lost"

    # The run completes with one row per page, and leaves nothing on the account: the copies
    # stored by uploads whose answer was lost are claimed by no task and swept.
    assert len(table) == 300 and not table.duplicated(["source", "page_number"]).any()
    assert stats["files"]["count"] == 0
    assert manifest["orphans_deleted"] >= 1

    # A page is paid at most twice; the extra charges are exactly the lost extraction answers
    # (one per page of a request answered on its re-send), all reported.
    assert max(stats["charges"].values()) <= 2 and len(stats["charges"]) == 300
    extra = sum(stats["charges"].values()) - 300
    assert extra > 0
    assert manifest["requests_in_doubt"] == lost_extractions
    assert int(table["credits_charged"].sum()) == stats["credits"]["charged"] == manifest["credits_charged"]

    read = table[table["status"] == "processed"]
    assert dict(zip(read["source"], read["text"], strict=True)) == {s: truth[s] for s in read["source"]}
    failed = table[table["status"] != "processed"]
    assert (failed["error"] == "answer_lost").all(), "only a request lost twice leaves pages unread"
    assert (failed["credits_charged"] == 400).all()
    # A request lost twice has no answered send, so both of its charges are at risk.
    assert manifest["credits_at_risk"] == 200 * (extra + len(failed))
    assert "(requests_in_doubt)" in log
