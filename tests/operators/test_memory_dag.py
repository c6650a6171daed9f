"""Huge pixel counts in small files: the task's own peak memory stays under 1 GiB.

Three 11000 x 16000 PNGs of under 1 MB each (176 Mpx, just under Pillow's decompression-bomb
limit) used to take about 3 GB each to prepare. The task runs through ``dag.test()`` in a
subprocess that reports its high-water mark (``ru_maxrss``) when it exits, so the figure is
the task's own, not a guess from timing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow_runner import AirflowEnv, connection_json
from dag_templates import operator_dag
from emulator_checks import FAST_RETRIES, assert_charged_once
from huge_images import huge_png

from airflow_provider_delix.core.table import read_table

pytestmark = pytest.mark.timeout(600)

GIB_KB = 1024 * 1024  # ru_maxrss is in KiB on Linux

REPORT_PEAK_RSS = """
import atexit
import resource


def _report():
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"MAXRSS_KB={own} CHILDREN_KB={children}", flush=True)


atexit.register(_report)
"""


def _peaks(log: str) -> tuple[int, int]:
    # The DAG file runs as __main__ and is imported again as a DAG module: two reports, the same.
    line = [line for line in log.splitlines() if line.startswith("MAXRSS_KB=")][-1]
    own, children = (int(part.split("=")[1]) for part in line.split())
    return own, children


def test_three_11000x16000_pngs_stay_under_1_gib(
    airflow_env: AirflowEnv, emulator_factory: Any, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    huge = {
        "see-through.png": huge_png(archive / "see-through.png", mode="RGBA", text="SEE THROUGH"),
        "opaque.png": huge_png(archive / "opaque.png", mode="RGBA", transparent=False, text="OPAQUE"),
        "colour.png": huge_png(archive / "colour.png", mode="RGB", text="COLOUR"),
    }
    assert all(path.stat().st_size < 1_000_000 for path in huge.values())
    emulator = emulator_factory()
    output = tmp_path / "table"
    source = operator_dag(
        "ocr_memory", preamble=REPORT_PEAK_RSS, images=archive, output_path=output, max_failed_ratio=None
    )
    state, log = airflow_env.run(
        airflow_env.write_dag("ocr_memory", source),
        AIRFLOW_CONN_DELIX_DEFAULT=connection_json(emulator, **FAST_RETRIES),
    )
    assert state == "success", log[-5000:]

    own, children = _peaks(log)
    print(f"peak RSS of the task: {own / 1024:.0f} MiB (children {children / 1024:.0f} MiB)")
    assert own > 100 * 1024, "the task ran in this process (dag.test), so its peak is its own"
    assert max(own, children) <= GIB_KB, f"peak RSS {own / 1024:.0f} MiB is over 1 GiB"

    table = read_table(str(output))
    assert sorted(Path(s).name for s in table["source"]) == sorted(huge)  # one row per page
    assert (table["status"] == "processed").all(), table[["source", "status", "error_message"]]
    assert table["normalization"].str.startswith("reduce_1/3,").all()
    see_through = table[table["source"].str.endswith("see-through.png")].iloc[0]
    assert "alpha->white" in see_through["normalization"]
    assert_charged_once(emulator.stats(), 3)
    assert emulator.stats()["files"]["count"] == 0
