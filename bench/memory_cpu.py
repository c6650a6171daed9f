"""Peak RSS at 10k and 100k pages, and the client's CPU time per page at 100k pages.

The emulator runs in its own process with no latency and ``fallback_text_bytes=2000``: every
page comes back with 2,000 bytes of text (the test PNGs carry no embedded text). Each run is
``run_extraction`` with a ``DelixHook`` in a forked child (bench/worker.py); the child reports
its ``VmHWM`` (peak RSS, including the ~220 MB of Airflow, pandas and pyarrow it starts with)
and the user + sys CPU time it spent in the run.

    .venv/bin/python bench/memory_cpu.py [--small 10000] [--large 100000] [--smoke]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import run_forked, start_emulator, tempdir, use_connection, write_images

GROUP = 10_000  # images per sub-folder; the small run reads the first one


def describe(label: str, r: dict[str, Any]) -> str:
    pages = r["pages_total"]
    cpu = r["cpu_user"] + r["cpu_sys"]
    return (
        f"{label}: {pages} pages in {r['elapsed']:.1f}s ({pages / r['elapsed']:.0f} pages/s); "
        f"RSS before {r['rss_before_kib'] / 1024:.1f} MiB, peak {r['peak_rss_kib'] / 1024:.1f} MiB; "
        f"CPU user {r['cpu_user']:.1f}s + sys {r['cpu_sys']:.1f}s = {1000 * cpu / pages:.3f} ms/page"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--smoke", action="store_true", help="tiny run: checks the bench works")
    args = parser.parse_args()
    if args.smoke:
        args.small, args.large = 50, 100
    group = min(GROUP, args.small)
    if args.small != group or args.large % group:
        raise SystemExit(f"--small must be <= {GROUP} and --large a multiple of it")
    with tempdir("memory") as tmp:
        home = Path(tmp)
        for g in range(args.large // group):
            write_images(home / "images" / f"g{g:03d}", group, embedded_text=False, start=g * group)
        with start_emulator(fallback_text_bytes=2000) as emu:
            use_connection(emu, home)
            (small,) = run_forked([{"images": str(home / "images" / "g000"), "output": str(home / "o1")}])
            emu.reset()
            (large,) = run_forked([{"images": str(home / "images"), "output": str(home / "o2")}])
            stats = emu.stats()
    for r, n in ((small, args.small), (large, args.large)):
        if r["rows"].get("processed") != n:
            raise SystemExit(f"expected {n} processed rows, got {r['rows']}")
    print(describe(f"{args.small} pages", small))
    print(describe(f"{args.large} pages", large))
    files = stats["files"]["max_count"]
    print(f"emulator: {stats['pages']['processed']} pages processed, peak stored {files}")
    ratio = large["peak_rss_kib"] / small["peak_rss_kib"]
    growth = (large["peak_rss_kib"] - large["rss_before_kib"]) / 1024
    print(
        f"RESULT memory peak RSS {small['peak_rss_kib'] / 1024:.1f} MiB at {args.small} pages, "
        f"{large['peak_rss_kib'] / 1024:.1f} MiB at {args.large} pages "
        f"(+{growth:.1f} MiB over the start of the run)"
    )
    print(f"RESULT memory ratio peak({args.large})/peak({args.small}) = {ratio:.3f} (target <= 1.2)")
    cpu_ms = 1000 * (large["cpu_user"] + large["cpu_sys"]) / large["pages_total"]
    print(f"RESULT client CPU per page at {args.large} pages = {cpu_ms:.3f} ms (target <= 1.0)")


if __name__ == "__main__":
    main()
