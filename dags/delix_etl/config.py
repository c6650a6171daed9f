"""Where the example DAGs read and write, and how an archive is split into OCR runs.

Why a module: the ETL DAG and the downstream DAG must agree on the data folder and on the
Asset that links them; defining both here keeps them from drifting apart.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import fsspec

# Delix's content languages (the API's Language enum); a folder with one of these names holds
# scans in that language.
LANGUAGES = ("fa", "en", "ar", "tr")
AUTO = "auto"
SAMPLE_ARCHIVE = Path(__file__).resolve().parent.parent / "sample_archive"
OCR_PAGES_DIR = "ocr_pages"  # the table root under output_root; one ds=YYYY-MM-DD folder per date


def default_output_root() -> str:
    """``$DELIX_DATA_DIR``, else ``$AIRFLOW_HOME/data/delix`` (``~/airflow`` when unset).

    Evaluated when the DAG file is parsed, so the param's default shows the real folder in the
    trigger form rather than a template a user has to decode.
    """
    explicit = os.environ.get("DELIX_DATA_DIR")
    if explicit:
        return str(Path(explicit).expanduser().resolve())
    home = Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser().resolve()
    return str(home / "data" / "delix")


def ocr_pages_uri(output_root: str) -> str:
    """The table root as a URI (``file:///...`` for local folders): the Asset of the table.

    The per-date output paths (``<root>/ocr_pages/ds=...``) change every run, an Asset must
    not, so both DAGs use the root. It is computed from the *default* output root: a run
    triggered with another ``output_root`` still updates this Asset.
    """
    root = output_root.rstrip("/")
    if "://" in root:
        return f"{root}/{OCR_PAGES_DIR}"
    return f"file://{Path(root).resolve()}/{OCR_PAGES_DIR}"


def plan_ocr_runs(
    archive: str, language: str, storage_options: Mapping[str, Any] | None = None
) -> list[dict[str, str]]:
    """One ``{"archive": ..., "language": ...}`` per language of the archive.

    Delix takes one language per request, and archives are often sorted by language, so
    ``language="auto"`` OCRs each top-level folder named ``fa``, ``en``, ``ar`` or ``tr`` with
    that language. Any explicit language OCRs the whole archive with it. Raises ValueError
    with what to do when the archive is missing or "auto" finds no language folder, so the
    run fails before any credit is spent.
    """
    archive = str(archive).rstrip("/")
    fs, root = fsspec.core.url_to_fs(archive, **dict(storage_options or {}))
    if not fs.exists(root):
        raise ValueError(f"the archive {archive!r} does not exist; set the 'archive' param")
    if language != AUTO:
        if language not in LANGUAGES:
            raise ValueError(f"language must be one of {', '.join(LANGUAGES)} or {AUTO!r}, got {language!r}")
        return [{"archive": archive, "language": language}]
    children = {
        Path(str(entry["name"]).rstrip("/")).name
        for entry in fs.ls(root, detail=True)
        if entry.get("type") == "directory"
    }
    runs = [{"archive": f"{archive}/{code}", "language": code} for code in LANGUAGES if code in children]
    if not runs:
        raise ValueError(
            f"language='auto' needs folders named {', '.join(LANGUAGES)} in {archive!r} "
            f"(found {sorted(children) or 'none'}); or set the 'language' param to the archive's language"
        )
    return runs


def image_task(run: Mapping[str, Any]) -> dict[str, Any]:
    """``ImageExtractionOperator``'s mapped kwargs for one planned run (see :func:`pdf_task`)."""
    return {"images": run["archive"], "language": run["language"], "output_path": run["output_path"]}


def pdf_task(run: Mapping[str, Any]) -> dict[str, Any]:
    """``DocumentExtractionOperator``'s mapped kwargs for the same run.

    Archives mix images and PDFs in the same folders. Both operators read every folder with
    ``mixed_archive=True``: the image operator leaves ``*.pdf`` to the document operator, which
    takes only those, so each file gets its rows from exactly one of them, into one table.
    """
    return {
        "documents": run["archive"],
        "language": run["language"],
        "output_path": run["output_path"],
        "poll_interval": run["poll_interval"],
    }


def table_path(output_root: str, run_date: str) -> str:
    """The OCR table of one date: ``<output_root>/ocr_pages/ds=YYYY-MM-DD``.

    One table per date (hive-style folder names, which DuckDB, Spark and pandas understand)
    so a date can be re-run, resumed and reloaded on its own.
    """
    return f"{output_root.rstrip('/')}/{OCR_PAGES_DIR}/ds={run_date}"


def run_date(context: Mapping[str, Any]) -> str:
    """The run's date as ``YYYY-MM-DD``: ``ds``, or the run-after date of a run without one.

    Airflow 3 allows manual runs without a logical date (no ``ds`` in the context); they
    still need a stable folder and warehouse date, and the run-after date is the natural one.
    """
    ds = context.get("ds")
    if ds:
        return str(ds)
    return str(context["dag_run"].run_after.date().isoformat())
