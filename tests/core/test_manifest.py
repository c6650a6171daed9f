"""The XCom manifest stays small, JSON-serialisable and free of texts."""

from __future__ import annotations

import json

from airflow_provider_delix.core.manifest import MAX_LISTED_UUIDS, build_manifest
from airflow_provider_delix.core.summary import PipelineSummary
from airflow_provider_delix.core.table import SCHEMA_VERSION


def _summary(undeleted: int = 0, held: int = 0) -> PipelineSummary:
    return PipelineSummary(
        run_id="dag/run/task/try1",
        rows={"processed": 9, "failed": 1, "rejected": 0, "invalid": 2},
        pages_total=12,
        pages_resumed=0,
        pages_left=0,
        pages_reused=0,
        credits_charged=2000,
        credits_refunded=200,
        requests={"upload_files": 2, "extract_images": 2, "delete_file": 10},
        elapsed_seconds=3.25,
        peak_stored_files=10,
        peak_stored_bytes=12345,
        orphans_deleted=0,
        undeleted_uuids=[f"u{i}" for i in range(undeleted)],
        held_extracts=[f"x{i}" for i in range(held)],
        held_file_uuids=[f"h{i}" for i in range(held)],
    )


def test_manifest_fields_and_json() -> None:
    manifest = build_manifest("file:///data/table", _summary())
    assert manifest["output_uri"] == "file:///data/table"
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert manifest["counts"] == {"processed": 9, "failed": 1, "rejected": 0, "invalid": 2}
    assert manifest["credits_charged"] == 2000 and manifest["credits_refunded"] == 200
    assert manifest["requests"]["extract_images"] == 2 and manifest["elapsed_seconds"] == 3.25
    assert json.loads(json.dumps(manifest)) == manifest


def test_manifest_stays_small_whatever_is_left_behind() -> None:
    manifest = build_manifest("memory://t", _summary(undeleted=500, held=40))
    assert manifest["undeleted_files"] == 500
    assert len(manifest["undeleted_uuids"]) == MAX_LISTED_UUIDS
    assert manifest["held_files"] == 40 and len(manifest["held_file_uuids"]) == MAX_LISTED_UUIDS
    assert len(manifest["held_extracts"]) == MAX_LISTED_UUIDS
    assert len(json.dumps(manifest)) < 4096
