"""Data-aware scheduling: summarise the OCR table per language whenever the ETL updates it.

This DAG has no clock: it is scheduled on the OCR table's Asset (a Dataset on Airflow 2),
which the ETL DAG's ``load`` task lists as its outlet: ``load`` runs once per ETL run, after
the OCR tasks of every language, so this DAG runs once per ETL run, with the table complete.
It reads the whole table root (every date) and writes ``<output_root>/reports/
language_summary.json``: pages, processed pages and characters per language, the numbers a
team watching OCR volume and quality per language looks at first.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Asset, Param, get_current_context, task
from delix_etl import config

log = logging.getLogger(__name__)

with DAG(
    dag_id="delix_downstream_report",
    description="Per-language text summary of the Delix OCR table, run when the table changes.",
    # The same URI the ETL's load task lists as its outlet (both come from delix_etl.config).
    schedule=[Asset(config.ocr_pages_uri(config.default_output_root()))],
    start_date=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    tags=["delix", "ocr", "example"],
    params={"output_root": Param(config.default_output_root(), type="string", description="As in the ETL.")},
) as dag:

    @task
    def summarise_languages() -> dict[str, Any]:
        """Stream the table, sum per language, write the JSON beside the table, return it."""
        from delix_etl.language_summary import language_summary, write_json

        root = str(get_current_context()["params"]["output_root"])
        summary = language_summary(f"{root.rstrip('/')}/{config.OCR_PAGES_DIR}")
        path = write_json(summary, f"{root.rstrip('/')}/reports/language_summary.json")
        for language, entry in summary.items():
            pages, processed, chars = entry["pages"], entry["processed"], entry["chars"]
            log.info("%s: %s pages, %s processed, %s characters", language, pages, processed, chars)
        log.info("Wrote %s", path)
        return summary

    summarise_languages()


if __name__ == "__main__":
    from delix_etl.local_run import test_dag

    sys.exit(test_dag(dag))
