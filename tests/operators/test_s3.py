"""Both operators on a real S3-compatible server (SeaweedFS), credentials from Airflow connections.

DAG runs through ``dag.test()`` in a subprocess against the emulator, as users run them: scans
read from a bucket and the table written to one through ``storage_conn_id``, killed with SIGKILL
mid-run, then a re-run that loses nothing and pays nothing twice; and one DAG with
``ObjectStoragePath("s3://conn_id@bucket/...")`` objects for the document operator's PDFs and
table beside an image task whose ``storage_options`` are rendered from the connection, run
twice (the second run sends nothing) -- with the secret in no log line, no XCom, no
metadata-DB row and no file in the bucket. Few DAG runs: each costs seconds of Airflow start-up.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from airflow_runner import AirflowEnv, connection_json
from archives import write_good_scans
from documents import page_text
from emulator_checks import FAST_RETRIES, assert_charged_once
from pdfs import make_pdf
from s3_server import S3Server

pytestmark = pytest.mark.timeout(300)

CONN_ID = "s3_test"

IMAGES_DAG = """
import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_delix.operators.image_extraction import ImageExtractionOperator

with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False) as dag:
    ImageExtractionOperator(
        task_id="ocr",
        images="s3://scans/{prefix}/",
        output_path="s3://tables/{prefix}",
        storage_conn_id="{conn_id}",
        max_failed_ratio=None,
        max_stored_files=5,
        max_concurrency=1,
        progress_interval=1,
        retries=0,
    )
"""

MIXED_DAG = """
import pendulum
from airflow.providers.common.compat.sdk import DAG, ObjectStoragePath
from airflow_provider_delix.operators.document_extraction import DocumentExtractionOperator
from airflow_provider_delix.operators.image_extraction import ImageExtractionOperator

with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False) as dag:
    DocumentExtractionOperator(
        task_id="pdfs",
        documents=ObjectStoragePath("s3://{conn_id}@scans/{prefix}/pdfs/"),
        output_path=ObjectStoragePath("s3://{conn_id}@tables/{prefix}/pdf_table"),
        engine="danlin",
        poll_interval=0.2,
        max_failed_ratio=None,
        retries=0,
    )
    ImageExtractionOperator(
        task_id="scans",
        images=["s3://scans/{prefix}/scans/"],
        output_path="s3://tables/{prefix}/{{{{ dag.dag_id }}}}",
        storage_options={{
            "key": "{{{{ conn.{conn_id}.login }}}}",
            "secret": "{{{{ conn.{conn_id}.password }}}}",
            "client_kwargs": {{
                "endpoint_url": "{{{{ conn.{conn_id}.extra_dejson.endpoint_url }}}}",
                "region_name": "us-east-1",
            }},
        }},
        max_failed_ratio=None,
        retries=0,
    )
"""


def _upload_scans(server: S3Server, tmp_path: Path, prefix: str, count: int) -> dict[str, str]:
    """PNGs with known text into ``s3://scans/<prefix>/``; returns {s3 uri: text}."""
    local = write_good_scans(tmp_path / prefix, count)
    server.filesystem().put([*local], f"scans/{prefix}/")
    return {f"s3://scans/{prefix}/{Path(path).name}": text for path, text in local.items()}


def _table(server: S3Server, path: str) -> pd.DataFrame:
    """The table read back as any consumer would: pandas + pyarrow over s3fs."""
    return pd.read_parquet(f"s3://{path}", storage_options=server.storage_options())


def _env(server: S3Server, emulator: Any) -> dict[str, str]:
    return {
        "AIRFLOW_CONN_DELIX_DEFAULT": connection_json(emulator, **FAST_RETRIES),
        f"AIRFLOW_CONN_{CONN_ID.upper()}": server.connection_json(),
    }


def _texts(table: pd.DataFrame) -> dict[str, str]:
    assert not table.duplicated(["source", "page_number"]).any()
    return dict(zip(table["source"], table["text"], strict=True))


