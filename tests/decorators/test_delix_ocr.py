"""``@task.delix_ocr`` / ``@task.delix_ocr_documents``: registration, parse-time behaviour, a mapped run.

The registration tests go through Airflow's own ``task`` object (the provider is installed
editable, so its ``apache_airflow_provider`` entry point is live): that is what a DAG author
types, on 2.11 (``airflow.decorators``) and 3.x (``airflow.sdk``). The DAG test maps the
decorated function over two folders with ``.partial().expand()`` through ``dag.test()`` against
the emulator, and checks the table and the manifests the mapped instances returned.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from airflow_runner import AirflowEnv, connection_json

from airflow_provider_delix.core.table import read_table
from airflow_provider_delix.decorators import delix_ocr as module
from airflow_provider_delix.emulator.scans import make_png
from airflow_provider_delix.get_provider_info import get_provider_info

DECORATORS = {
    "delix_ocr": module.delix_ocr_task,
    "delix_ocr_documents": module.delix_ocr_documents_task,
}


def _task() -> Any:
    try:
        from airflow.sdk import task
    except ImportError:  # Airflow 2.11
        from airflow.decorators import task
    return task


def _dag(dag_id: str) -> Any:
    import pendulum
    from airflow.providers.common.compat.sdk import DAG

    return DAG(dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False)


def test_provider_info_registers_both_decorators_by_factory_path() -> None:
    entries = {e["name"]: e["class-name"] for e in get_provider_info()["task-decorators"]}
    assert set(entries) == set(DECORATORS)
    for name, path in entries.items():
        module_name, _, attr = path.rpartition(".")
        assert getattr(importlib.import_module(module_name), attr) is DECORATORS[name]


@pytest.mark.parametrize("name", sorted(DECORATORS))
def test_airflows_task_object_exposes_the_decorators(name: str) -> None:
    assert getattr(_task(), name) is DECORATORS[name]


def test_operator_arguments_are_validated_when_the_dag_is_parsed() -> None:
    task = _task()
    with _dag("deco_parse"), pytest.raises(ValueError, match="language"):

        @task.delix_ocr(output_path="/tmp/out", language="xx")
        def scans() -> str:
            return "/archive"

        scans()


def test_decorated_task_is_the_operator_with_its_templates_minus_the_inputs() -> None:
    task = _task()
    with _dag("deco_fields") as dag:

        @task.delix_ocr(output_path="/tmp/out/{{ ds }}", language="en", max_stored_files=5)
        def scans(folder: str) -> str:
            return f"/archive/{folder}"

        @task.delix_ocr_documents(output_path="/tmp/docs", pages="1-2", engine="probe")
        def pdfs() -> list[str]:
            return ["/archive/a.pdf"]

        scans("2024")
        scans.partial().expand(folder=["fa", "en"])
        pdfs()
    from airflow_provider_delix.operators.document_extraction import DocumentExtractionOperator
    from airflow_provider_delix.operators.image_extraction import ImageExtractionOperator

    image = dag.get_task("scans")
    assert isinstance(image, ImageExtractionOperator)
    assert image.options.language == "en" and image.options.max_stored_files == 5
    assert "output_path" in image.template_fields and "images" not in image.template_fields
    assert {"op_args", "op_kwargs"} <= set(image.template_fields)
    mapped = dag.get_task("scans__1")
    assert mapped.operator_name == "@task.delix_ocr" and "images" not in mapped.template_fields
    document = dag.get_task("pdfs")
    assert isinstance(document, DocumentExtractionOperator)
    assert document.options.engine == "probe" and document.pages == "1-2"
    assert "pages" in document.template_fields and "documents" not in document.template_fields


def test_a_function_that_returns_none_fails_with_a_hint() -> None:
    def scans() -> None:
        return None

    with pytest.raises(TypeError, match=r"scans returned None.*'images'"):
        module._inputs_of(scans, None, "images")
    assert module._inputs_of(scans, ["a.png"], "images") == ["a.png"]


def test_importing_the_decorators_loads_no_pandas_pyarrow_or_requests() -> None:
    """DAG parsing imports this module; the heavy libraries must wait for ``execute``."""
    code = (
        "import sys, json\n"
        "import airflow.providers.common.compat.sdk as s; s.DecoratedOperator; s.BaseOperator\n"
        "before = set(sys.modules)\n"
        "import airflow_provider_delix.decorators.delix_ocr\n"
        "print(json.dumps(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in "
        "('pandas', 'pyarrow', 'requests'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


MAPPED_DAG = """
import json
import pendulum
from airflow.providers.common.compat.sdk import DAG, task

with DAG("deco_mapped", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False) as dag:

    @task.delix_ocr(output_path={output!r}, language="fa", max_failed_ratio=None, retries=0)
    def scans(root: str, folder: str) -> str:
        return f"{{root}}/{{folder}}/"

    @task
    def report(manifests) -> None:
        print("MANIFESTS=" + json.dumps(list(manifests)))

    report(scans.partial(root={root!r}).expand(folder={folders!r}))
"""


def _write_scans(folder: Path, count: int) -> dict[str, str]:
    """Scans whose text names their folder: identical content would be OCRed (and stored) once."""
    folder.mkdir(parents=True)
    truth = {}
    for i in range(count):
        path = folder / f"scan-{i}.png"
        truth[str(path)] = f"{folder.name} پوشه برگه {i}" if i % 2 else f"{folder.name} folder page {i}"
        path.write_bytes(make_png(truth[str(path)]))
    return truth


def test_mapped_over_folders_every_image_of_each_folder_has_its_row(
    airflow_env: AirflowEnv, emulator: Any, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    truth = {folder: _write_scans(archive / folder, n) for folder, n in (("fa", 3), ("en", 2))}
    output = tmp_path / "table"
    source = MAPPED_DAG.format(output=str(output), root=str(archive), folders=list(truth))
    dag_file = airflow_env.write_dag("deco_mapped", source)

    state, log = airflow_env.run(dag_file, AIRFLOW_CONN_DELIX_DEFAULT=connection_json(emulator))
    assert state == "success", log[-5000:]

    table = read_table(str(output))
    assert not table.duplicated(["source", "page_number"]).any()
    for folder, expected in truth.items():
        rows = table[table["source"].str.startswith(str(archive / folder) + "/")]
        assert dict(zip(rows["source"], rows["text"], strict=True)) == expected, folder
        assert (rows["status"] == "processed").all()
    assert len(table) == sum(len(t) for t in truth.values())

    (line,) = [ln for ln in log.splitlines() if "MANIFESTS=" in ln]
    manifests = json.loads(line.split("MANIFESTS=", 1)[1])
    assert [m["pages_total"] for m in manifests] == [len(t) for t in truth.values()]
    assert all(m["output_uri"] == f"file://{output}" for m in manifests)
