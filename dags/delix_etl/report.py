"""The analyst's first look at a loaded date: pages, credits, problem files, text, timings.

The figures come from the warehouse (what the date's table holds, whichever run wrote it)
and from the OCR tasks' manifests (what *this* run did: credits spent now, requests, time).
The queries are plain SQL that DuckDB and PostgreSQL both run, behind a ``Query`` callable,
so they are unit-tested on an in-memory DuckDB and reused by the demo's command line:

    PYTHONPATH=dags python -m delix_etl.report <output_root>/warehouse.duckdb [--date YYYY-MM-DD]
"""

# ruff: noqa: S608  (SQL is built only from the constant TABLE; values are bound)
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from delix_etl.warehouse import TABLE, as_date

Query = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
MAX_PROBLEM_FILES = 20  # the report goes to XCom and the log: list the first ones, count all
SNIPPET_CHARS = 90

PAGES_BY_STATUS = (
    f"SELECT status, count(*) FROM {TABLE} WHERE logical_date = ? GROUP BY status ORDER BY status"
)
CREDITS = (
    f"SELECT coalesce(sum(credits_charged), 0), coalesce(sum(credits_refunded), 0) "
    f"FROM {TABLE} WHERE logical_date = ?"
)
PROBLEM_FILES = (
    f"SELECT source, status, error, error_message, count(*) AS pages FROM {TABLE} "
    f"WHERE logical_date = ? AND status <> 'processed' "
    f"GROUP BY source, status, error, error_message ORDER BY source, status, error"
)
# Scanned archives mix images and PDFs; both operators write one table, told apart by name
# (the same rule that routes them). right()/lower() run on DuckDB and PostgreSQL alike.
_KIND = "CASE WHEN right(lower(source), 4) = '.pdf' THEN 'pdf' ELSE 'image' END"
PAGES_BY_KIND = (
    f"SELECT {_KIND}, count(DISTINCT source), count(*) FROM {TABLE} WHERE logical_date = ? "
    f"GROUP BY 1 ORDER BY 1"
)
ENGINES_BY_KIND = (
    f"SELECT {_KIND}, coalesce(engine, 'none'), count(*) FROM {TABLE} WHERE logical_date = ? "
    f"GROUP BY 1, 2 ORDER BY 1, 2"
)
TEXT_BY_LANGUAGE = (
    f"SELECT coalesce(language, 'none'), count(*), coalesce(sum(length(text)), 0) FROM {TABLE} "
    f"WHERE logical_date = ? AND status = 'processed' GROUP BY 1 ORDER BY 1"
)
# One page per language to show what the text looks like: the first by name, preferring pages
# uploaded as they were (a converted TIFF page or a shrunk oversize scan is less typical).
SAMPLES = (
    f"SELECT language, source, page_number, text FROM ("
    f"SELECT language, source, page_number, text, row_number() OVER "
    f"(PARTITION BY language ORDER BY normalization IS NOT NULL, source, page_number) AS n FROM {TABLE} "
    f"WHERE logical_date = ? AND status = 'processed' AND language IS NOT NULL) AS firsts "
    f"WHERE n = 1 ORDER BY language"
)
LATEST_DATE = f"SELECT max(logical_date) FROM {TABLE}"


def build_report(
    query: Query,
    logical_date: str,
    *,
    manifests: Sequence[Mapping[str, Any]] = (),
    languages: Sequence[str] = (),
    load_seconds: float | None = None,
) -> dict[str, Any]:
    """The report of one date as a small JSON-able dict (it is the task's XCom).

    ``manifests`` are the OCR tasks' return values, ``languages`` a label for each (same
    order, e.g. ``"fa pdfs"``), ``load_seconds`` how long the load took: together they name the
    slowest step. ``pages_by_kind`` splits the date's pages into images and PDFs, with the
    pages each engine read (``auto`` sends a PDF's text-layer pages to probe, scans to OCR).
    """
    day = as_date(logical_date)
    by_status = {str(status): int(n) for status, n in query(PAGES_BY_STATUS, [day])}
    charged, refunded = query(CREDITS, [day])[0]
    problems = [
        {"source": s, "status": st, "error": e, "message": m, "pages": int(n)}
        for s, st, e, m, n in query(PROBLEM_FILES, [day])
    ]
    text = {str(lang): {"pages": int(p), "chars": int(c)} for lang, p, c in query(TEXT_BY_LANGUAGE, [day])}
    kinds: dict[str, dict[str, Any]] = {
        str(kind): {"files": int(files), "pages": int(pages), "engines": {}}
        for kind, files, pages in query(PAGES_BY_KIND, [day])
    }
    for kind, engine, pages in query(ENGINES_BY_KIND, [day]):
        kinds[str(kind)]["engines"][str(engine)] = int(pages)
    samples = {
        str(lang): {"source": src, "page": int(page), "text": _snippet(txt)}
        for lang, src, page, txt in query(SAMPLES, [day])
    }
    return {
        "logical_date": day.isoformat(),
        "pages": {"total": sum(by_status.values()), "by_status": by_status},
        "pages_by_kind": kinds,
        "credits": {"charged": int(charged), "refunded": int(refunded), "net": int(charged) - int(refunded)},
        "problem_files": problems[:MAX_PROBLEM_FILES],
        "problem_files_total": len(problems),
        "text_by_language": text,
        "samples": samples,
        "run": run_summary(manifests, languages, load_seconds),
    }


