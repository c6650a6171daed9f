"""The example DAGs under Airflow: the ETL end to end against the emulator, and the Asset link.

The ETL runs in a subprocess (``python dags/delix_scanned_archive_etl.py``, i.e. ``dag.test()``)
over the repo's sample archive, with the ``groundtruth`` emulator so texts can be compared
exactly, then again for the same date (resume + replace), then once more into PostgreSQL.
"""

from __future__ import annotations

import importlib
import json
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
from dag_runner import DAGS, AirflowEnv
from delix_etl import config

from airflow_provider_delix.core.table import read_table
from airflow_provider_delix.emulator.testing import InProcessEmulator, run_emulator

DATE = "2025-03-01"
FAST_POLL = json.dumps({"poll_interval": 1})  # a local emulator: no need to wait the vendor's minute
# The archive: 30 scans + 3 TIFF pages + the oversize scan + the damaged file (35 image rows),
# and four PDFs (3 + 12 + 160 + 2 pages), one row per page.
PDF_PAGES = {"fa/fa_notice_3_pages.pdf": 3, "en/en_minutes_12_pages.pdf": 12,
             "fa/fa_letters_register_160_pages.pdf": 160, "en/en_newsletter_text_2_pages.pdf": 2}  # fmt: skip
ROWS = 35 + sum(PDF_PAGES.values())
CREDITS = 34 * 200 + sum(PDF_PAGES.values()) * 100
TRUTH: dict[str, Any] = json.loads((config.SAMPLE_ARCHIVE / "_ground_truth.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def emulator_mod() -> Iterator[InProcessEmulator]:
    with run_emulator(ocr="groundtruth") as emu:
        yield emu


@pytest.fixture(scope="module")
def etl(
    airflow_env: AirflowEnv, emulator_mod: InProcessEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """Run the ETL twice for DATE; keep both outputs and the emulator's stats after each."""
    data = tmp_path_factory.mktemp("delix_data")
    conn = {"conn_type": "delix", "host": emulator_mod.base_url, "password": emulator_mod.api_key}
    env = {"DELIX_DATA_DIR": str(data), "AIRFLOW_CONN_DELIX_DEFAULT": json.dumps(conn)}
    first = airflow_env.run_dag("delix_scanned_archive_etl.py", "--date", DATE, "--conf", FAST_POLL, **env)
    stats_first = emulator_mod.stats()
    second = airflow_env.run_dag("delix_scanned_archive_etl.py", "--date", DATE, "--conf", FAST_POLL, **env)
    return {"data": data, "env": env, "logs": (first, second), "stats": (stats_first, emulator_mod.stats())}


def _warehouse_count(data: Path) -> int:
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        found = con.execute("SELECT count(*) FROM ocr_pages WHERE logical_date = ?", [DATE]).fetchone()
    return int(found[0]) if found else -1


def test_etl_loads_every_page_with_ground_truth_text(etl: dict[str, Any]) -> None:
    table = read_table(config.table_path(str(etl["data"]), DATE))
    assert len(table) == ROWS
    assert not table.duplicated(["source", "page_number"]).any()
    assert _warehouse_count(etl["data"]) == len(table)
    names = table["source"].map(lambda s: Path(s).relative_to(config.SAMPLE_ARCHIVE).as_posix())
    pdfs = table[names.str.endswith(".pdf")]
    for name, pages in PDF_PAGES.items():
        rows = pdfs[names[pdfs.index] == name].sort_values("page_number")
        assert list(rows["page_number"]) == list(range(1, pages + 1)), name
        assert set(rows["status"]) == {"processed"}, name
        assert set(rows["language"]) == {name.split("/")[0]}, name
        # engine="auto": the born-digital newsletter is read from its text layer, scans are OCRed.
        assert set(rows["engine"]) == ({"probe"} if "text" in name else {"danlin"}), name
    newsletter = pdfs[names[pdfs.index] == "en/en_newsletter_text_2_pages.pdf"].sort_values("page_number")
    assert list(newsletter["text"]) == TRUTH["en/en_newsletter_text_2_pages.pdf"]
    images = table[~names.str.endswith(".pdf")]
    assert len(images) == 35
    by_source = {Path(s).relative_to(config.SAMPLE_ARCHIVE).as_posix(): row for s, row in
                 zip(images["source"], images.itertuples(), strict=True)}  # fmt: skip
    damaged = by_source.pop("en/en_damaged_scan.png")
    assert (damaged.status, damaged.error, damaged.language) == ("invalid", "corrupt_image", "en")
    assert (images["status"] == "processed").sum() == 34
    tiff = images[images["source"].str.endswith(".tif")]
    assert sorted(tiff["page_number"]) == [1, 2, 3]
    assert set(tiff["normalization"]) == {"tiff_page->png"}
    assert by_source["fa/fa_oversize_scan.png"].normalization  # shrunk under 2 MB, then OCRed
    plain = {name: row for name, row in by_source.items() if pd.isna(row.normalization)}
    assert len(plain) == 30
    for name, row in plain.items():
        assert row.text == TRUTH[name], name
        assert row.language == name.split("/")[0]


def test_rerun_same_date_costs_nothing_and_keeps_row_count(etl: dict[str, Any]) -> None:
    before, after = etl["stats"]
    assert before["credits"]["charged"] == CREDITS and set(before["charges"].values()) == {1}
    assert len(before["charges"]) == ROWS - 1  # every page but the damaged file's, once
    assert after["credits"] == before["credits"]
    assert after["calls"].get("POST /files") == before["calls"].get("POST /files")
    assert _warehouse_count(etl["data"]) == ROWS
    first, second = etl["logs"]
    assert f"this run: {CREDITS} credits, 0 of {ROWS} pages resumed" in first
    assert f"this run: 0 credits, {ROWS} of {ROWS} pages resumed" in second
    for log in (first, second):
        assert f"pages: {ROWS} (invalid 1, processed {ROWS - 1})" in log
        assert "pdf: 177 pages in 4 file(s) (danlin 175, probe 2)" in log
        assert "invalid: " in log and "en_damaged_scan.png (1 page(s)): corrupt_image" in log
        assert "text [fa]:" in log and "slowest step: ocr[" in log


def test_load_emits_the_table_asset_once_per_run(airflow_env: AirflowEnv, etl: dict[str, Any]) -> None:
    """The downstream DAG is triggered once per ETL run, after every language is loaded: only
    ``load`` (which runs after all OCR tasks) has the table's Asset as outlet, never a per-date
    path and never the mapped OCR tasks (one event each, the first racing the other languages)."""
    db = sqlite3.connect(airflow_env.home / "airflow.db")
    names = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "asset_event" not in names:
        db.close()
        pytest.skip("Airflow 2's dag.test() does not write the DAG to the DB, so the Dataset has no row and "
                    "no event is recorded (the outlet itself is checked at parse time)")  # fmt: skip
    rows = db.execute(
        "SELECT a.uri, e.source_task_id, e.source_run_id FROM asset_event e "
        "JOIN asset a ON a.id = e.asset_id WHERE e.source_dag_id = 'delix_scanned_archive_etl'"
    ).fetchall()
    db.close()
    assert {uri for uri, _, _ in rows} == {f"file://{etl['data'].resolve()}/ocr_pages"}
    assert {task for _, task, _ in rows} == {"load"}
    runs = [run for _, _, run in rows]
    assert len(runs) == len(set(runs)) >= 2, "one event per ETL run (two runs so far)"


def test_etl_into_postgres(airflow_env: AirflowEnv, etl: dict[str, Any], postgres: dict[str, Any]) -> None:
    import psycopg2

    uri = f"postgresql://{postgres['user']}@{postgres['host']}:{postgres['port']}/{postgres['dbname']}"
    conf = json.dumps({"warehouse": "postgres", "postgres_conn_id": "delix_pg", "poll_interval": 1})
    log = airflow_env.run_dag("delix_scanned_archive_etl.py", "--date", DATE, "--conf", conf,
                              AIRFLOW_CONN_DELIX_PG=uri, **etl["env"])  # fmt: skip
    assert f"pages: {ROWS} (invalid 1, processed {ROWS - 1})" in log
    with psycopg2.connect(**postgres) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*), count(DISTINCT language) FROM ocr_pages WHERE logical_date = %s",
                    [DATE])  # fmt: skip
        assert cur.fetchone() == (ROWS, 2)


def _load_dag(module: str, monkeypatch: pytest.MonkeyPatch, data: Path) -> Any:
    monkeypatch.setenv("DELIX_DATA_DIR", str(data))
    monkeypatch.syspath_prepend(str(DAGS))
    sys.modules.pop(module, None)
    return importlib.import_module(module).dag


def _uris(assets: Any) -> set[str]:
    return {str(a.uri) for a in assets}


def test_downstream_dag_is_scheduled_on_the_etl_outlet(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    etl_dag = _load_dag("delix_scanned_archive_etl", monkeypatch, tmp_path)
    downstream = _load_dag("delix_downstream_report", monkeypatch, tmp_path)
    expected = {f"file://{tmp_path.resolve()}/ocr_pages"}
    assert _uris(etl_dag.get_task("load").outlets) == expected
    for task_id in ("ocr_images", "ocr_pdfs"):
        ocr = etl_dag.get_task(task_id)
        outlets = getattr(ocr, "outlets", None) or ocr.partial_kwargs["outlets"]
        assert not outlets, task_id
    timetable = downstream.timetable  # Airflow 3: asset_condition; 2.x: dataset_condition
    condition = getattr(timetable, "asset_condition", None) or timetable.dataset_condition
    assert _uris(condition.objects) == expected
    assert [t.task_id for t in downstream.tasks] == ["summarise_languages"]
    assert set(etl_dag.task_ids) == {"plan", "ocr_images", "ocr_pdfs", "load", "report"}


def test_dag_files_parse_without_errors(airflow_env: AirflowEnv) -> None:
    import subprocess

    # As the DAG processor parses: Airflow 3 puts the bundle (the DAGs folder) on sys.path via
    # BundleDagBag, Airflow 2 puts DAGS_FOLDER there at import; that is what lets the DAG files
    # import delix_etl.
    probe = (
        "from pathlib import Path\n"
        "try:\n"
        "    from airflow.dag_processing.dagbag import BundleDagBag\n"
        f"    bag = BundleDagBag({str(DAGS)!r}, bundle_path=Path({str(DAGS)!r}))\n"
        "except ImportError:\n"
        "    from airflow.models.dagbag import DagBag\n"
        f"    bag = DagBag({str(DAGS)!r})\n"
        "print(sorted(bag.dag_ids), bag.import_errors)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], env=airflow_env.env(), capture_output=True,
                            text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "['delix_downstream_report', 'delix_scanned_archive_etl'] {}" in result.stdout
