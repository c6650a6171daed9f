"""Every benchmark of docs/performance.md, one after the other (about 13 minutes on 2 cores).

.venv/bin/python bench/run_all.py            # the figures of docs/performance.md
.venv/bin/python bench/run_all.py --smoke    # each bench tiny (< 30 s in all): they work
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SCRIPTS = (
    "throughput.py",
    "documents.py",
    "packing.py",
    "memory_cpu.py",
    "request_cost.py",
    "imports.py",
    "resume_memory.py",
)


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    import os

    return f"{os.cpu_count()} cores, {model}, {platform.system()} {platform.release()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(
        f"versions: Python {platform.python_version()}, Airflow {version('apache-airflow')}, "
        f"pyarrow {version('pyarrow')}, requests {version('requests')}"
    )
    failed = 0
    for script in SCRIPTS:
        start = time.perf_counter()
        print(f"== {script}", flush=True)
        code = subprocess.call([sys.executable, str(BENCH / script), *(["--smoke"] if args.smoke else [])])
        print(f"== {script}: {time.perf_counter() - start:.0f}s, exit {code}", flush=True)
        failed += code != 0
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
