"""ImageExtractionOperator at DAG-parse time: argument checks, outlets, templating (Airflow 2.11 and 3)."""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.sdk import Asset

from airflow_provider_delix.operators.image_extraction import ImageExtractionOperator, output_uri


def test_defaults_and_template_fields() -> None:
    op = ImageExtractionOperator(task_id="ocr", images="scans/*.png", output_path="s3://b/table/")
    assert op.delix_conn_id == "delix_default"
    assert op.options.engine == "danlin" and op.options.language == "fa"
    assert op.options.max_stored_files == 30 and op.options.max_stored_bytes == 100_000_000
    assert set(op.template_fields) >= {"images", "output_path", "delix_conn_id"}


def test_a_static_output_path_is_declared_as_the_outlet() -> None:
    op = ImageExtractionOperator(task_id="ocr", images=["a.png"], output_path="/data/ocr/table")
    assert [getattr(o, "uri", None) for o in op.outlets] == ["file:///data/ocr/table"]
    assert isinstance(op.outlets[0], Asset)
    templated = ImageExtractionOperator(task_id="t", images="x", output_path="/d/{{ ds }}")
    assert templated.outlets == []
    explicit = ImageExtractionOperator(
        task_id="e", images="x", output_path="/d/{{ ds }}", outlets=[Asset("file:///d")]
    )
    assert [o.uri for o in explicit.outlets] == ["file:///d"]


def test_output_uri() -> None:
    assert output_uri("s3://bucket/x/") == "s3://bucket/x"
    assert output_uri("/tmp/t") == "file:///tmp/t"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"engine": "probe"}, "probe"),
        ({"engine": "fast"}, "engine must be one of"),
        ({"language": "de"}, "fa, en, ar, tr"),
        ({"max_failed_ratio": 1.5}, "max_failed_ratio"),
        ({"max_stored_files": 31}, "between 1 and 30"),
        ({"max_stored_files": 0}, "between 1 and 30"),
        ({"max_stored_bytes": 200_000_000}, "100 MB"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"deferrable": True}, "only packed images"),
        ({"packing": "pdf", "deferrable": True, "retry_packed_failures": True}, "choose one of them"),
    ],
)
def test_bad_arguments_fail_when_the_dag_is_parsed(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ImageExtractionOperator(task_id="ocr", images="x", output_path="/t", **kwargs)  # type: ignore[arg-type]


def test_deferrable_follows_airflows_default_only_where_packs_can_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "true")
    plain = ImageExtractionOperator(task_id="a", images="x", output_path="/t")
    packed = ImageExtractionOperator(task_id="b", images="x", output_path="/t", packing="pdf")
    retried = ImageExtractionOperator(
        task_id="c", images="x", output_path="/t", packing="pdf", retry_packed_failures=True
    )
    assert (plain.options.deferrable, packed.options.deferrable, retried.options.deferrable) == (
        False,
        True,
        False,
    )


def test_the_operator_can_be_deep_copied() -> None:
    """Airflow copies operators (DAG.partial_subset, `airflow tasks clear` on Airflow 2): nothing
    made in the constructor may hold a lock."""
    import copy

    op = ImageExtractionOperator(task_id="ocr", images="scans/*.png", output_path="/d/t")
    clone = copy.deepcopy(op)
    assert clone.task_id == "ocr" and clone.options == op.options


def test_a_trigger_timeout_fails_the_try_instead_of_deferring_again(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.common.compat.sdk import AirflowException

    op = ImageExtractionOperator(task_id="ocr", images="scans/*.png", output_path="/d/t")
    runs: list[object] = []
    monkeypatch.setattr(op, "_extract", lambda context: runs.append(context) or {"ok": True})
    event = {
        "status": "timeout",
        "message": "Extract e1 still processing after 4 s.",
        "extract_uuids": ["e1"],
    }
    with pytest.raises(AirflowException, match=r"e1 still processing.*collects them without paying again"):
        op.execute_complete({}, event)  # type: ignore[arg-type]
    assert runs == []
    assert op.execute_complete({}, {"status": "error", "message": "gone"}) == {"ok": True}  # type: ignore[arg-type]
    assert op.execute_complete({}, {"status": "success"}) == {"ok": True}  # type: ignore[arg-type]
