"""The loads into DuckDB and a real PostgreSQL: one transaction per date, re-runs never duplicate."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from delix_etl import warehouse_duckdb, warehouse_postgres
from delix_etl.warehouse import COLUMNS, create_table_sql, read_pages
from ocr_tables import T0, sample_rows, write_table

from airflow_provider_delix.core.table import SCHEMA


def _duck_counts(db: str) -> dict[str, int]:
    with duckdb.connect(db, read_only=True) as con:
        rows = con.execute("SELECT logical_date::VARCHAR, count(*) FROM ocr_pages GROUP BY 1").fetchall()
    return {day: n for day, n in rows}


def test_read_pages_keeps_one_row_per_page_newest_first(tmp_path: Path) -> None:
    rows = sample_rows()
    table = write_table(tmp_path / "t", rows)
    newer = dataclasses.replace(rows[0], text="newer", processed_at=T0.replace(hour=13))
    write_table(tmp_path / "t", [newer])  # the same page stored twice (adopted journals)
    pages = read_pages(table)
    assert pages.schema == SCHEMA
    assert pages.num_rows == len(rows)
    texts = dict(zip(pages.column("source").to_pylist(), pages.column("text").to_pylist(), strict=False))
    assert texts["a/fa/1.png"] == "newer"


def test_read_pages_of_missing_table_is_empty(tmp_path: Path) -> None:
    assert read_pages(str(tmp_path / "nothing")).num_rows == 0


def test_table_ddl_matches_parquet_schema() -> None:
    sql = create_table_sql()
    for name in COLUMNS:
        assert f"\n    {name} " in sql
    assert "source TEXT NOT NULL" in sql and "processed_at TIMESTAMPTZ NOT NULL" in sql
    assert "logical_date DATE NOT NULL" in sql


def test_duckdb_rerun_replaces_the_date_only(tmp_path: Path) -> None:
    db = warehouse_duckdb.database_path(str(tmp_path))
    pages = read_pages(write_table(tmp_path / "ocr", sample_rows()))
    first = warehouse_duckdb.load_date(db, pages, "2025-03-01")
    warehouse_duckdb.load_date(db, pages.slice(0, 2), "2025-03-02")
    again = warehouse_duckdb.load_date(db, pages, "2025-03-01")
    assert (first.rows, first.replaced) == (6, 0)
    assert (again.rows, again.replaced) == (6, 6)
    assert _duck_counts(db) == {"2025-03-01": 6, "2025-03-02": 2}
    with duckdb.connect(db, read_only=True) as con:
        text, at = con.execute("SELECT text, epoch(processed_at) FROM ocr_pages WHERE source = 'a/fa/1.png' "
                               "AND logical_date = DATE '2025-03-01'").fetchone()  # fmt: skip
    assert text == "می‌بارید باران" and at == T0.timestamp()  # (epoch: fetching TIMESTAMPTZ needs pytz)


def test_duckdb_failed_insert_rolls_back_the_delete(tmp_path: Path) -> None:
    db = warehouse_duckdb.database_path(str(tmp_path))
    pages = read_pages(write_table(tmp_path / "ocr", sample_rows()))
    warehouse_duckdb.load_date(db, pages, "2025-03-01")
    broken = pages.drop(["text"])  # the INSERT fails after the DELETE ran
    with pytest.raises(duckdb.Error):
        warehouse_duckdb.load_date(db, broken, "2025-03-01")
    assert _duck_counts(db) == {"2025-03-01": 6}


def test_duckdb_refuses_object_storage_root() -> None:
    with pytest.raises(ValueError, match="postgres"):
        warehouse_duckdb.database_path("s3://bucket/delix")
    assert warehouse_duckdb.database_path("file:///data/delix") == "/data/delix/warehouse.duckdb"


def _pg_counts(conn: Any) -> dict[str, int]:
    with conn.cursor() as cur:
        cur.execute("SELECT logical_date::TEXT, count(*) FROM ocr_pages GROUP BY 1")
        return {day: n for day, n in cur.fetchall()}


def test_postgres_rerun_replaces_the_date_only(pg_conn: Any, tmp_path: Path) -> None:
    pages = read_pages(write_table(tmp_path / "ocr", sample_rows()))
    first = warehouse_postgres.load_date(pg_conn, pages, "2025-03-01")
    warehouse_postgres.load_date(pg_conn, pages.slice(0, 2), "2025-03-02")
    again = warehouse_postgres.load_date(pg_conn, pages, "2025-03-01")
    assert (first.rows, first.replaced, again.rows, again.replaced) == (6, 0, 6, 6)
    assert _pg_counts(pg_conn) == {"2025-03-01": 6, "2025-03-02": 2}
    with pg_conn.cursor() as cur:
        cur.execute("SELECT text, processed_at, credits_refunded FROM ocr_pages WHERE source = 'a/fa/2.tif' "
                    "AND page_number = 2 AND logical_date = '2025-03-01'")  # fmt: skip
        assert cur.fetchone() == (None, T0, 200)
        cur.execute("SELECT text FROM ocr_pages WHERE source = 'a/fa/1.png' LIMIT 1")
        assert cur.fetchone() == ("می‌بارید باران",)


def test_postgres_batches_and_rollback(pg_conn: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(warehouse_postgres, "BATCH_ROWS", 4)  # 6 rows: two INSERT statements
    pages = read_pages(write_table(tmp_path / "ocr", sample_rows()))
    warehouse_postgres.load_date(pg_conn, pages, "2025-03-01")
    assert _pg_counts(pg_conn) == {"2025-03-01": 6}
    # A NULL in a NOT NULL column makes the second batch fail: the delete and first batch roll back.
    bad = pages.set_column(0, SCHEMA.field("source").with_nullable(True),
                           pa.array(["x"] * 5 + [None], pa.string()))  # fmt: skip
    with pytest.raises(Exception, match="null value"):
        warehouse_postgres.load_date(pg_conn, bad, "2025-03-01")
    assert _pg_counts(pg_conn) == {"2025-03-01": 6}


def test_postgres_connection_through_airflow_connection(
    postgres: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"postgresql://{postgres['user']}@{postgres['host']}:{postgres['port']}/{postgres['dbname']}"
    monkeypatch.setenv("AIRFLOW_CONN_DELIX_TEST_PG", uri)
    conn = warehouse_postgres.connect("delix_test_pg")
    try:
        pages = read_pages(write_table(tmp_path / "ocr", sample_rows()))
        result = warehouse_postgres.load_date(conn, pages, "2031-01-01", location="delix_test_pg")
        assert (result.warehouse, result.location, result.rows) == ("postgres", "delix_test_pg", 6)
        with conn.cursor() as cur:
            cur.execute("DELETE FROM ocr_pages WHERE logical_date = '2031-01-01'")
        conn.commit()
    finally:
        conn.close()
