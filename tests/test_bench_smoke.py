"""The benchmarks of docs/performance.md still run: ``bench/run_all.py --smoke`` (tiny sizes).

Only that they run and print their figure lines is checked; timings are never asserted here
(the machine may be busy), the full run prints them for docs/performance.md.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

EXPECTED = (
    "RESULT throughput b/c at ",
    "RESULT throughput b/a = ",
    "RESULT scale-out b/c = ",
    "RESULT scale-out storage high-water = ",
    "RESULT documents pages/s (queue 2) = ",
    "RESULT documents pages/s (queue 30) = ",
    "RESULT packing plain images/s = ",
    "RESULT packing packed images/s (queue 30) = ",
    "RESULT memory peak RSS ",
    "RESULT memory ratio ",
    "RESULT client CPU per page ",
    "RESULT import cost of the operator modules over Airflow = ",
    "RESULT resume index memory per stored row = ",
)


def test_benchmarks_run_in_smoke_mode() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run_all.py"), "--smoke"],
        check=False,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for prefix in EXPECTED:
        assert any(line.startswith(prefix) for line in done.stdout.splitlines()), (prefix, done.stdout)
    assert "machine: " in done.stdout and "versions: " in done.stdout
