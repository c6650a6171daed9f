"""Three extractions on one Delix key at once, default settings, through the real hook and pipeline.

Each runs ``run_extraction`` (what the operator executes) in its own thread with its own hook,
like three mapped task instances; none is told about the others. Their storage windows
(``core/window.py``) must share the account: the emulator never holds more than 30 files
(it refuses instead), every page is charged once, every file is deleted, the three finish
close together, and refusals stay a small fraction of the uploads. Each also sweeps the account
for orphans (``docs/cleanup.md``) while the others upload: the key registry keeps it off their
files. Latencies are a tenth of the bench's so the whole run takes a few seconds.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from airflow_runner import connection_json
from archives import write_good_scans
from emulator_checks import FAST_RETRIES, assert_charged_once

from airflow_provider_delix.core.pipeline import ExtractionPipeline
from airflow_provider_delix.core.run import RunOptions, run_extraction
from airflow_provider_delix.core.summary import PipelineSummary
from airflow_provider_delix.hooks.delix import DelixHook

pytestmark = pytest.mark.timeout(120)

TASKS, IMAGES = 3, 60
CONN_ID = "delix_shared"


def test_three_tasks_on_one_key_share_the_account(
    emulator_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = emulator_factory(
        latency_upload=0.05, latency_extract_base=0.1, latency_extract_page=0.01, latency_delete=0.01
    )
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", connection_json(emulator, **FAST_RETRIES))
    scans = tmp_path / "scans"
    write_good_scans(scans, TASKS * IMAGES)  # distinct pages: no task can reuse another's result
    folders = [tmp_path / f"batch{i}" for i in range(TASKS)]
    for i, scan in enumerate(sorted(scans.iterdir())):
        folders[i % TASKS].mkdir(exist_ok=True)
        scan.rename(folders[i % TASKS] / scan.name)
    summaries: dict[int, PipelineSummary] = {}
    errors: list[BaseException] = []
    go = threading.Barrier(TASKS)

    def task(i: int) -> None:
        def faster_backoff(pipeline: ExtractionPipeline) -> None:
            # The refusal back-off starts at 1 s for the real API; scale it to these latencies.
            pipeline.tuning = replace(pipeline.tuning, storage_backoff=(0.1, 3.0))

        hook = DelixHook(CONN_ID)
        try:
            go.wait()
            summaries[i] = run_extraction(
                str(folders[i]),
                str(tmp_path / f"out{i}"),
                hook,
                RunOptions(max_failed_ratio=0.0, progress_interval=3600),  # defaults otherwise
                run_id=f"map{i}",
                on_pipeline=faster_backoff,
            )
        except BaseException as exc:
            errors.append(exc)
        finally:
            hook.close()

    threads = [threading.Thread(target=task, args=(i,)) for i in range(TASKS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors

    stats = emulator.stats()
    assert 0 < stats["files"]["max_count"] <= 30 and stats["files"]["count"] == 0
    assert_charged_once(stats, TASKS * IMAGES)
    assert all(s.rows["processed"] == IMAGES for s in summaries.values())
    # Each task swept the account (start, end, refusals) while the others were uploading, and
    # nothing was left behind to sweep: any file deleted would have been a live task's.
    assert all(s.requests["list_files"] >= 2 and s.orphans_deleted == 0 for s in summaries.values())
    elapsed = [s.elapsed_seconds for s in summaries.values()]
    assert max(elapsed) / min(elapsed) <= 1.6, elapsed
    uploads = stats["calls_by_status"]["POST /files"]
    refused, accepted = uploads.get("422", 0), uploads.get("207", 0)
    assert refused <= accepted / 4, uploads  # refusals are the exception, not the pacing (4 of 44)
