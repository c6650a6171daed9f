"""ImageExtractionOperator(packing="pdf") end to end: ``dag.test()`` against the emulator.

JPEG scans carry their ground truth in a comment; a packed JPEG page reads in the emulator as
the JPEG it embeds, so the table must hold each scan's own text. Faults are on, bad inputs sit
in the same archive, and the run is checked against the emulator's charge ledger: every page
paid once, at the PDF price, and nothing left on the account. A re-run sends nothing.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from airflow_runner import AirflowEnv, connection_json
from archives import write_bad_inputs
from dag_templates import write_operator_dag
from emulator_checks import FAST_RETRIES, assert_charged_once
from PIL import Image, ImageDraw

from airflow_provider_delix.core.table import read_table

pytestmark = pytest.mark.timeout(600)


def write_jpeg_scans(folder: Path, count: int) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for i in range(count):
        text = f"برگه شماره {i}" if i % 2 else f"archive page {i}"
        image = Image.new("L", (200, 80), 255)
        ImageDraw.Draw(image).text((6, 30), f"page {i}", fill=0)
        buf = io.BytesIO()
        image.save(buf, "JPEG", comment=f"delix:text={text}".encode())
        path = folder / f"scan-{i:03d}.jpg"
        path.write_bytes(buf.getvalue())
        truth[str(path)] = text
    return truth


def test_packed_images_get_their_own_rows_through_faults_and_a_rerun_pays_nothing(
    airflow_env: AirflowEnv, emulator_factory: Any, tmp_path: Path
) -> None:
    emulator = emulator_factory(
        rate_429=0.03, rate_500=0.03, rate_503=0.03, retry_after=0, seed=5, async_workers=8
    )
    truth = write_jpeg_scans(tmp_path / "archive", 48)
    bad = write_bad_inputs(tmp_path / "archive" / "bad")
    output = tmp_path / "table"
    dag_file = write_operator_dag(
        airflow_env,
        "ocr_packed",
        images=tmp_path / "archive",
        output_path=output,
        packing="pdf",
        poll_interval=0.2,
        max_failed_ratio=None,
        max_stored_files=8,
        progress_interval=1,
    )
    conn = connection_json(emulator, **FAST_RETRIES)

    state, log = airflow_env.run(dag_file, AIRFLOW_CONN_DELIX_DEFAULT=conn)
    assert state == "success", log[-5000:]
    stats = emulator.stats()
    assert sum(stats["faults"].values()) > 0, "faults must actually have been injected"
    # 48 scans over 8 files: packs of 6; the good pages of the bad inputs pack too.
    assert stats["calls"].get("POST /document-extraction", 0) >= 8
    assert stats["calls"].get("POST /image-extraction", 0) <= 2  # at most a lone leftover or two

    table = read_table(str(output))
    assert not table.duplicated(["source", "page_number"]).any()
    scans = table[table["source"].isin(truth)]
    assert len(scans) == 48 and (scans["status"] == "processed").all()
    assert dict(zip(scans["source"], scans["text"], strict=True)) == truth
    assert scans["file_uuid"].nunique() <= 10, "packed rows name their pack"
    by_name = {Path(s).name: grp for s, grp in table.groupby("source")}
    for name in ("corrupt.png", "empty.png", "notes.txt"):
        (row,) = by_name[name].itertuples()
        assert f"invalid:{row.error}" == bad[name]
    assert list(by_name["multi.tiff"].sort_values("page_number")["status"]) == ["processed"] * 3

    processed = int((table["status"] == "processed").sum())
    assert_charged_once(stats, processed)
    assert int(table["credits_charged"].sum()) == stats["credits"]["charged"]
    assert stats["files"]["count"] == 0 and 0 < stats["files"]["max_count"] <= 8

    state, log = airflow_env.run(dag_file, AIRFLOW_CONN_DELIX_DEFAULT=conn)
    assert state == "success", log[-5000:]
    assert emulator.stats()["credits"]["charged"] == stats["credits"]["charged"], "a re-run pays nothing"
    assert len(read_table(str(output))) == len(table)


DEFERRED_DAG = """
import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_delix.operators.image_extraction import ImageExtractionOperator

with DAG("ocr_packed_deferred", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
    ImageExtractionOperator(
        task_id="ocr",
        images={images!r},
        output_path={output!r},
        packing="pdf",
        deferrable=True,
        poll_interval=0.2,
        max_failed_ratio=None,
        progress_interval=1,
        retries=0,
    )
"""


def test_a_deferrable_packed_run_waits_in_the_triggerer_then_writes_one_row_per_image(
    airflow_env: AirflowEnv, emulator_factory: Any, tmp_path: Path
) -> None:
    emulator = emulator_factory(queue_delay=2.0, async_workers=8)  # packs stay queued: the task defers
    truth = write_jpeg_scans(tmp_path / "archive", 36)
    output = tmp_path / "table"
    dag_file = airflow_env.write_dag(
        "ocr_packed_deferred", DEFERRED_DAG.format(images=str(tmp_path / "archive"), output=str(output))
    )
    state, log = airflow_env.run(
        dag_file, AIRFLOW_CONN_DELIX_DEFAULT=connection_json(emulator, **FAST_RETRIES)
    )
    assert state == "success", log[-6000:]
    # dag.test() runs the trigger in line only for a task instance that ended in DEFERRED.
    assert "deferring until they finish" in log and "running trigger in line" in log, log[-6000:]
    table = read_table(str(output))
    assert len(table) == 36 and not table.duplicated(["source", "page_number"]).any()
    assert dict(zip(table["source"], table["text"], strict=True)) == truth
    stats = emulator.stats()
    assert stats["calls"].get("POST /image-extraction", 0) == 0
    assert_charged_once(stats, 36)
    assert int(table["credits_charged"].sum()) == stats["credits"]["charged"]
    assert stats["files"]["count"] == 0
