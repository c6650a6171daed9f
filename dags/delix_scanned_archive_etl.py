"""Scanned archive -> Delix OCR -> Parquet -> warehouse -> report. Copy this DAG and adapt it.

* ``plan`` lists the archive (a folder or an object-storage prefix): with ``language="auto"``
  each top-level folder named ``fa``, ``en``, ``ar`` or ``tr`` is OCRed in that language
  (Delix takes one language per request).
* ``ocr_images`` (``ImageExtractionOperator``) and ``ocr_pdfs`` (``DocumentExtractionOperator``),
  each mapped over the languages, read the same folders with ``mixed_archive=True``: images go
  to the image path, ``*.pdf`` to the document path (long PDFs split, queued extracts polled),
  and both write one Parquet row per page to the one table ``<output_root>/ocr_pages/ds=<date>``.
  Re-running a date resumes: pages already stored are never sent (or paid for) again.
* ``load`` replaces the date's rows in the warehouse (DuckDB file by default, or PostgreSQL)
  in one transaction, so re-running a date never duplicates rows.
* ``report`` logs and returns pages by status, credits, problem files, text volume by
  language and the slowest step.

Try it locally (AIRFLOW_HOME with a migrated DB, this folder as the DAGs folder, and a
``delix_default`` connection): ``python dags/delix_scanned_archive_etl.py --date 2025-01-01``.
For a daily drop folder, set ``schedule="@daily"`` and an archive like
``s3://bucket/incoming/{ds}/``: ``{ds}`` is replaced by the run's date.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Asset, Param, get_current_context, task
from delix_etl import config

from airflow_provider_delix.operators.document_extraction import DocumentExtractionOperator
from airflow_provider_delix.operators.image_extraction import ImageExtractionOperator

log = logging.getLogger(__name__)

# A stable Asset for the whole table (the per-date paths change every run); the downstream
# DAG delix_downstream_report.py is scheduled on it. Only `load` lists it as an outlet: it runs
# once per ETL run, after every language's OCR tasks, so the downstream DAG is triggered once
# per run with the table complete (an outlet on the mapped OCR tasks would trigger it once per
# task, the first while the other languages were still being OCRed).
OCR_PAGES = Asset(config.ocr_pages_uri(config.default_output_root()))

with DAG(
    dag_id="delix_scanned_archive_etl",
    description="OCR a scanned archive with Delix into Parquet, load it into a warehouse, report.",
    schedule=None,  # an archive is OCRed once; see the module docstring for a daily drop folder
    start_date=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    tags=["delix", "ocr", "example"],
    params={
        "archive": Param(str(config.SAMPLE_ARCHIVE), type="string", description="Folder or prefix of scans."),
        "output_root": Param(config.default_output_root(), type="string", description="Parquet + DuckDB."),
        "warehouse": Param("duckdb", enum=["duckdb", "postgres"], description="Where the rows are loaded."),
        "postgres_conn_id": Param("postgres_default", type="string", description="For warehouse=postgres."),
        "language": Param("auto", enum=[config.AUTO, *config.LANGUAGES], description="auto: per folder."),
        "delix_conn_id": Param("delix_default", type="string", description="The Delix connection."),
        "poll_interval": Param(
            60, type="number", minimum=1, description="Seconds between polls of a queued PDF extract."
        ),
    },
) as dag:

    @task(show_return_value_in_logs=False)  # the plan is logged below as a sentence
    def plan() -> list[dict[str, Any]]:
        """Per language folder (or the whole archive): one image task and one PDF task, one table."""
        context = get_current_context()
        params, date = context["params"], config.run_date(context)
        runs = config.plan_ocr_runs(str(params["archive"]).replace("{ds}", date), params["language"])
        output_path = config.table_path(params["output_root"], date)
        log.info(
            "OCR of %s into %s: %s, each for images and for PDFs.",
            params["archive"],
            output_path,
            ", ".join(f"{run['language']} ({run['archive']})" for run in runs),
        )
        return [
            {**run, "output_path": output_path, "poll_interval": float(params["poll_interval"])}
            for run in runs
        ]

    runs = plan()
    # Up to four OCR tasks run at once (two languages x two kinds) and share one account's
    # 30 files / 100 MB: each gets a quarter (see docs/scaling-out.md).
    share = {"max_stored_files": 7, "max_stored_bytes": 25_000_000, "max_active_tis_per_dagrun": 2}
    ocr_images = ImageExtractionOperator.partial(
        task_id="ocr_images",
        delix_conn_id="{{ params.delix_conn_id }}",
        outlets=[],  # the table's Asset is load's outlet (see OCR_PAGES)
        map_index_template="{{ task.options.language }}",  # "ocr_images [fa]", not "[0]"
        mixed_archive=True,  # *.pdf is left to ocr_pdfs
        max_failed_ratio=0.2,  # fail the task if over 20 % of pages are not processed
        **share,
    ).expand_kwargs(runs.map(config.image_task))
    ocr_pdfs = DocumentExtractionOperator.partial(
        task_id="ocr_pdfs",
        delix_conn_id="{{ params.delix_conn_id }}",
        outlets=[],
        map_index_template="{{ task.options.language }}",
        mixed_archive=True,  # only *.pdf
        engine="auto",  # the text layer where a PDF has one (probe), OCR for scans
        max_failed_ratio=0.2,
        **share,
    ).expand_kwargs(runs.map(config.pdf_task))

    # none_failed: a folder without images (or PDFs) skips that OCR task, not the load.
    @task(trigger_rule="none_failed", outlets=[OCR_PAGES], show_return_value_in_logs=False)
    def load(runs: list[dict[str, Any]]) -> dict[str, Any]:
        """Replace the date's rows in the warehouse with the date's Parquet table."""
        from delix_etl.warehouse import read_pages

        context = get_current_context()
        params, date = context["params"], config.run_date(context)
        pages = read_pages(runs[0]["output_path"])
        if params["warehouse"] == "postgres":
            from delix_etl import warehouse_postgres

            conn = warehouse_postgres.connect(params["postgres_conn_id"])
            try:
                result = warehouse_postgres.load_date(conn, pages, date, location=params["postgres_conn_id"])
            finally:
                conn.close()
        else:
            from delix_etl import warehouse_duckdb

            db_path = warehouse_duckdb.database_path(params["output_root"])
            result = warehouse_duckdb.load_date(db_path, pages, date)
        log.info(
            "Loaded %s rows of %s into %s (%s replaced).", result.rows, date, result.location, result.replaced
        )
        return result.to_dict()

    @task(trigger_rule="none_failed", show_return_value_in_logs=False)  # logged as lines
    def report(
        image_manifests: list[dict[str, Any]],
        pdf_manifests: list[dict[str, Any]],
        runs: list[dict[str, Any]],
        loaded: dict[str, Any],
    ) -> dict[str, Any]:
        """What an analyst wants first, read back from the warehouse; logged and returned."""
        from delix_etl.report import build_report, dbapi_query, duckdb_query, format_report

        context = get_current_context()
        params, date = context["params"], config.run_date(context)
        # Index, not iterate: iterating Airflow's lazy XCom list probes one past the end and
        # logs a "not found" error. A skipped OCR task has no manifest (None): label and manifest
        # are dropped together so the labels stay right.
        labelled = [
            (f"{run['language']} {kind}", found[i])
            for kind, found in (("images", image_manifests), ("pdfs", pdf_manifests))
            for i, run in enumerate(runs)
            if i < len(found) and found[i]
        ]
        extra = {
            "manifests": [m for _, m in labelled],
            "languages": [label for label, _ in labelled],
            "load_seconds": loaded["seconds"],
        }
        if loaded["warehouse"] == "postgres":
            from delix_etl import warehouse_postgres

            conn = warehouse_postgres.connect(params["postgres_conn_id"])
            try:
                result = build_report(dbapi_query(conn), date, **extra)
            finally:
                conn.close()
        else:
            import duckdb

            with duckdb.connect(loaded["location"], read_only=True) as con:
                result = build_report(duckdb_query(con), date, **extra)
        log.info("%s", format_report(result))
        return result

    loaded = load(runs)
    [ocr_images, ocr_pdfs] >> loaded
    report(ocr_images.output, ocr_pdfs.output, runs, loaded)


if __name__ == "__main__":
    from delix_etl.local_run import test_dag

    sys.exit(test_dag(dag))
