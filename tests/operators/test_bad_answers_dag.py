"""Malformed answers cost the pages they concern, not the run: ``dag.test()`` against the emulator.

The emulator spoils every third answer to uploads and image extractions *after* applying
the request (files stored, extraction charged): an upload answer one entry short, an extraction
answer that is not JSON, a page without status, page 7 for a one-page image, an image extract
answered as still processing. The run must finish with one row per page; every page it could
read has its text; the pages it could not read have ``malformed_answer`` rows naming the
connection and the request; nothing is paid twice; every file whose uuid was answered is
deleted, the files no answer named are reported as ``files_in_doubt`` and then swept as orphans
(``docs/cleanup.md``): no file is left.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow_runner import AirflowEnv, connection_json
from archives import write_good_scans
from dag_templates import write_operator_dag
from emulator_checks import FAST_RETRIES

from airflow_provider_delix.core.table import read_table

pytestmark = pytest.mark.timeout(600)

KINDS = (
    "upload_missing_entry",
    "extract_not_json",
    "page_without_status",
    "page_number_out_of_range",
    "image_processing",
)


def test_each_malformed_answer_costs_only_its_pages(
    airflow_env: AirflowEnv, emulator_factory: Any, tmp_path: Path
) -> None:
    emulator = emulator_factory(malformed_every=3)
    truth = write_good_scans(tmp_path / "archive", 120)
    output = tmp_path / "table"
    dag_file = write_operator_dag(
        airflow_env,
        "ocr_bad_answers",
        images=tmp_path / "archive",
        output_path=output,
        max_failed_ratio=None,
        max_stored_files=10,
        poll_interval=0.2,
        progress_interval=1,
    )
    state, log = airflow_env.run(
        dag_file, AIRFLOW_CONN_DELIX_DEFAULT=connection_json(emulator, **FAST_RETRIES)
    )
    assert state == "success", log[-5000:]
    stats = emulator.stats()
    faults = stats["faults"]
    assert set(faults) == set(KINDS), f"every kind of bad answer must occur: {faults}"

    table = read_table(str(output))
    assert len(table) == 120 and not table.duplicated(["source", "page_number"]).any()
    read = table[table["status"] == "processed"]
    assert dict(zip(read["source"], read["text"], strict=True)) == {s: truth[s] for s in read["source"]}
    bad = table[table["status"] != "processed"]
    assert (bad["status"] == "failed").all() and (bad["error"] == "malformed_answer").all()
    for message in bad["error_message"]:
        assert "connection 'delix_default'" in message, message
        assert any(what in message for what in ("upload of", "image extraction of", "extract ")), message
    # An image extract answered "processing" is polled and read like any other.
    assert len(read) >= 120 - 5 * (faults["upload_missing_entry"] + faults["extract_not_json"]) - (
        faults["page_without_status"] + faults["page_number_out_of_range"]
    )

    assert set(stats["charges"].values()) == {1}, "nothing is paid twice"
    unreadable = int((bad["error_message"].str.contains("image extraction of")).sum())
    # An unreadable extraction answer was still a 201: its pages carry the price Delix charged.
    assert int(table["credits_charged"].sum()) == stats["credits"]["charged"]
    # Every answered uuid is deleted at once; the file each short upload answer did not name is
    # claimed by nobody in the key registry and swept (docs/cleanup.md): nothing is left.
    assert stats["files"]["count"] == 0
    assert f"{faults['upload_missing_entry']} file(s)" in log and "files_in_doubt" in log
    assert f"{unreadable} page(s)" in log and "pages_in_doubt" in log
