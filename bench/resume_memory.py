"""Memory the resume index holds per stored row: the run's own rows and another engine's.

A run reads every row of its output table before it starts (``ResumeIndex``): its own
settings' rows say which pages are done; rows of the same language made with another engine
(the other operator's, in a table both share) are kept too, in a smaller form, so a routing or
recheck row is not written again beside them (``ResumeIndex.still``). This prints what each
kind costs, measured with ``tracemalloc`` on the index built from a real table (Parquet parts
written by ``OutputStore``) of ``--rows`` rows of each kind, one page per source.

    .venv/bin/python bench/resume_memory.py [--rows 100000] [--smoke]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import hashlib
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from airflow_provider_delix.core.resume import ResumeIndex
from airflow_provider_delix.core.store import OutputStore
from airflow_provider_delix.core.table import PageRow, RowStatus
from bench.common import tempdir

BATCH = 1000
WHEN = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)


def write_table(path: str, engines: list[str], rows: int) -> None:
    """``rows`` processed pages per engine, distinct sources and contents, language fa."""
    store = OutputStore(path, run_tag="bench")
    for engine in engines:
        for start in range(0, rows, BATCH):
            batch = [
                PageRow(
                    source=f"s3://archive/scans/{engine}/{i:09d}.jpg",
                    source_sha256=hashlib.sha256(f"{engine}{i}".encode()).hexdigest(),
                    page_number=1,
                    status=RowStatus.PROCESSED,
                    text="x",
                    engine=engine,
                    language="fa",
                    credits_charged=200,
                    processed_at=WHEN,
                )
                for i in range(start, min(start + BATCH, rows))
            ]
            store.append(f"{engine}-{start}", batch)
    store.close()


def index_bytes(path: str) -> tuple[int, float, int]:
    """Bytes the index keeps once built (rows streamed from the table), seconds, pages done."""
    store = OutputStore(path, run_tag="reader")
    gc.collect()
    tracemalloc.start()
    start = time.perf_counter()
    index = ResumeIndex(store.resume_rows(), engines=["danlin"], language="fa", kind="images")
    seconds = time.perf_counter() - start
    gc.collect()
    kept, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    done = len(index)
    store.close()
    return kept, seconds, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows of each kind")
    parser.add_argument("--smoke", action="store_true", help="tiny run: checks the bench works")
    args = parser.parse_args()
    rows = 2_000 if args.smoke else args.rows
    with tempdir("resume") as tmp:
        own, both = f"{tmp}/own", f"{tmp}/both"
        write_table(own, ["danlin"], rows)
        write_table(both, ["danlin", "tiho"], rows)
        own_bytes, own_s, own_done = index_bytes(own)
        both_bytes, both_s, both_done = index_bytes(both)
    if own_done != rows or both_done != rows:
        raise SystemExit(f"expected {rows} done pages, got {own_done} and {both_done}")
    per_own = own_bytes / rows
    per_other = (both_bytes - own_bytes) / rows
    print(f"{rows} own rows: index {own_bytes / 2**20:.1f} MiB, built in {own_s:.1f}s (tracemalloc on)")
    print(
        f"{rows} own + {rows} other-engine rows: index {both_bytes / 2**20:.1f} MiB, built in {both_s:.1f}s"
    )
    print(
        f"RESULT resume index memory per stored row = {per_own:.0f} B (the run's settings), "
        f"{per_other:.0f} B (another engine, same language) at {rows} rows of each"
    )


if __name__ == "__main__":
    main()