def run_summary(
    manifests: Sequence[Mapping[str, Any]], languages: Sequence[str], load_seconds: float | None
) -> dict[str, Any]:
    """This run's cost, requests and timings; ``slowest`` is the step that took longest.

    Why per step: when a daily run gets slow, the first question is whether OCR (Delix
    latency, storage waits) or the warehouse load is to blame; the request counts per
    endpoint then say whether OCR time went on uploads, extractions or retries.
    """
    timings: dict[str, float] = {}
    requests: dict[str, int] = {}
    charged = refunded = resumed = pages = 0
    for index, manifest in enumerate(manifests):
        label = f"ocr[{languages[index]}]" if index < len(languages) else f"ocr[{index}]"
        timings[label] = float(manifest.get("elapsed_seconds", 0.0))
        charged += int(manifest.get("credits_charged", 0))
        refunded += int(manifest.get("credits_refunded", 0))
        resumed += int(manifest.get("pages_resumed", 0))
        pages += int(manifest.get("pages_total", 0))
        for endpoint, n in dict(manifest.get("requests", {})).items():
            requests[endpoint] = requests.get(endpoint, 0) + int(n)
    if load_seconds is not None:
        timings["load"] = float(load_seconds)
    slowest = max(timings.items(), key=lambda item: item[1]) if timings else None
    return {
        "pages_seen": pages,
        "pages_resumed": resumed,
        "credits_charged": charged,
        "credits_refunded": refunded,
        "requests": dict(sorted(requests.items())),
        "timings_seconds": timings,
        "slowest": {"step": slowest[0], "seconds": slowest[1]} if slowest else None,
    }


def format_report(report: Mapping[str, Any]) -> str:
    """The report as a few readable lines for the task log and the demo."""
    pages, credits, run = report["pages"], report["credits"], report.get("run") or {}
    statuses = ", ".join(f"{k} {v}" for k, v in pages["by_status"].items()) or "none"
    lines = [
        f"Delix OCR report for {report['logical_date']}",
        f"  pages: {pages['total']} ({statuses})",
        f"  credits: {credits['charged']} charged, {credits['refunded']} refunded, {credits['net']} net",
    ]
    if run.get("pages_seen"):
        lines.append(
            f"  this run: {run['credits_charged']} credits, {run['pages_resumed']} of {run['pages_seen']} "
            f"pages resumed (already paid for)"
        )
    for kind, entry in report.get("pages_by_kind", {}).items():
        engines = ", ".join(f"{engine} {n}" for engine, n in entry["engines"].items())
        lines.append(f"  {kind}: {entry['pages']} pages in {entry['files']} file(s) ({engines})")
    for lang, volume in report["text_by_language"].items():
        lines.append(f"  text [{lang}]: {volume['chars']} characters on {volume['pages']} pages")
    for problem in report["problem_files"]:
        lines.append(
            f"  {problem['status']}: {problem['source']} ({problem['pages']} page(s)): "
            f"{problem['error']}: {problem['message']}"
        )
    if report["problem_files_total"] > len(report["problem_files"]):
        lines.append(f"  ... {report['problem_files_total']} problem files in all")
    if run.get("slowest"):
        timings = ", ".join(f"{k} {v:.1f} s" for k, v in run["timings_seconds"].items())
        lines.append(f"  slowest step: {run['slowest']['step']} ({timings})")
    if run.get("requests"):
        lines.append("  requests: " + ", ".join(f"{k} {v}" for k, v in run["requests"].items()))
    for lang, sample in report["samples"].items():
        lines.append(f"  sample [{lang}] {sample['source']} p{sample['page']}: {sample['text']}")
    return "\n".join(lines)


def duckdb_query(con: Any) -> Query:
    """A :data:`Query` over a DuckDB connection (``?`` placeholders, as written)."""
    return lambda sql, params: [tuple(row) for row in con.execute(sql, list(params)).fetchall()]


def dbapi_query(conn: Any) -> Query:
    """A :data:`Query` over a ``%s``-style DB-API connection (psycopg2/psycopg 3).

    The queries are written with ``?`` placeholders (DuckDB's); none has a ``?`` or ``%`` in a
    literal, so a plain replace is exact (tested on a real PostgreSQL).
    """

    def run(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with conn.cursor() as cur:
            cur.execute(sql.replace("?", "%s"), list(params))
            return [tuple(row) for row in cur.fetchall()]

    return run


def _snippet(text: str | None) -> str:
    flat = " / ".join(line.strip() for line in (text or "").splitlines() if line.strip())
    return flat if len(flat) <= SNIPPET_CHARS else flat[: SNIPPET_CHARS - 1] + "…"


def main(argv: list[str] | None = None) -> int:
    """Print the report of a date (default: the latest) from a DuckDB warehouse file."""
    import duckdb

    parser = argparse.ArgumentParser(description="Summarise a date of the ocr_pages warehouse table.")
    parser.add_argument("database", help="the DuckDB file, e.g. <output_root>/warehouse.duckdb")
    parser.add_argument("--date", help="logical date YYYY-MM-DD (default: the latest loaded)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    with duckdb.connect(args.database, read_only=True) as con:
        query = duckdb_query(con)
        date = args.date or query(LATEST_DATE, [])[0][0]
        if date is None:
            print(f"{args.database}: the {TABLE} table is empty", file=sys.stderr)
            return 1
        report = build_report(query, str(date))
    print(json.dumps(report, ensure_ascii=False, indent=2) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
