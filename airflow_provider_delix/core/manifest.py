"""The XCom manifest of a run: small, JSON, never a text.

Built from the pipeline's :class:`PipelineSummary` so there is one source of truth for what
a run did. XCom lives in the metadata database: the table itself, and so every OCR text,
stays in ``output_uri``.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_delix.core.summary import PipelineSummary
from airflow_provider_delix.core.table import SCHEMA_VERSION

MAX_LISTED_UUIDS = 20


def build_manifest(output_uri: str, summary: PipelineSummary) -> dict[str, Any]:
    """Output URI, counts by status, credits, requests, timings: what a downstream task needs."""
    data = summary.to_dict()
    rows = data.pop("rows")
    undeleted = data.pop("undeleted_uuids")
    data["unclaimed_files"] = data["unclaimed_files"][:MAX_LISTED_UUIDS]
    data["held_files"] = len(data["held_file_uuids"])
    data["held_file_uuids"] = data["held_file_uuids"][:MAX_LISTED_UUIDS]
    data["held_extracts"] = data["held_extracts"][:MAX_LISTED_UUIDS]
    return {
        "output_uri": output_uri,
        "schema_version": SCHEMA_VERSION,
        "counts": rows,
        **data,
        "undeleted_files": len(undeleted),
        "undeleted_uuids": undeleted[:MAX_LISTED_UUIDS],
    }
