"""OpenLineage: the events of real runs, captured with OpenLineage's file transport.

One ``dag.test()`` runs a plain task and a mapped one (``.partial().expand_kwargs()``) against
the emulator; the listener of ``apache-airflow-providers-openlineage`` writes every event to a
file, and the test reads what a lineage backend would get: the archive in, the table out with
its columns, and the run's counts and credits. Mapped tasks are the case that used to emit no
dataset at all: ``.partial()`` passes ``outlets=[]`` to each unmapped operator, so there was
no outlet to fall back on. The fast tests check the facet builder without running a DAG.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow_runner import AirflowEnv, connection_json
from archives import write_good_scans
from emulator_checks import FAST_RETRIES

from airflow_provider_delix.core.table import SCHEMA, SCHEMA_VERSION, read_table
from airflow_provider_delix.operators._openlineage import (
    MAX_INPUT_DATASETS,
    RUN_FACET_KEY,
    input_namings,
    naming,
)
from airflow_provider_delix.operators.document_extraction import DocumentExtractionOperator
from airflow_provider_delix.operators.image_extraction import ImageExtractionOperator

pytestmark = pytest.mark.timeout(300)

SCHEMA_FIELDS = [(f.name, str(f.type)) for f in SCHEMA]


def test_naming_follows_the_openlineage_spec() -> None:
    assert naming("/data/scans") == ("file", "/data/scans")
    assert naming("/data/scans/") == ("file", "/data/scans")
    assert naming("/data/scans/**/*.png") == ("file", "/data/scans")
    assert naming("file:///data/table") == ("file", "/data/table")
    assert naming("s3://bucket/scans/2024-*/p.png") == ("s3://bucket", "scans")
    assert naming("s3://aws_conn@bucket/scans/") == ("s3://bucket", "scans"), "no conn id in a namespace"
    assert naming("s3a://bucket") == ("s3://bucket", "/")
    assert naming("gcs://bucket/a/b.pdf") == ("gs://bucket", "a/b.pdf")
    assert naming("abfss://box@acct.dfs.core.windows.net/x/") == ("abfss://acct.dfs.core.windows.net", "x")
    assert naming("s3://bucket-*/x.png") is None


def test_inputs_are_deduplicated_and_capped(tmp_path: Path) -> None:
    items = [str(tmp_path / "a"), f"{tmp_path}/a/", f"{tmp_path}/a/*.png", "s3://b/k", b"/raw/\xff"]
    namings, omitted = input_namings(items)
    assert namings == [("file", "/raw/\\xff"), ("file", str(tmp_path / "a")), ("s3://b", "k")]
    assert omitted == 0
    namings, omitted = input_namings([f"s3://b/{i:03d}.png" for i in range(MAX_INPUT_DATASETS + 7)])
    assert len(namings) == MAX_INPUT_DATASETS and omitted == 7
    assert input_namings(tmp_path / "one.pdf") == ([("file", str(tmp_path / "one.pdf"))], 0)


def test_facets_from_a_manifest_without_a_dag() -> None:
    from openlineage.client.serde import Serde

    operator = DocumentExtractionOperator(
        task_id="pdfs", documents=["s3://archive/pdfs/", "s3://archive/more/*.pdf"], output_path="s3://wh/t"
    )
    manifest = {
        "counts": {"processed": 7, "failed": 1, "rejected": 0, "invalid": 2},
        "pages_total": 12,
        "pages_resumed": 2,
        "pages_in_doubt": 1,
        "credits_at_risk": 200,
        "credits_charged": 1600,
        "credits_refunded": 200,
    }
    lineage = operator.get_openlineage_facets_on_complete(task_instance=None)
    assert lineage.run_facets[RUN_FACET_KEY].rows is None, "no manifest kept: no counts invented"
    operator._lineage_manifest = manifest
    lineage = operator.get_openlineage_facets_on_complete(task_instance=None)
    assert [(d.namespace, d.name) for d in lineage.inputs] == [
        ("s3://archive", "more"),
        ("s3://archive", "pdfs"),
    ]
    (table,) = lineage.outputs
    assert (table.namespace, table.name) == ("s3://wh", "t")
    assert [(f.name, f.type) for f in table.facets["schema"].fields] == SCHEMA_FIELDS
    assert table.facets["schema"].fields[0].description
    assert table.outputFacets["outputStatistics"].rowCount == 10
    event = json.loads(Serde.to_json(lineage.run_facets[RUN_FACET_KEY]))
    assert event == {
        "_producer": event["_producer"],
        "_schemaURL": event["_schemaURL"],
        "kind": "documents",
        "engine": "auto",
        "language": "fa",
        "schemaVersion": SCHEMA_VERSION,
        "rows": manifest["counts"],
        "pagesTotal": 12,
        "pagesResumed": 2,
        "pagesInDoubt": 1,
        "creditsAtRisk": 200,
        "creditsCharged": 1600,
        "creditsRefunded": 200,
        "inputsOmitted": 0,
    }
    start = operator.get_openlineage_facets_on_start()
    assert start.outputs[0].facets["schema"] and not start.outputs[0].outputFacets


def test_an_unmapped_instance_has_no_outlet_but_the_listener_gets_its_datasets(tmp_path: Path) -> None:
    # What a worker runs for one map index: .partial() hands outlets=[] to every instance, so
    # Airflow's outlet fallback had nothing to report. The listener's own extractor manager
    # now finds the operator's methods (the path it takes for every task instance).
    import pendulum
    from airflow.providers.common.compat.sdk import DAG
    from airflow.providers.openlineage.extractors.manager import ExtractorManager
    from airflow.utils.state import TaskInstanceState

    batch = {"images": str(tmp_path / "b"), "output_path": str(tmp_path / "out_b")}
    with DAG("unmap", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
        mapped = ImageExtractionOperator.partial(task_id="ocr").expand_kwargs([batch])
    instance = mapped.unmap(batch)
    assert instance.outlets == []
    instance._lineage_manifest = {"counts": {"processed": 3}, "pages_total": 3, "credits_charged": 600}
    dagrun = SimpleNamespace(run_id="manual")
    for state, rows in ((TaskInstanceState.RUNNING, None), (TaskInstanceState.SUCCESS, {"processed": 3})):
        lineage = ExtractorManager().extract_metadata(
            dagrun=dagrun, task=instance, task_instance_state=state, task_instance=None
        )
        assert [(d.namespace, d.name) for d in lineage.inputs] == [("file", str(tmp_path / "b"))]
        assert [(d.namespace, d.name) for d in lineage.outputs] == [("file", str(tmp_path / "out_b"))]
        assert lineage.run_facets[RUN_FACET_KEY].rows == rows


def test_importing_the_operators_does_not_import_openlineage() -> None:
    code = (
        "import sys\n"
        "import airflow_provider_delix.operators.image_extraction\n"
        "import airflow_provider_delix.operators.document_extraction\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'openlineage'"
        " or m.startswith(('airflow.providers.openlineage.', 'airflow_provider_delix.operators._openl'))"
        " and not m.endswith('get_provider_info')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


DAG = """
import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_delix.operators.image_extraction import ImageExtractionOperator

