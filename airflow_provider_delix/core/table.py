"""The output table: one row per page, with an explicit Arrow schema that never depends on the data.

Why an explicit schema: the table is written in thousands of small pieces (one row group at a
time, part files from different runs and workers) and read back as one dataset. Inferring types
from each batch would let a batch whose ``text`` column is all null become ``null``-typed, or a
batch without failures drop the ``error`` type, and the parts would no longer concatenate. Every
part file is written with :data:`SCHEMA`, so ``pandas.read_parquet(output_path)`` always works.

Columns are described in ``docs/table.md``; :data:`SCHEMA_VERSION` is bumped on any change of
name, type, order or nullability (``tests/core/test_table.py`` pins all four).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import fsspec
import pyarrow as pa
import pyarrow.dataset as ds

from airflow_provider_delix.core.fspath import open_location

if TYPE_CHECKING:
    import pandas as pd

SCHEMA_VERSION = 1
# Where the table is: a local path, a URI, or an object with ``.fs`` and ``.path`` (core/fspath.py).
Location = Any


class RowStatus(StrEnum):
    """What happened to a page; every page of the archive ends up with exactly one of these."""

    PROCESSED = "processed"  # OCR succeeded; ``text`` holds the result
    FAILED = "failed"  # the extraction ran but this page failed; its credits were refunded
    REJECTED = "rejected"  # the API refused the file at upload (RejectedFile.reason in ``error``)
    INVALID = "invalid"  # our own validation refused the file before any call (no credits spent)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def source_text(name: str | bytes) -> str:
    r"""A path or archive member name as valid UTF-8 text, undecodable bytes written as ``\xNN``.

    Why: file names on POSIX and in ZIP/TAR archives are bytes. Python hands undecodable ones
    over as lone surrogates (``os.fsdecode``), which Arrow cannot store. ``\xNN`` keeps the name
    readable and stable; identity is carried by ``source_sha256`` anyway, not by the name.
    """
    if isinstance(name, bytes):
        return name.decode("utf-8", errors="backslashreplace")
    if name.isascii():
        return name
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        return name
    try:  # os.fsdecode's escapes (U+DC80..U+DCFF) go back to the original byte, shown as \xNN
        raw = name.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:  # other lone surrogates (e.g. from JSON) are shown as \uXXXX
        return name.encode("utf-8", errors="backslashreplace").decode("utf-8")
    return raw.decode("utf-8", errors="backslashreplace")


def resume_key(source_sha256: str | None, source: str, page_number: int) -> tuple[str, int]:
    """The key that says a page's row is stored: its content hash and page number.

    A source that could not be read has no hash; it is keyed by its name instead, so two
    different missing files never share one key (and a re-run does not repeat their row).
    """
    return (source_sha256 or f"source:{source}", page_number)


def split_credits(total: int, parts: int) -> list[int]:
    """Split an extraction's ``initial_cost`` over its pages so that the shares sum to ``total``.

    Why: the API charges per request, the table is per page; summing ``credits_charged`` over the
    table must give back exactly what was spent. Earlier pages get the remainder.
    """
    if parts <= 0:
        return []
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


@dataclass(slots=True)
class PageRow:
    """One row of the output table; field order is column order (see :data:`SCHEMA`)."""

    source: str
    source_sha256: str | None
    page_number: int
    status: RowStatus
    text: str | None = None
    error: str | None = None
    error_message: str | None = None
    file_uuid: str | None = None
    extract_uuid: str | None = None
    engine: str | None = None
    language: str | None = None
    normalization: str | None = None
    credits_charged: int = 0
    credits_refunded: int = 0
    processed_at: dt.datetime = field(default_factory=_utc_now)
    run_id: str | None = None

    def __post_init__(self) -> None:
        # Cheap checks that catch programming errors at the row, not thousands of rows later
        # when a row group is flushed by another thread.
        self.status = RowStatus(self.status)
        self.source = source_text(self.source)
        if self.page_number < 1:
            raise ValueError(f"page_number is 1-based, got {self.page_number} for {self.source!r}")
        if self.processed_at.tzinfo is None:
            raise ValueError("processed_at must be timezone-aware (UTC)")


def _field(name: str, type_: pa.DataType, description: str, *, nullable: bool = True) -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={"description": description})


SCHEMA: pa.Schema = pa.schema(
    [
        _field(
            "source",
            pa.string(),
            "Path of the scan in the archive (\\xNN for undecodable bytes).",
            nullable=False,
        ),
        _field("source_sha256", pa.string(), "SHA-256 (hex) of the source file: the resume key."),
        _field("page_number", pa.int32(), "1-based page number in the source file.", nullable=False),
        _field("status", pa.string(), "processed | failed | rejected | invalid.", nullable=False),
        _field("text", pa.string(), "OCR text; null unless status is processed."),
        _field("error", pa.string(), "Delix ErrorEnum value or our own reason code; null when processed."),
        _field("error_message", pa.string(), "Human-readable error (the API's message is often Persian)."),
        _field("file_uuid", pa.string(), "Delix uuid of the stored file; null if never stored."),
        _field("extract_uuid", pa.string(), "Delix uuid of the extraction; null if never extracted."),
        _field("engine", pa.string(), "OCR engine: danlin, tiho or probe."),
        _field("language", pa.string(), "Content language sent to the engine (fa, en, ar, tr)."),
        _field("normalization", pa.string(), "What was done to the file before upload; null if nothing."),
        _field(
            "credits_charged",
            pa.int32(),
            "This page's share of the extraction's initial_cost.",
            nullable=False,
        ),
        _field(
            "credits_refunded", pa.int32(), "Credits refunded for this page (failed pages).", nullable=False
        ),
        _field(
            "processed_at", pa.timestamp("us", tz="UTC"), "When this row was produced (UTC).", nullable=False
        ),
        _field("run_id", pa.string(), "Airflow run and try that produced the row (provenance)."),
    ],
    metadata={"delix.schema_version": str(SCHEMA_VERSION)},
)

COLUMNS: tuple[str, ...] = tuple(SCHEMA.names)
assert tuple(f.name for f in fields(PageRow)) == COLUMNS, "PageRow and SCHEMA must list the same columns"


def _column(name: str, values: list[Any], type_: pa.DataType) -> pa.Array:
    try:
        return pa.array(values, type=type_)
    except (UnicodeEncodeError, pa.ArrowInvalid):
        if not pa.types.is_string(type_):
            raise
        # Lone surrogates can come from JSON ("\ud800") or odd file names: keep the row, escape them.
        return pa.array([None if v is None else source_text(v) for v in values], type=type_)


def rows_to_record_batch(rows: Sequence[PageRow]) -> pa.RecordBatch:
    """Build a batch with exactly :data:`SCHEMA` (also for zero rows or all-null columns)."""
    arrays = []
    for schema_field in SCHEMA:
        name = schema_field.name
        values = [getattr(row, name) for row in rows]
        if name == "status":
            values = [str(v) for v in values]
        arrays.append(_column(name, values, schema_field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=SCHEMA)


def open_output(
    output_path: Location, storage_options: Mapping[str, Any] | None = None
) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem and the bare path of ``output_path``.

    A local path or URI (opened with ``storage_options``), or a location carrying its own
    filesystem (``ObjectStoragePath``, :class:`~airflow_provider_delix.core.fspath.FsPath`):
    its credentials come from an Airflow connection and are used as they are.
    """
    fs, path = open_location(output_path, storage_options)
    return fs, path


