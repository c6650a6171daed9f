"""The report queries (on DuckDB and on PostgreSQL: the same SQL), run summary and formatting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest
from delix_etl import report as rep
from delix_etl import warehouse_duckdb, warehouse_postgres
from delix_etl.language_summary import language_summary, write_json
from delix_etl.warehouse import read_pages
from ocr_tables import T0, sample_rows, write_table

from airflow_provider_delix.core.table import PageRow, RowStatus

MANIFESTS = [
    {"elapsed_seconds": 12.5, "credits_charged": 600, "credits_refunded": 200, "pages_resumed": 0,
     "pages_total": 3, "requests": {"upload_files": 1, "extract_images": 1}},
    {"elapsed_seconds": 3.0, "credits_charged": 200, "credits_refunded": 0, "pages_resumed": 1,
     "pages_total": 4, "requests": {"upload_files": 1, "delete_file": 1}},
]  # fmt: skip

EXPECTED = {
    "pages": {"total": 6, "by_status": {"failed": 1, "invalid": 1, "processed": 3, "rejected": 1}},
    "credits": {"charged": 800, "refunded": 200, "net": 600},
    "text_by_language": {"en": {"pages": 1, "chars": 11}, "fa": {"pages": 2, "chars": 21}},
}


@pytest.fixture
def duck(tmp_path: Path) -> Any:
    db = warehouse_duckdb.database_path(str(tmp_path))
    pages = read_pages(write_table(tmp_path / "ocr", sample_rows()))
    warehouse_duckdb.load_date(db, pages, "2025-03-01")
    warehouse_duckdb.load_date(db, pages.slice(0, 1), "2025-03-02")  # another date must not leak in
    with duckdb.connect(db, read_only=True) as con:
        yield con


def _check(report: dict[str, Any]) -> None:
    for key, value in EXPECTED.items():
        assert report[key] == value, key
    assert report["problem_files_total"] == 3
    assert [(p["source"], p["status"], p["error"], p["pages"]) for p in report["problem_files"]] == [
        ("a/en/bad.png", "invalid", "corrupt_image", 1),
        ("a/en/big.png", "rejected", "BAD_INPUT", 1),
        ("a/fa/2.tif", "failed", "OCR_FAILED", 1),
    ]
    # The sample prefers a page uploaded as is over the converted TIFF page, and flattens lines.
    assert report["samples"] == {
        "en": {"source": "a/en/1.png", "page": 1, "text": "Hello / world"},
        "fa": {"source": "a/fa/1.png", "page": 1, "text": "می‌بارید باران"},
    }


def test_report_on_duckdb(duck: Any) -> None:
    report = rep.build_report(rep.duckdb_query(duck), "2025-03-01", manifests=MANIFESTS,
                              languages=["fa", "en"], load_seconds=0.5)  # fmt: skip
    _check(report)
    run = report["run"]
    assert run["timings_seconds"] == {"ocr[fa]": 12.5, "ocr[en]": 3.0, "load": 0.5}
    assert run["slowest"] == {"step": "ocr[fa]", "seconds": 12.5}
    assert run["requests"] == {"delete_file": 1, "extract_images": 1, "upload_files": 2}
    assert (run["credits_charged"], run["credits_refunded"], run["pages_resumed"]) == (800, 200, 1)


def test_report_on_postgres_runs_the_same_sql(pg_conn: Any, tmp_path: Path) -> None:
    pages = read_pages(write_table(tmp_path / "ocr", sample_rows()))
    warehouse_postgres.load_date(pg_conn, pages, "2025-03-01")
    _check(rep.build_report(rep.dbapi_query(pg_conn), "2025-03-01"))


def test_report_of_an_empty_date(duck: Any) -> None:
    report = rep.build_report(rep.duckdb_query(duck), "1999-01-01")
    assert report["pages"] == {"total": 0, "by_status": {}}
    assert report["credits"] == {"charged": 0, "refunded": 0, "net": 0}
    assert report["run"]["slowest"] is None
    assert "pages: 0 (none)" in rep.format_report(report)


def test_slowest_step_can_be_the_load() -> None:
    run = rep.run_summary(MANIFESTS[:1], ["fa"], load_seconds=40.0)
    assert run["slowest"] == {"step": "load", "seconds": 40.0}


def test_problem_files_are_capped_but_counted(duck: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rep, "MAX_PROBLEM_FILES", 1)
    report = rep.build_report(rep.duckdb_query(duck), "2025-03-01")
    assert len(report["problem_files"]) == 1 and report["problem_files_total"] == 3
    assert "... 3 problem files in all" in rep.format_report(report)


def test_format_report_lines(duck: Any) -> None:
    text = rep.format_report(rep.build_report(rep.duckdb_query(duck), "2025-03-01", manifests=MANIFESTS,
                                              languages=["fa", "en"], load_seconds=0.5))  # fmt: skip
    assert "pages: 6 (failed 1, invalid 1, processed 3, rejected 1)" in text
    assert "credits: 800 charged, 200 refunded, 600 net" in text
    assert "text [fa]: 21 characters on 2 pages" in text
    assert "invalid: a/en/bad.png (1 page(s)): corrupt_image: the PNG does not decode" in text
    assert "slowest step: ocr[fa] (ocr[fa] 12.5 s, ocr[en] 3.0 s, load 0.5 s)" in text
    assert "sample [fa] a/fa/1.png p1: می‌بارید باران" in text


def test_snippet_is_shortened() -> None:
    assert rep._snippet("x" * 500) == "x" * (rep.SNIPPET_CHARS - 1) + "…"
    assert rep._snippet(None) == ""


def test_cli_prints_latest_date(duck: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    duck.close()  # the CLI opens the file itself
    db = warehouse_duckdb.database_path(str(tmp_path))
    assert rep.main([db]) == 0
    assert "Delix OCR report for 2025-03-02" in capsys.readouterr().out
    assert rep.main([db, "--date", "2025-03-01", "--json"]) == 0
    assert '"total": 6' in capsys.readouterr().out


def test_language_summary_over_all_dates(tmp_path: Path) -> None:
    root = tmp_path / "ocr_pages"
    write_table(root / "ds=2025-03-01", sample_rows())
    write_table(root / "ds=2025-03-02", sample_rows()[:1])
    (root / "ds=2025-03-02" / "_delix_state").mkdir()  # state folders are not table data
    summary = language_summary(str(root))
    assert summary == {
        "en": {"pages": 3, "processed": 1, "chars": 11, "chars_per_page": 11},
        "fa": {"pages": 4, "processed": 3, "chars": 35, "chars_per_page": 12},
    }
    out = write_json(summary, str(tmp_path / "reports" / "summary.json"))
    assert Path(out).read_text(encoding="utf-8").startswith('{\n  "en"')
    assert language_summary(str(tmp_path / "missing")) == {}


def test_pages_by_kind_tells_images_from_pdfs_and_counts_engines(tmp_path: Path) -> None:
    rows = [
        *sample_rows(),
        PageRow("a/fa/Letter.PDF", "s6", 1, RowStatus.PROCESSED, text="نامه", language="fa", engine="probe",
                credits_charged=100, processed_at=T0),
        PageRow("a/fa/Letter.PDF", "s6", 2, RowStatus.PROCESSED, text="نامه دو", language="fa",
                engine="danlin", credits_charged=100, processed_at=T0),
    ]  # fmt: skip
    db = warehouse_duckdb.database_path(str(tmp_path))
    warehouse_duckdb.load_date(db, read_pages(write_table(tmp_path / "ocr", rows)), "2025-03-01")
    with duckdb.connect(db, read_only=True) as con:
        report = rep.build_report(rep.duckdb_query(con), "2025-03-01")
    assert report["pages_by_kind"]["pdf"] == {"files": 1, "pages": 2, "engines": {"danlin": 1, "probe": 1}}
    assert report["pages_by_kind"]["image"]["files"] == 5
    assert report["pages_by_kind"]["image"]["pages"] == 6
    assert "  pdf: 2 pages in 1 file(s) (danlin 1, probe 1)" in rep.format_report(report)
