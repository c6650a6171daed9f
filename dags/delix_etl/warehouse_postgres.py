"""The PostgreSQL alternative: the same table and load, through the common.sql provider.

Select it with the ETL DAG's ``warehouse="postgres"`` param; ``postgres_conn_id`` names an
Airflow connection of type ``postgres``. The load works on any DB-API connection that uses
``%s`` placeholders (psycopg2 or psycopg 3), so tests can hand it a plain connection.
"""

# ruff: noqa: S608  (SQL is built only from the module constants TABLE and COLUMNS; values are bound)
from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from delix_etl.warehouse import COLUMNS, TABLE, LoadResult, as_date, create_table_sql

BATCH_ROWS = 500  # rows per multi-row INSERT: few round trips, statements well under limits


def connect(postgres_conn_id: str) -> Any:
    """A DB-API connection from an Airflow ``postgres`` connection (``PostgresHook``)."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    return PostgresHook(postgres_conn_id=postgres_conn_id).get_conn()


def load_date(conn: Any, pages: pa.Table, logical_date: str, *, location: str = "postgres") -> LoadResult:
    """Replace ``logical_date``'s rows with ``pages`` in one transaction (committed here).

    Why the advisory lock: under READ COMMITTED two loads of the same date running at once
    could both delete nothing and both insert; the per-date lock serialises them, so a date
    is never doubled even by a concurrent re-run. Other dates load in parallel.
    """
    started = time.monotonic()
    day = as_date(logical_date)
    cur = conn.cursor()
    try:
        cur.execute(create_table_sql())
        cur.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_logical_date ON {TABLE} (logical_date)")
        conn.commit()
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"{TABLE}:{day.isoformat()}"])
        cur.execute(f"DELETE FROM {TABLE} WHERE logical_date = %s", [day])
        replaced = cur.rowcount
        for batch in _batches(pages, day):
            values = ", ".join(["(" + ", ".join(["%s"] * len(COLUMNS)) + ")"] * (len(batch) // len(COLUMNS)))
            cur.execute(f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES {values}", batch)
        cur.execute(f"SELECT count(*) FROM {TABLE} WHERE logical_date = %s", [day])
        rows = int(cur.fetchone()[0])
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        cur.close()
    seconds = round(time.monotonic() - started, 3)
    return LoadResult("postgres", location, day.isoformat(), rows, replaced, seconds)


def _batches(pages: pa.Table, day: object) -> Iterator[list[Any]]:
    """Flat parameter lists of up to BATCH_ROWS rows (Python values: str, int, datetime, None)."""
    for record_batch in pages.to_batches(max_chunksize=BATCH_ROWS):
        flat: list[Any] = []
        for row in record_batch.to_pylist():
            flat.extend(row[name] for name in COLUMNS[:-1])
            flat.append(day)
        if flat:
            yield flat
