"""SIGKILL at ten random moments of one archive's runs, each followed by a re-run.

Issue 11's must-show: after every kill the next run resumes; at the end the table has one row
per page, the account holds no file, and the pages charged more than once are at most the
pages of the extraction requests that were on the wire when a kill struck. Those are exactly
the ledger's *intents without an extract uuid* (written before a request is sent, completed
with the uuid the moment Delix answers), counted right after each kill from the output's
``_delix_state``: a request answered before the kill is re-attached to, never paid again.

The moments are drawn from a seeded RNG (printed on failure) over the part of a run that
calls Delix: from its first call to about when an unkilled run would end.
"""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from airflow_runner import AirflowEnv, connection_json
from archives import write_good_scans
from dag_templates import write_operator_dag
from emulator_checks import FAST_RETRIES

from airflow_provider_delix.core.table import read_table

pytestmark = pytest.mark.timeout(900)

IMAGES = 120
KILLS = 10
SEED = 11


def _pages_on_the_wire(output: Path) -> int:
    """Pages of extraction requests journalled as sent but not answered: what a kill may re-pay."""
    pages = 0
    for record in (output / "_delix_state" / "extracts").glob("*/*.json"):
        body = json.loads(record.read_bytes())
        if body.get("extract_uuid") is None:
            pages += sum(len(f["pages"]) for f in body["files"])
    return pages


def _calls(emulator: Any) -> int:
    return int(sum(emulator.stats()["calls"].values()))


def test_ten_random_sigkills_each_followed_by_a_rerun_lose_nothing_and_leave_nothing(
    airflow_env: AirflowEnv, emulator_factory: Any, tmp_path: Path
) -> None:
    # About 18 s of Delix calls in all (two chunks of 5 in flight, 1.5 s per chunk), so ten
    # kills of 0-3 s each land in every phase of a chunk's life before the archive is done.
    emulator = emulator_factory(
        latency_upload=0.3, latency_extract_base=0.6, latency_extract_page=0.1, latency_delete=0.1
    )
    truth = write_good_scans(tmp_path / "archive", IMAGES)
    output = tmp_path / "table"
    dag_file = write_operator_dag(
        airflow_env,
        "ocr_sigkill",
        images=tmp_path / "archive",
        output_path=output,
        engine="danlin",
        language="fa",
        max_failed_ratio=None,
        max_stored_files=10,
        progress_interval=1,
    )
    conn = connection_json(emulator, **FAST_RETRIES)
    rng = random.Random(SEED)
    at_risk = 0
    moments: list[float] = []
    for kill in range(KILLS):
        before = _calls(emulator)
        process = airflow_env.popen(dag_file, AIRFLOW_CONN_DELIX_DEFAULT=conn)
        deadline = time.monotonic() + 120
        while _calls(emulator) == before and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)  # Airflow starting: no call yet
        moment = rng.uniform(0.0, 3.0)
        moments.append(round(moment, 2))
        time.sleep(moment)
        if process.poll() is not None:
            break  # the archive finished before this kill: nothing left to interrupt
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        at_risk += _pages_on_the_wire(output)

    state, log = airflow_env.run(dag_file, AIRFLOW_CONN_DELIX_DEFAULT=conn)
    assert state == "success", log[-5000:]
    context = f"seed {SEED}, kills after first call at {moments} s"
    table = read_table(str(output))
    assert len(table) == IMAGES, context
    assert not table.duplicated(["source_sha256", "page_number"]).any(), context
    assert dict(zip(table["source"], table["text"], strict=True)) == truth, context
    stats = emulator.stats()
    assert stats["files"]["count"] == 0, f"files left on the account ({context})"
    assert len(stats["charges"]) == IMAGES
    extra = sum(n - 1 for n in stats["charges"].values())
    assert extra <= at_risk, f"{extra} pages paid again, {at_risk} were on the wire at the kills ({context})"
    assert len(moments) >= KILLS - 2, f"the archive finished too early to be killed 10 times ({context})"