def dataset(output_path: Location, storage_options: Mapping[str, Any] | None = None) -> ds.Dataset | None:
    """The table as a pyarrow dataset, or None when nothing has been written yet.

    Discovery is pyarrow's (the same as ``pandas.read_parquet``): paths with a ``_`` or ``.``
    component are ignored, which is what hides ``_delix_state/`` and in-progress part files.
    """
    fs, path = open_output(output_path, storage_options)
    fs.invalidate_cache(path)  # listings are cached per filesystem instance; parts come and go
    if not fs.exists(path):
        return None
    return ds.dataset(path, schema=SCHEMA, format="parquet", filesystem=fs)


def iter_batches(
    output_path: Location,
    columns: Iterable[str],
    *,
    storage_options: Mapping[str, Any] | None = None,
    where: ds.Expression | None = None,
) -> Iterable[pa.RecordBatch]:
    """Stream selected columns of the stored table, batch by batch (bounded memory)."""
    data = dataset(output_path, storage_options)
    if data is None:
        return
    yield from data.to_batches(columns=list(columns), filter=where)


def read_table(
    output_path: Location,
    *,
    storage_options: Mapping[str, Any] | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Read the whole output table (local path, fsspec URI or ObjectStoragePath) into pandas.

    Returns an empty DataFrame with the right columns and dtypes when nothing is there yet, so
    downstream tasks need no special case for a first run.
    """
    selected = list(columns) if columns is not None else list(COLUMNS)
    unknown = set(selected) - set(COLUMNS)
    if unknown:
        raise ValueError(f"Unknown columns {sorted(unknown)}; the table has {list(COLUMNS)}")
    data = dataset(output_path, storage_options)
    table = SCHEMA.empty_table().select(selected) if data is None else data.to_table(columns=selected)
    frame: pd.DataFrame = table.to_pandas()
    return frame
