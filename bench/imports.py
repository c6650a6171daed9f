"""What importing the operator modules costs over importing Airflow (DAG parsing pays it).

Each figure is read from ``python -X importtime -c "import airflow; import <module>"`` in a
fresh interpreter: the self times of every module imported after ``airflow`` (what the module
adds over Airflow, interpreter start-up excluded), median of ``--repeat`` interpreters. A fresh
process per sample, so nothing is cached in ``sys.modules``; the OS file cache is warm (as on
a scheduler that parses every 30 s). ``tests/operators/test_light_imports.py`` checks the same
thing without timing: no pandas, pyarrow, Pillow, pypdf or requests at import.

    .venv/bin/python bench/imports.py [--repeat 7] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = {
    "image operator": "airflow_provider_delix.operators.image_extraction",
    "document operator": "airflow_provider_delix.operators.document_extraction",
    "both operators": "airflow_provider_delix.operators.image_extraction, "
    "airflow_provider_delix.operators.document_extraction",
    "hook": "airflow_provider_delix.hooks.delix",
}


def _seconds_after_airflow(module: str, env: dict[str, str]) -> tuple[float, float]:
    """(seconds importing Airflow, seconds importing what ``module`` adds), from -X importtime."""
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-X", "importtime", "-c", f"import airflow; import {module}"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    airflow_us, after_us, seen_airflow = 0, 0, False
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = (part.strip() for part in line[len("import time:") :].split("|"))
        if seen_airflow:
            after_us += int(self_us)
        elif name == "airflow":  # a top-level line comes last, once its whole tree is imported
            airflow_us, seen_airflow = int(cumulative_us), True
    return airflow_us / 1e6, after_us / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--smoke", action="store_true", help="one sample each: checks the bench works")
    args = parser.parse_args()
    repeat = 1 if args.smoke else args.repeat
    modules = {"both operators": MODULES["both operators"]} if args.smoke else MODULES  # smoke: 1 run
    with tempfile.TemporaryDirectory(prefix="delix-bench-imports-") as home:
        env = dict(os.environ, AIRFLOW_HOME=os.environ.get("AIRFLOW_HOME", home))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
        if not args.smoke:
            _seconds_after_airflow(MODULES["both operators"], env)  # warm the file cache and bytecode
        base: list[float] = []
        samples: dict[str, list[float]] = {label: [] for label in modules}
        for _ in range(repeat):  # interleaved, so a busy moment touches every figure alike
            for label, module in modules.items():
                airflow_s, after_s = _seconds_after_airflow(module, env)
                base.append(airflow_s)
                samples[label].append(after_s)
    print(f"import airflow: {statistics.median(base):.3f}s (median of {len(base)} fresh interpreters)")
    for label in modules:
        print(f"import {label}: {statistics.median(samples[label]):.3f}s over Airflow")
    both = statistics.median(samples["both operators"])
    print(f"RESULT import cost of the operator modules over Airflow = {both:.3f} s (target <= 0.3)")


if __name__ == "__main__":
    main()
