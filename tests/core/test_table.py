"""The table schema is a contract with every downstream reader: these tests pin it exactly."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from dataclasses import fields

import pyarrow as pa
import pytest

from airflow_provider_delix.core.table import (
    COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    PageRow,
    RowStatus,
    read_table,
    rows_to_record_batch,
    source_text,
    split_credits,
)

EXPECTED = [
    ("source", pa.string(), False),
    ("source_sha256", pa.string(), True),
    ("page_number", pa.int32(), False),
    ("status", pa.string(), False),
    ("text", pa.string(), True),
    ("error", pa.string(), True),
    ("error_message", pa.string(), True),
    ("file_uuid", pa.string(), True),
    ("extract_uuid", pa.string(), True),
    ("engine", pa.string(), True),
    ("language", pa.string(), True),
    ("normalization", pa.string(), True),
    ("credits_charged", pa.int32(), False),
    ("credits_refunded", pa.int32(), False),
    ("processed_at", pa.timestamp("us", tz="UTC"), False),
    ("run_id", pa.string(), True),
]


def test_schema_names_types_order_and_nullability_are_pinned() -> None:
    assert [(f.name, f.type, f.nullable) for f in SCHEMA] == EXPECTED
    assert SCHEMA_VERSION == 1
    assert SCHEMA.metadata[b"delix.schema_version"] == b"1"
    assert all(f.metadata and f.metadata[b"description"] for f in SCHEMA)


def test_pagerow_fields_follow_schema_order() -> None:
    assert tuple(f.name for f in fields(PageRow)) == COLUMNS


def test_row_status_values() -> None:
    assert [s.value for s in RowStatus] == ["processed", "failed", "rejected", "invalid"]


def _rows() -> list[PageRow]:
    at = dt.datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=dt.UTC)
    return [
        PageRow(
            source=os.fsdecode(b"scans/\xd9\x86\xd8\xa7\xd9\x85\xd9\x87-\xff.png"),
            source_sha256="a" * 64,
            page_number=1,
            status=RowStatus.PROCESSED,
            text="سلام دنیا\nخط دوم",
            file_uuid="f-1",
            extract_uuid="e-1",
            engine="danlin",
            language="fa",
            normalization="tiff->png",
            credits_charged=200,
            processed_at=at,
            run_id="manual__1:try1",
        ),
        PageRow(
            source="book.pdf",
            source_sha256="b" * 64,
            page_number=7,
            status="failed",  # type: ignore[arg-type]  # plain strings are accepted and coerced
            error="BAD_INPUT",
            error_message="فایل قابل پردازش نیست",
            credits_charged=100,
            credits_refunded=100,
            processed_at=at,
        ),
        PageRow(
            source="x.gif",
            source_sha256=None,
            page_number=1,
            status=RowStatus.INVALID,
            error="UNSUPPORTED_TYPE",
            processed_at=at,
        ),
    ]


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_rows_round_trip_through_read_table(kind: str, tmp_path: os.PathLike[str]) -> None:
    import pyarrow.parquet as pq

    from airflow_provider_delix.core.table import open_output

    out = f"{tmp_path}/out" if kind == "local" else f"memory://rt-{uuid.uuid4().hex}"
    fs, path = open_output(out)
    fs.makedirs(path, exist_ok=True)
    with fs.open(f"{path}/part-x-00000.parquet", "wb") as handle:
        pq.write_table(pa.Table.from_batches([rows_to_record_batch(_rows())]), handle)

    frame = read_table(out)
    assert list(frame.columns) == list(COLUMNS)
    got = frame.to_dict("records")
    assert got[0]["source"] == "scans/نامه-\\xff.png"
    assert got[0]["text"] == "سلام دنیا\nخط دوم"
    assert got[0]["processed_at"].to_pydatetime() == _rows()[0].processed_at
    assert got[1]["status"] == "failed" and got[1]["error_message"] == "فایل قابل پردازش نیست"
    assert got[1]["credits_refunded"] == 100
    assert got[2]["source_sha256"] != got[2]["source_sha256"]  # null comes back as NaN
    assert list(read_table(out, columns=["page_number"])["page_number"]) == [1, 7, 1]


def test_read_table_without_anything_written_gives_typed_empty_frame() -> None:
    frame = read_table(f"memory://nothing-{uuid.uuid4().hex}")
    assert list(frame.columns) == list(COLUMNS) and len(frame) == 0
    assert str(frame["page_number"].dtype) == "int32"
    assert str(frame["processed_at"].dtype) == "datetime64[us, UTC]"
    with pytest.raises(ValueError, match="Unknown columns"):
        read_table("memory://nothing", columns=["nope"])


def test_record_batch_keeps_types_for_empty_and_all_null_columns() -> None:
    assert rows_to_record_batch([]).schema == SCHEMA
    batch = rows_to_record_batch(_rows()[1:])  # no text at all
    assert batch.schema == SCHEMA and batch.column("text").null_count == 2


def test_lone_surrogates_in_any_text_column_are_escaped_not_fatal() -> None:
    row = _rows()[0]
    row.text = "bad \ud800 json"
    assert rows_to_record_batch([row]).column("text")[0].as_py() == "bad \\ud800 json"


def test_source_text() -> None:
    assert source_text("plain.png") == "plain.png"
    assert source_text("نامه.png") == "نامه.png"
    assert source_text(b"a\xffb") == "a\\xffb"
    assert source_text(os.fsdecode(b"a\xffb")) == "a\\xffb"


def test_split_credits_sums_to_total() -> None:
    assert split_credits(1000, 3) == [334, 333, 333]
    assert sum(split_credits(997, 7)) == 997
    assert split_credits(5, 0) == []


def test_pagerow_rejects_programming_errors() -> None:
    with pytest.raises(ValueError):
        PageRow(source="a", source_sha256="s", page_number=0, status=RowStatus.PROCESSED)
    with pytest.raises(ValueError):
        PageRow(source="a", source_sha256="s", page_number=1, status="done")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        PageRow(
            source="a",
            source_sha256="s",
            page_number=1,
            status=RowStatus.PROCESSED,
            processed_at=dt.datetime(2024, 1, 1),
        )  # naive on purpose
