"""RunManifest: small, JSON-serialisable, never carries texts, counts right from several threads."""

from __future__ import annotations

import json
import threading

from airflow_provider_delix.core.manifest import RunManifest
from airflow_provider_delix.core.table import SCHEMA_VERSION, PageRow, RowStatus


def _row(status: RowStatus, charged: int = 0, refunded: int = 0) -> PageRow:
    return PageRow(
        source="a.png",
        source_sha256="s",
        page_number=1,
        status=status,
        text="متن محرمانه" if status is RowStatus.PROCESSED else None,
        credits_charged=charged,
        credits_refunded=refunded,
    )


def test_to_dict_is_json_and_has_every_key_and_no_text() -> None:
    manifest = RunManifest(output_uri="s3://bucket/ocr")
    manifest.add_rows(
        [_row(RowStatus.PROCESSED, 200), _row(RowStatus.FAILED, 200, 200), _row(RowStatus.INVALID)]
    )
    manifest.add_resumed(10)
    manifest.count_request("POST /files")
    manifest.count_request("POST /image-extraction", 2)
    data = json.loads(json.dumps(manifest.finish().to_dict()))
    assert data == {
        "output_uri": "s3://bucket/ocr",
        "counts": {"processed": 1, "failed": 1, "rejected": 0, "invalid": 1},
        "pages_total": 13,
        "pages_resumed": 10,
        "credits_charged": 400,
        "credits_refunded": 200,
        "requests": {"POST /files": 1, "POST /image-extraction": 2},
        "elapsed_seconds": data["elapsed_seconds"],
        "schema_version": SCHEMA_VERSION,
    }
    assert data["elapsed_seconds"] >= 0
    assert "متن" not in json.dumps(data, ensure_ascii=False)
    assert manifest.credits_net == 200


def test_round_trip_through_dict() -> None:
    manifest = RunManifest(output_uri="memory://x")
    manifest.add_rows([_row(RowStatus.REJECTED)])
    again = RunManifest.from_dict(manifest.to_dict())
    assert again.to_dict() == manifest.to_dict()


def test_counts_from_threads_add_up() -> None:
    manifest = RunManifest(output_uri="memory://x")

    def work() -> None:
        for _ in range(500):
            manifest.add_rows([_row(RowStatus.PROCESSED, 1)])
            manifest.count_request("POST /files")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (
        manifest.counts["processed"] == 4000 == manifest.credits_charged == manifest.requests["POST /files"]
    )
