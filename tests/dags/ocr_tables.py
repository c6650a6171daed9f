"""Small OCR tables for the warehouse and report tests, written the way the operator writes them."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from airflow_provider_delix.core.table import PageRow, RowStatus, rows_to_record_batch

T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


def sample_rows() -> list[PageRow]:
    """Every status, both languages, a multi-page file, a converted page and a ZWNJ word."""
    return [
        PageRow("a/fa/1.png", "s1", 1, RowStatus.PROCESSED, text="می‌بارید باران", language="fa",
                engine="danlin", credits_charged=200, processed_at=T0),
        PageRow("a/fa/2.tif", "s2", 1, RowStatus.PROCESSED, text="صفحه یک", language="fa",
                normalization="tiff_page->png", credits_charged=200, processed_at=T0),
        PageRow("a/fa/2.tif", "s2", 2, RowStatus.FAILED, error="OCR_FAILED", error_message="خطا",
                language="fa", credits_charged=200, credits_refunded=200, processed_at=T0),
        PageRow("a/en/1.png", "s3", 1, RowStatus.PROCESSED, text="Hello\nworld", language="en",
                credits_charged=200, processed_at=T0),
        PageRow("a/en/bad.png", "s4", 1, RowStatus.INVALID, error="corrupt_image",
                error_message="the PNG does not decode", language="en", processed_at=T0),
        PageRow("a/en/big.png", "s5", 1, RowStatus.REJECTED, error="BAD_INPUT", error_message="too big",
                language="en", processed_at=T0),
    ]  # fmt: skip


def write_table(path: Path, rows: list[PageRow]) -> str:
    """One Parquet part file under ``path`` (a new part per call, like another writer)."""
    path.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_batches([rows_to_record_batch(rows)])
    pq.write_table(table, path / f"part-{uuid.uuid4().hex}.parquet")
    return str(path)
