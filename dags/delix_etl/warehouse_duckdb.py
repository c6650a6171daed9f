"""The embedded default warehouse: a DuckDB file beside the Parquet table.

Why DuckDB: no server, one file (``<output_root>/warehouse.duckdb``), SQL that analysts know,
and it reads Arrow without copying. A DuckDB file has one writer at a time, which suits a
daily DAG (load, then report); use PostgreSQL when many processes must write at once.
"""

# ruff: noqa: S608  (SQL is built only from the module constants TABLE and COLUMNS; values are bound)
from __future__ import annotations

import time
from pathlib import Path

import duckdb
import pyarrow as pa

from delix_etl.warehouse import COLUMNS, TABLE, LoadResult, as_date, create_table_sql

DATABASE_FILE = "warehouse.duckdb"


def database_path(output_root: str) -> str:
    """``<output_root>/warehouse.duckdb`` (DuckDB needs a local file, not an object-store URI)."""
    if "://" in output_root and not output_root.startswith("file://"):
        raise ValueError(
            f"DuckDB needs a local output_root for {DATABASE_FILE}, got {output_root!r}; "
            "use warehouse='postgres' with object storage"
        )
    return str(Path(output_root.removeprefix("file://")) / DATABASE_FILE)


def load_date(db_path: str, pages: pa.Table, logical_date: str) -> LoadResult:
    """Replace ``logical_date``'s rows with ``pages``, in one transaction.

    A crash between the delete and the insert rolls back, so a date is never half loaded; a
    re-run deletes what the first run inserted, so rows are never duplicated.
    """
    started = time.monotonic()
    day = as_date(logical_date)
    Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    source_columns = ", ".join(COLUMNS[:-1])
    with duckdb.connect(db_path) as con:
        con.execute(create_table_sql())
        con.register("incoming_pages", pages)
        con.begin()
        try:
            replaced = _count(con, day)
            con.execute(f"DELETE FROM {TABLE} WHERE logical_date = ?", [day])
            con.execute(
                f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) "
                f"SELECT {source_columns}, ?::DATE FROM incoming_pages",
                [day],
            )
            con.commit()
        except BaseException:
            con.rollback()
            raise
        rows = _count(con, day)
    seconds = round(time.monotonic() - started, 3)
    return LoadResult("duckdb", db_path, day.isoformat(), rows, replaced, seconds)


def _count(con: duckdb.DuckDBPyConnection, day: object) -> int:
    found = con.execute(f"SELECT count(*) FROM {TABLE} WHERE logical_date = ?", [day]).fetchone()
    return int(found[0]) if found else 0
