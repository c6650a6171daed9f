"""Paths, the per-language plan of an archive, and the run date of the example DAGs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import fsspec
import pytest
from delix_etl import config


def test_sample_archive_plans_one_run_per_language_folder() -> None:
    runs = config.plan_ocr_runs(str(config.SAMPLE_ARCHIVE), "auto")
    assert runs == [
        {"archive": f"{config.SAMPLE_ARCHIVE}/fa", "language": "fa"},
        {"archive": f"{config.SAMPLE_ARCHIVE}/en", "language": "en"},
    ]


def test_each_language_gets_an_image_task_and_a_pdf_task_into_one_table() -> None:
    run = {"archive": "s3://b/fa", "language": "fa", "output_path": "s3://b/out/ds=1", "poll_interval": 30.0}
    assert config.image_task(run) == {
        "images": "s3://b/fa",
        "language": "fa",
        "output_path": "s3://b/out/ds=1",
    }
    assert config.pdf_task(run) == {
        "documents": "s3://b/fa",
        "language": "fa",
        "output_path": "s3://b/out/ds=1",
        "poll_interval": 30.0,
    }


def test_explicit_language_takes_the_whole_archive(tmp_path: Path) -> None:
    assert config.plan_ocr_runs(f"{tmp_path}/", "ar") == [{"archive": str(tmp_path), "language": "ar"}]
    with pytest.raises(ValueError, match="language must be one of"):
        config.plan_ocr_runs(str(tmp_path), "de")


def test_auto_without_language_folders_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "scans").mkdir()
    (tmp_path / "fa.png").write_bytes(b"x")  # a file named like a language is not a folder
    with pytest.raises(ValueError, match=r"found \['scans'\].*set the 'language' param"):
        config.plan_ocr_runs(str(tmp_path), "auto")


def test_missing_archive_fails_before_any_credit(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        config.plan_ocr_runs(str(tmp_path / "nope"), "fa")


def test_object_storage_prefix() -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe({"/archive-x/en/a.png": b"1", "/archive-x/tr/b.png": b"2", "/archive-x/misc/c.png": b"3"})
    try:
        runs = config.plan_ocr_runs("memory://archive-x", "auto")
    finally:
        fs.rm("/archive-x", recursive=True)
    assert runs == [
        {"archive": "memory://archive-x/en", "language": "en"},
        {"archive": "memory://archive-x/tr", "language": "tr"},
    ]


def test_default_output_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DELIX_DATA_DIR", raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    assert config.default_output_root() == str(tmp_path / "data" / "delix")
    monkeypatch.setenv("DELIX_DATA_DIR", str(tmp_path / "elsewhere"))
    assert config.default_output_root() == str(tmp_path / "elsewhere")


def test_table_paths_and_asset_uri(tmp_path: Path) -> None:
    assert config.table_path("s3://b/delix/", "2025-03-01") == "s3://b/delix/ocr_pages/ds=2025-03-01"
    assert config.ocr_pages_uri("s3://b/delix/") == "s3://b/delix/ocr_pages"
    assert config.ocr_pages_uri(str(tmp_path)) == f"file://{tmp_path.resolve()}/ocr_pages"


def test_run_date_without_logical_date() -> None:
    assert config.run_date({"ds": "2025-03-01"}) == "2025-03-01"
    run = SimpleNamespace(run_after=dt.datetime(2025, 4, 2, 23, 0, tzinfo=dt.UTC))
    assert config.run_date({"ds": None, "dag_run": run}) == "2025-04-02"
