"""What both warehouses share: the ``ocr_pages`` table definition and the rows of one date.

The warehouse table is the operator's Parquet table (docs/table.md) plus ``logical_date``, the
Airflow date whose run loaded the row. Loads replace one date at a time (delete that date's
rows, insert the new ones, in one transaction), which is what makes re-running a date safe:
the row count after a re-run is the row count after the first run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa

from airflow_provider_delix.core.table import SCHEMA, dataset

TABLE = "ocr_pages"
KEY = ["source", "source_sha256", "page_number"]

# Standard SQL types that DuckDB and PostgreSQL both spell this way.
_SQL_TYPES = {pa.string(): "TEXT", pa.int32(): "INTEGER", pa.timestamp("us", tz="UTC"): "TIMESTAMPTZ"}
COLUMNS: tuple[str, ...] = (*SCHEMA.names, "logical_date")


def create_table_sql(table: str = TABLE) -> str:
    """``CREATE TABLE IF NOT EXISTS`` with the Parquet schema's columns, types and NOT NULLs."""
    lines = [f"    {f.name} {_SQL_TYPES[f.type]}{'' if f.nullable else ' NOT NULL'}" for f in SCHEMA]
    lines.append("    logical_date DATE NOT NULL")
    return f"CREATE TABLE IF NOT EXISTS {table} (\n" + ",\n".join(lines) + "\n)"


def read_pages(table_path: str, storage_options: Mapping[str, Any] | None = None) -> pa.Table:
    """The rows of one date's Parquet table, one per page, typed exactly as :data:`SCHEMA`.

    Why deduplicate: the table is append-only and, in a rare corner (two attempts adopting the
    same dead writer's journals at the same instant, docs/table.md), a page can be stored
    twice. The warehouse wants one row per page, so the newest ``processed_at`` wins. The key
    includes ``source``: the same content under two names is two legitimate rows.
    """
    data = dataset(table_path, storage_options)
    if data is None:  # the OCR task wrote nothing (e.g. an empty daily prefix)
        return SCHEMA.empty_table()
    frame = data.to_table().to_pandas()
    frame = frame.sort_values("processed_at", kind="stable").drop_duplicates(KEY, keep="last")
    frame = frame.sort_values(["source", "page_number"], kind="stable")
    return pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False)


@dataclass(frozen=True)
class LoadResult:
    """What a load did, returned to XCom for the report (small: no rows)."""

    warehouse: str  # "duckdb" or "postgres"
    location: str  # the database file, or the connection id
    logical_date: str  # YYYY-MM-DD
    rows: int  # rows of this date now in the warehouse
    replaced: int  # rows of this date deleted first (0 on a first run)
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def as_date(value: str | dt.date) -> dt.date:
    """``ds`` arrives as ``YYYY-MM-DD`` text from templates; the warehouses want a date."""
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])