def test_sigkill_mid_run_then_rerun_loses_nothing_and_pays_nothing_twice(
    airflow_env: AirflowEnv, emulator_factory: Any, s3_server: S3Server, tmp_path: Path
) -> None:
    emulator = emulator_factory(latency_extract_page=0.1)
    truth = _upload_scans(s3_server, tmp_path, "kill", 25)
    dag_file = airflow_env.write_dag(
        "s3_kill", IMAGES_DAG.format(dag_id="s3_kill", prefix="kill", conn_id=CONN_ID)
    )
    env = _env(s3_server, emulator)
    process = airflow_env.popen(dag_file, **env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # after a few chunks, while one extraction is in flight
        stats = emulator.stats()
        if stats["calls"].get("POST /image-extraction", 0) >= 3 and stats["extracts"]["processing"] >= 1:
            break
        time.sleep(0.02)
    else:
        process.kill()
        pytest.fail("the run never reached its third extraction")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert 0 < sum(emulator.stats()["charges"].values()) < len(truth)

    state, log = airflow_env.run(dag_file, **env)
    assert state == "success", log[-6000:]
    assert _texts(_table(s3_server, "tables/kill")) == truth, "every page once, none lost"
    stats = emulator.stats()
    assert len(stats["charges"]) == len(truth)
    twice = sum(n - 1 for n in stats["charges"].values())
    in_doubt = _pages_in_doubt(log)
    assert twice <= in_doubt, f"{twice} page(s) paid twice, {in_doubt} reported in doubt"
    # Uploads on the wire at the kill may have stored files whose uuids never came back: the
    # re-run deletes every file it knows of and reports those it cannot know.
    assert stats["files"]["count"] <= _files_in_doubt(log), "the re-run deletes what the killed attempt left"
    left = s3_server.filesystem().find("tables/kill/_delix_state")  # SeaweedFS keeps empty folders
    assert not [p for p in left if p.endswith(".arrow")], "the killed attempt's journals were adopted"


def _pages_in_doubt(log: str) -> int:
    """Pages the re-run reports as sent without an answer by the killed attempt (0 if none)."""
    match = re.search(r"Unsettled requests: .*?; (\d+) page\(s\) were sent without a usable answer", log)
    return int(match.group(1)) if match else 0


def _files_in_doubt(log: str) -> int:
    """Files the killed attempt was uploading when it died, as the re-run reports them (0 if none)."""
    match = re.search(
        r"Unsettled requests: .*?; (\d+) file\(s\) were uploaded without Delix naming them", log
    )
    return int(match.group(1)) if match else 0


def test_object_storage_paths_and_templated_options_then_a_rerun_sends_nothing(
    airflow_env: AirflowEnv, emulator: Any, s3_server: S3Server, tmp_path: Path
) -> None:
    fs = s3_server.filesystem()
    pdf_truth = {}
    for name, pages in (("one", 1), ("four", 4), ("nine", 9)):  # nine pages: a queued extract
        texts = [page_text(name, n) for n in range(1, pages + 1)]
        fs.pipe_file(f"scans/mixed/pdfs/{name}.pdf", make_pdf(texts))
        pdf_truth.update({(f"s3://scans/mixed/pdfs/{name}.pdf", n): t for n, t in enumerate(texts, 1)})
    scan_truth = _upload_scans(s3_server, tmp_path, "mixed/scans", 6)
    dag_file = airflow_env.write_dag(
        "s3_mixed", MIXED_DAG.format(dag_id="s3_mixed", prefix="mixed", conn_id=CONN_ID)
    )
    state, log = airflow_env.run(dag_file, **_env(s3_server, emulator))
    assert state == "success", log[-6000:]

    pdfs = _table(s3_server, "tables/mixed/pdf_table")
    assert not pdfs.duplicated(["source", "page_number"]).any()
    got = {(s, int(p)): t for s, p, t in zip(pdfs["source"], pdfs["page_number"], pdfs["text"], strict=True)}
    assert got == pdf_truth, "sources name the bucket, not the connection"
    scans = _table(s3_server, "tables/mixed/s3_mixed")  # the output_path template, rendered
    assert _texts(scans) == scan_truth, "storage_options rendered from the connection"
    assert_charged_once(emulator.stats(), len(pdf_truth) + len(scan_truth))
    assert emulator.stats()["files"]["count"] == 0

    calls = dict(emulator.stats()["calls"])
    state, rerun_log = airflow_env.run(dag_file, **_env(s3_server, emulator))
    assert state == "success", rerun_log[-6000:]
    assert emulator.stats()["calls"] == calls, "a re-run over the same buckets sends nothing"
    assert len(_table(s3_server, "tables/mixed/pdf_table")) == len(pdf_truth)
    log += rerun_log

    secret = s3_server.secret_key
    assert secret not in log, "the rendered secret is never logged"
    assert secret.encode() not in (airflow_env.home / "airflow.db").read_bytes(), "nor in XCom or RTIF"
    for path in fs.find("tables/mixed"):  # parts and whatever state is left
        assert secret.encode() not in fs.cat_file(path), f"nor in {path}"
