"""``storage_conn_id`` / ``storage_options`` at parse time and in the operator layer (no DAG run).

Runs on Airflow 2.11 and 3: the connection comes from an ``AIRFLOW_CONN_...`` variable, and the
filesystem is built by the Amazon provider exactly as for ``ObjectStoragePath``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_delix.core.fspath import FsPath
from airflow_provider_delix.operators._storage import with_connection
from airflow_provider_delix.operators.document_extraction import DocumentExtractionOperator
from airflow_provider_delix.operators.image_extraction import ImageExtractionOperator, output_uri


@pytest.fixture
def aws_conn(monkeypatch: pytest.MonkeyPatch) -> str:
    conn = {
        "conn_type": "aws",
        "login": "unit-key",
        "password": "unit-secret",
        "extra": {"endpoint_url": "http://127.0.0.1:9", "region_name": "us-east-1"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_UNIT_S3", json.dumps(conn))
    return "unit_s3"


@pytest.mark.parametrize("operator", [ImageExtractionOperator, DocumentExtractionOperator])
def test_storage_arguments_are_templated_and_not_both(operator: Any) -> None:
    field = "images" if operator is ImageExtractionOperator else "documents"
    op = operator(task_id="t", output_path="s3://b/t", storage_conn_id="s3", **{field: "s3://b/x/"})
    assert {"storage_conn_id", "storage_options"} <= set(op.template_fields)
    with pytest.raises(ValueError, match="storage_conn_id or storage_options, not both"):
        operator(
            task_id="t",
            output_path="/t",
            storage_conn_id="s3",
            storage_options={"anon": True},
            **{field: "x"},
        )


def test_rendered_storage_options_reach_the_run_and_never_its_repr() -> None:
    op = ImageExtractionOperator(
        task_id="t", images="x", output_path="/t", storage_options={"secret": "{{ s }}"}
    )
    op.storage_options = {"secret": "rendered-secret"}  # what rendering the template field does
    options = op._run_options()
    assert options.storage_options == {"secret": "rendered-secret"}
    assert "rendered-secret" not in repr(options)


def test_string_uris_get_the_connections_filesystem(aws_conn: str) -> None:
    inputs = with_connection(["s3://scans/a/", "/local/b.png", "file:///c.png"], aws_conn)
    remote, local, file_uri = inputs
    assert isinstance(remote, FsPath) and (remote.path, remote.uri) == ("scans/a", "s3://scans/a/")
    assert remote.fs.endpoint_url == "http://127.0.0.1:9", "the endpoint from the connection's extra"
    assert (local, file_uri) == ("/local/b.png", "file:///c.png"), "local paths are left alone"
    output = with_connection("s3://tables/t", aws_conn)
    assert output.fs is remote.fs, "one filesystem per connection"
    assert with_connection("s3://tables/t", None) == "s3://tables/t"


def test_an_object_storage_path_names_its_connection_and_the_outlet_does_not(aws_conn: str) -> None:
    path = ObjectStoragePath(f"s3://{aws_conn}@tables/ocr")
    assert output_uri(path) == "s3://tables/ocr"
    op = ImageExtractionOperator(task_id="t", images="x", output_path=path)
    assert [o.uri for o in op.outlets] == ["s3://tables/ocr"]
    assert with_connection(path, aws_conn) is path, "an ObjectStoragePath keeps its own connection"


def test_an_unknown_storage_connection_fails_by_name() -> None:
    with pytest.raises(Exception, match="no_such_s3"):
        with_connection("s3://scans/a/", "no_such_s3")
