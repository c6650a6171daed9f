"""PDF pages per second through the document path, against the image path's 30-file bound.

Same emulator latencies as ``bench/throughput.py`` (upload 150 ms per request, extraction
400 ms + 100 ms per page, delete 50 ms per request), groundtruth OCR. An image holds one of
the account's 30 slots for one page, so no image client passes 30 / (U + E + D) pages/s.
A stored PDF holds one slot for up to 150 pages: the document path is bounded instead by
how fast Delix's queue works through queued extracts, which the API does not publish. The
bench therefore runs the same archive under two queue settings of the emulator:

* ``async_workers=2`` (the emulator's default): two queued extracts processed at a time;
* ``async_workers=30``: every stored file may be in work at once (the queue is no limit).

The archive: ``--documents`` PDFs of ``--pages`` pages (text layers, read back exactly),
``engine="danlin"``, ``poll_interval`` 0.5 s. Each line is one run of the operator's engine
(``run_extraction`` with a ``DelixHook`` in a forked process); every page is checked charged
once and the account empty afterwards.

    .venv/bin/python bench/documents.py [--documents 30] [--pages 100] [--smoke]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bench.common import LATENCIES, bound_figures, run_forked, start_emulator, tempdir, use_connection

POLL = 0.5
QUEUE_WORKERS = (2, 30)


def write_archive(folder: Path, documents: int, pages: int) -> int:
    from pdfs import make_pdf

    folder.mkdir(parents=True, exist_ok=True)
    for d in range(documents):
        texts = [f"document {d} page {p}" for p in range(1, pages + 1)]
        (folder / f"doc-{d:04d}.pdf").write_bytes(make_pdf(texts))
    return documents * pages


def run(home: Path, folder: Path, workers: int, total: int) -> dict[str, Any]:
    with start_emulator(**LATENCIES, async_workers=workers) as emu:
        use_connection(emu, home)
        job = {
            "kind": "documents",
            "documents": str(folder),
            "output": str(home / f"out-{workers}"),
            "poll_interval": POLL,
        }
        (result,) = run_forked([job])
        stats = emu.stats()
    if "error" in result:
        raise SystemExit(result["error"])
    charges = stats["charges"]
    if len(charges) != total or set(charges.values()) != {1}:
        raise SystemExit(f"expected {total} pages charged once each, got {len(charges)} keys")
    if stats["files"]["count"]:
        raise SystemExit(f"{stats['files']['count']} files left on the account")
    return {**result, "peak": stats["files"]["max_count"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=30)
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--smoke", action="store_true", help="tiny run: checks the bench works")
    args = parser.parse_args()
    if args.smoke:
        args.documents, args.pages = 3, 8
    f = bound_figures()
    print(
        f"latencies: U={f['U']:.2f}s E=0.4s + 0.1s/page D={f['D']:.2f}s; poll every {POLL}s; "
        f"{args.documents} PDFs x {args.pages} pages"
    )
    with tempdir("documents") as tmp:
        home = Path(tmp)
        total = write_archive(home / "pdfs", args.documents, args.pages)
        for workers in QUEUE_WORKERS:
            r = run(home, home / "pdfs", workers, total)
            rate = total / r["elapsed"]
            print(
                f"documents, emulator queue of {workers} worker(s): {total} pages in {r['elapsed']:.1f}s = "
                f"{rate:.2f} pages/s = {rate / f['bound']:.2f} x the image bound; peak stored {r['peak']}"
            )
            print(f"RESULT documents pages/s (queue {workers}) = {rate:.2f}")
    print(f"image path bound 30/(U+E+D): {f['bound']:.2f} pages/s (one page per stored file)")


if __name__ == "__main__":
    main()