with DAG("lineage", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False) as dag:
    ImageExtractionOperator(
        task_id="plain", images={glob!r}, output_path={plain!r}, max_failed_ratio=None, retries=0
    )
    ImageExtractionOperator.partial(task_id="mapped", max_failed_ratio=None, retries=0).expand_kwargs(
        {batches!r}
    )
"""


def _events(path: Path, job: str, event_type: str) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [e for e in events if e["job"]["name"] == job and e["eventType"] == event_type]


def _named(datasets: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in datasets]


def _assert_table(dataset: dict[str, Any], table: Path, rows: int) -> None:
    assert _named([dataset]) == [("file", str(table))]
    assert [(f["name"], f["type"]) for f in dataset["facets"]["schema"]["fields"]] == SCHEMA_FIELDS
    assert dataset["outputFacets"]["outputStatistics"]["rowCount"] == rows


def _assert_run(event: dict[str, Any], table: Path, pages: int) -> None:
    facet = event["run"]["facets"][RUN_FACET_KEY]
    charged = int(read_table(str(table))["credits_charged"].sum())
    assert facet["rows"] == {"processed": pages, "failed": 0, "rejected": 0, "invalid": 0}
    assert (facet["pagesTotal"], facet["pagesResumed"], facet["pagesInDoubt"]) == (pages, 0, 0)
    assert facet["creditsCharged"] == charged > 0 and facet["creditsRefunded"] == 0
    assert (facet["kind"], facet["engine"], facet["language"]) == ("images", "danlin", "fa")


def test_plain_and_mapped_tasks_emit_their_datasets_and_counts(
    airflow_env: AirflowEnv, emulator: Any, tmp_path: Path
) -> None:
    for folder, count in (("a", 2), ("b", 2), ("c", 1)):
        write_good_scans(tmp_path / folder, count)
    plain, out_b, out_c = tmp_path / "plain", tmp_path / "out_b", tmp_path / "out_c"
    scan = str(tmp_path / "c" / "scan-0000.png")
    batches = [
        {"images": str(tmp_path / "b"), "output_path": str(out_b)},
        {"images": [scan, scan], "output_path": str(out_c)},
    ]
    source = DAG.format(glob=f"{tmp_path}/a/*.png", plain=str(plain), batches=batches)
    dag_file = airflow_env.write_dag("lineage", source)
    log_file = tmp_path / "openlineage.jsonl"
    transport = {"type": "file", "log_file_path": str(log_file), "append": True}
    state, log = airflow_env.run(
        dag_file,
        AIRFLOW_CONN_DELIX_DEFAULT=connection_json(emulator, **FAST_RETRIES),
        AIRFLOW__OPENLINEAGE__TRANSPORT=json.dumps(transport),
        AIRFLOW__OPENLINEAGE__NAMESPACE="delix-tests",
    )
    assert state == "success", log[-6000:]
    assert log_file.exists(), log[-6000:]

    (start,) = _events(log_file, "lineage.plain", "START")
    assert _named(start["inputs"]) == [("file", str(tmp_path / "a"))], "a glob stands for its folder"
    assert _named(start["outputs"]) == [("file", str(plain))]
    (done,) = _events(log_file, "lineage.plain", "COMPLETE")
    assert _named(done["inputs"]) == [("file", str(tmp_path / "a"))]
    (table,) = done["outputs"]
    _assert_table(table, plain, rows=2)
    _assert_run(done, plain, pages=2)

    mapped = _events(log_file, "lineage.mapped", "COMPLETE")
    assert len(mapped) == 2, "one COMPLETE per map index"
    by_output = {event["outputs"][0]["name"]: event for event in mapped}
    assert set(by_output) == {str(out_b), str(out_c)}
    assert len({event["run"]["runId"] for event in mapped}) == 2
    assert _named(by_output[str(out_b)]["inputs"]) == [("file", str(tmp_path / "b"))]
    assert _named(by_output[str(out_c)]["inputs"]) == [("file", scan)], "one dataset per distinct item"
    for table_path, pages in ((out_b, 2), (out_c, 1)):
        event = by_output[str(table_path)]
        _assert_table(event["outputs"][0], table_path, rows=pages)
        _assert_run(event, table_path, pages=pages)
