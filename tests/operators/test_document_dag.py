"""DocumentExtractionOperator end to end through ``dag.test()`` against the emulator.

The documents issue's "must show" list: a PDF archive of every kind under 10 % faults, a
SIGKILL while extracts are queued then a re-run that re-attaches, ``deferrable=True`` seen in
the ``deferred`` state, and the resume key's engine/language.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any

import pytest
from airflow_runner import AirflowEnv, connection_json, signal_when
from dag_templates import write_operator_dag
from documents import write_pdf_archive
from emulator_checks import FAST_RETRIES, assert_charged_once

from airflow_provider_delix.core.table import read_table

pytestmark = pytest.mark.timeout(600)


def _dag(
    env: AirflowEnv,
    dag_id: str,
    documents: Path,
    output: Path,
    *,
    engine: str = "danlin",
    language: str = "fa",
    deferrable: bool = False,
    max_files: int = 30,
) -> Path:
    return write_operator_dag(
        env,
        dag_id,
        task_id="ocr_pdfs",
        documents=documents,
        output_path=output,
        engine=engine,
        language=language,
        deferrable=deferrable,
        poll_interval=0.2,
        max_failed_ratio=None,
        max_stored_files=max_files,
        progress_interval=1,
    )


def test_pdf_archive_under_faults_one_row_per_original_page(
    airflow_env: AirflowEnv, emulator_factory: Any, tmp_path: Path
) -> None:
    emulator = emulator_factory(
        rate_429=0.025, rate_500=0.025, rate_503=0.025, rate_drop=0.025, retry_after=0, seed=5
    )
    truth, invalid = write_pdf_archive(tmp_path / "pdfs")
    output = tmp_path / "table"
    dag_file = _dag(airflow_env, "pdf_faults", tmp_path / "pdfs", output, max_files=20)
    conn = connection_json(emulator, **FAST_RETRIES)
    state, log = airflow_env.run(dag_file, AIRFLOW_CONN_DELIX_DEFAULT=conn)
    assert state == "success", log[-6000:]
    stats = emulator.stats()
    assert sum(stats["faults"].values()) > 0, "faults must actually have been injected"

    table = read_table(str(output))
    # A dropped connection may come after Delix applied the request: the table counts such a lost
    # send as charged and the run reports it as at risk. The emulator's drops come before
    # anything is applied, so here the at-risk credits are exactly the table's excess.
    at_risk = re.search(r"(\d+) credit\(s\) that Delix charged only if it applied them", log)
    excess = int(at_risk.group(1)) if at_risk else 0
    assert table["credits_charged"].sum() - excess == sum(stats["charges"].values()) * 100
    if (table["error"] == "answer_lost").any():
        # An extraction dropped on both of its sends (about one run in a hundred here): its pages
        # have answer_lost rows, and the next run on the output finishes exactly them.
        state, log = airflow_env.run(dag_file, AIRFLOW_CONN_DELIX_DEFAULT=conn)
        assert state == "success", log[-6000:]
        table, stats = read_table(str(output)), emulator.stats()
        assert not (table["error"] == "answer_lost").any()
    assert not table.duplicated(["source", "page_number"]).any()
    good = table[table["status"] == "processed"]
    got = {(s, int(p)): t for s, p, t in zip(good["source"], good["page_number"], good["text"], strict=True)}
    assert got == truth, "every page of every good document, with its own text"
    for source, (error, pages) in invalid.items():
        rows = table[table["source"] == source]
        assert len(rows) == pages and set(rows["status"]) == {"invalid"} and set(rows["error"]) == {error}
        assert rows["error_message"].str.len().gt(0).all()
        assert not rows["error_message"].str.contains("Traceback").any()
    assert len(table) == len(truth) + sum(p for _, p in invalid.values())
    split = table[table["source"].str.endswith("long160.pdf")]
    assert sorted(split["page_number"]) == list(range(1, 161))
    assert_charged_once(stats, len(truth))
    assert stats["files"]["count"] == 0, "every uploaded file is deleted"
    assert 0 < stats["files"]["max_count"] <= 20


def test_sigkill_while_extracts_are_queued_then_rerun_reattaches(
    airflow_env: AirflowEnv, emulator_factory: Any, tmp_path: Path
) -> None:
    emulator = emulator_factory(queue_delay=2.0)
    truth, _ = write_pdf_archive(tmp_path / "pdfs")
    for name in ("encrypted.pdf", "damaged.pdf", "notes.pdf", "big.pdf"):
        (tmp_path / "pdfs" / name).unlink()
    truth = {k: v for k, v in truth.items() if not k[0].endswith("big.pdf")}
    output = tmp_path / "table"
    dag_file = _dag(airflow_env, "pdf_kill", tmp_path / "pdfs", output)
    conn = connection_json(emulator, **FAST_RETRIES)

    def queued_and_journalled() -> bool:
        # Kill once a queued extract is journalled with its uuid (the write-ahead under test);
        # the emulator's count alone can run ahead of the answer reaching the client.
        return emulator.stats()["extracts"]["processing"] >= 1 and bool(_journalled_extracts(output))

    process = airflow_env.popen(dag_file, AIRFLOW_CONN_DELIX_DEFAULT=conn)
    signal_when(
        process, queued_and_journalled, signal.SIGKILL, never="the run never had a queued extract", poll=0.05
    )
    process.wait(timeout=30)
    assert emulator.stats()["charges"], "the killed attempt paid for queued extracts"

    state, log = airflow_env.run(dag_file, AIRFLOW_CONN_DELIX_DEFAULT=conn)
    assert state == "success", log[-6000:]
    table = read_table(str(output))
    assert not table.duplicated(["source", "page_number"]).any()
    got = {
        (s, int(p)): t for s, p, t in zip(table["source"], table["page_number"], table["text"], strict=True)
    }
    assert got == truth
    stats = emulator.stats()
    reattached = "paid extract(s) of earlier attempts collected" in log
    assert reattached, "the re-run re-attached to the queued extracts"
    adopted, in_doubt = _earlier_attempts(log)
    assert adopted >= 1
    # A request on the wire when the kill landed may have been charged without an answer (a
    # synchronous one is answered only after its OCR): the API cannot tell, so the re-run
    # reports those pages. Every other page -- the queued extracts above all -- is paid once.
    assert len(stats["charges"]) == len(truth)
    twice = sum(n - 1 for n in stats["charges"].values())
    assert twice <= in_doubt, f"{twice} page(s) paid twice, {in_doubt} reported in doubt"
    # Likewise an upload on the wire at the kill may have stored files whose uuids never came
    # back: the API cannot say whose a stored file is, so they are reported, not deleted.
    files_in_doubt = re.search(r"(\d+) file\(s\) were being uploaded", log)
    assert stats["files"]["count"] <= (int(files_in_doubt.group(1)) if files_in_doubt else 0)


def _journalled_extracts(output: Path) -> list[str]:
    found = []
    for path in (output / "_delix_state" / "extracts").rglob("*.json"):
        try:
            uuid = json.loads(path.read_bytes()).get("extract_uuid")
        except (OSError, ValueError):
            continue  # being replaced right now
        if uuid:
            found.append(uuid)
    return found


def _earlier_attempts(log: str) -> tuple[int, int]:
    match = re.search(
        r"Unsettled requests: (\d+) paid extract\(s\) of earlier attempts collected, "
        r"\d+ lost by Delix; (\d+) page",
        log,
    )
    assert match, "the re-run logs what it found of the killed attempt"
    return int(match.group(1)), int(match.group(2))


def test_deferrable_run_is_deferred_while_delix_works(
    airflow_env: AirflowEnv, emulator_factory: Any, tmp_path: Path
) -> None:
    emulator = emulator_factory(queue_delay=3.0)
    truth, _ = write_pdf_archive(tmp_path / "pdfs")
    for name in ("encrypted.pdf", "damaged.pdf", "notes.pdf", "big.pdf", "long160.pdf"):
        (tmp_path / "pdfs" / name).unlink()
    truth = {
        k: v
        for k, v in truth.items()
        if Path(k[0]).name in {"one.pdf", "five.pdf", "twelve.pdf", "forty.pdf", "textlayer.pdf"}
    }
    output = tmp_path / "table"
    dag_file = _dag(airflow_env, "pdf_deferred", tmp_path / "pdfs", output, deferrable=True)
    state, log = airflow_env.run(
        dag_file, AIRFLOW_CONN_DELIX_DEFAULT=connection_json(emulator, **FAST_RETRIES)
    )
    assert state == "success", log[-6000:]
    # dag.test() runs the trigger in line only for a task instance that ended in DEFERRED.
    assert "deferring until they finish" in log, log[-6000:]
    assert "running trigger in line" in log, log[-6000:]
    table = read_table(str(output))
    got = {
        (s, int(p)): t for s, p, t in zip(table["source"], table["page_number"], table["text"], strict=True)
    }
    assert got == truth
    assert_charged_once(emulator.stats(), len(truth))
    assert emulator.stats()["files"]["count"] == 0


def test_another_language_extracts_again_the_same_settings_send_nothing(
    airflow_env: AirflowEnv, emulator: Any, tmp_path: Path
) -> None:
    truth, _ = write_pdf_archive(tmp_path / "pdfs")
    for name in ("encrypted.pdf", "damaged.pdf", "notes.pdf", "big.pdf", "long160.pdf", "forty.pdf"):
        (tmp_path / "pdfs" / name).unlink()
    pages = sum(1 for k in truth if Path(k[0]).name in {"one.pdf", "five.pdf", "twelve.pdf", "textlayer.pdf"})
    output = tmp_path / "table"
    conn = connection_json(emulator)
    fa = _dag(airflow_env, "pdf_lang_fa", tmp_path / "pdfs", output, language="fa")
    en = _dag(airflow_env, "pdf_lang_en", tmp_path / "pdfs", output, language="en")
    assert airflow_env.run(fa, AIRFLOW_CONN_DELIX_DEFAULT=conn)[0] == "success"
    assert sum(emulator.stats()["charges"].values()) == pages
    assert airflow_env.run(en, AIRFLOW_CONN_DELIX_DEFAULT=conn)[0] == "success"
    assert sum(emulator.stats()["charges"].values()) == 2 * pages, "another language is extracted again"
    calls = sum(emulator.stats()["calls"].values())
    assert airflow_env.run(en, AIRFLOW_CONN_DELIX_DEFAULT=conn)[0] == "success"
    assert sum(emulator.stats()["calls"].values()) == calls, "the same settings send nothing"
    table = read_table(str(output))
    assert sorted(set(table["language"])) == ["en", "fa"] and len(table) == 2 * pages
