"""Per-language text summary over every date of the OCR table (the downstream DAG's work).

Why streaming: the table root holds every date's pages and grows without bound, so it is read
batch by batch (three columns, never the whole table) and summed as it goes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import fsspec
import pyarrow.compute as pc

from airflow_provider_delix.core.table import iter_batches


def language_summary(table_root: str, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``{language: {pages, processed, chars, chars_per_page}}`` over all dates under ``table_root``.

    ``pages`` counts every row in that language (failed ones too), ``processed`` the pages with
    text, ``chars`` their characters (Unicode code points, like SQL ``length``). Rows without a
    language are under ``"none"``.
    """
    totals: dict[str, dict[str, int]] = {}
    for batch in iter_batches(table_root, ["language", "status", "text"], storage_options=storage_options):
        languages = batch.column(0).to_pylist()
        processed = pc.equal(batch.column(1), "processed").to_pylist()
        lengths = pc.fill_null(pc.utf8_length(batch.column(2)), 0).to_pylist()
        for language, ok, length in zip(languages, processed, lengths, strict=True):
            entry = totals.setdefault(language or "none", {"pages": 0, "processed": 0, "chars": 0})
            entry["pages"] += 1
            entry["processed"] += int(bool(ok))
            entry["chars"] += int(length) if ok else 0
    for entry in totals.values():
        entry["chars_per_page"] = round(entry["chars"] / entry["processed"]) if entry["processed"] else 0
    return dict(sorted(totals.items()))


def write_json(
    summary: Mapping[str, Any], path: str, storage_options: Mapping[str, Any] | None = None
) -> str:
    """Write ``summary`` as UTF-8 JSON (Persian kept readable) to a local path or URI."""
    fs, bare = fsspec.core.url_to_fs(path, **dict(storage_options or {}))
    fs.makedirs(str(Path(bare).parent), exist_ok=True)
    with fs.open(bare, "w", encoding="utf-8") as out:
        out.write(json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
    return path
