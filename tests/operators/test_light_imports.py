"""DAG parsing imports the operator modules: the heavy libraries must wait for ``execute``.

Checked by the modules a fresh interpreter holds after the import, never by wall time (the
import cost itself is printed by ``bench/imports.py``). The hook is built on ``HttpHook`` and
so needs ``requests``; it must still not bring the table or decoding libraries.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pandas", "pyarrow", "PIL", "pypdf", "requests", "aiohttp")

CODE = """
import json, sys
import airflow
def loaded():
    return {m.split('.')[0] for m in sys.modules} & set(HEAVY)
found = {"airflow": sorted(loaded())}  # Airflow 2.11 itself imports requests
import airflow_provider_delix.operators.image_extraction
import airflow_provider_delix.operators.document_extraction
import airflow_provider_delix.operators.cleanup
import airflow_provider_delix.sensors.delix
found["operators"] = sorted(loaded() - set(found["airflow"]))
import airflow_provider_delix.hooks.delix
found["hook"] = sorted(loaded() - {"requests", "aiohttp"})  # HttpHook's module imports both
print(json.dumps(found))
"""


def test_operator_modules_import_no_pandas_pyarrow_pillow_pypdf_or_requests() -> None:
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", f"HEAVY = {HEAVY!r}\n{CODE}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(found["airflow"]) < len(HEAVY)  # else the checks below would prove nothing
    assert found["operators"] == []  # nothing heavy over what Airflow itself imports
    assert found["hook"] == []
