"""Throughput against the account's storage bound, one instance and four in parallel.

The emulator (child process, groundtruth OCR) answers with the issue's fixed latencies:
upload 150 ms per request, extraction 400 ms + 100 ms per page, delete 50 ms per request.

* (a) a sequential loop of plain ``DelixHook`` calls (upload 5, extract, delete 5) on
  ``--seq-images`` images: a rate, so fewer images suffice;
* (b) the operator's engine, ``run_extraction`` with a ``DelixHook`` (bench/worker.py, in its
  own forked process), over ``--images`` distinct images;
* (c) the bound ``30 / (U + E + D)``;
* scale-out: the same images split over 4 forked processes sharing the account, budgets
  7, 7, 8, 8 files (a pool of 30 slots shared by 4 mapped task instances).

    .venv/bin/python bench/throughput.py [--images 2000] [--seq-images 200] [--smoke]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    CONN_ID,
    LATENCIES,
    bound_figures,
    run_forked,
    start_emulator,
    tempdir,
    use_connection,
    write_images,
)

SHARES = (7, 7, 8, 8)


def sequential(folder: Path, count: int) -> float:
    """(a): what a user writes today with the hook alone; images/s."""
    from airflow_provider_delix.hooks.delix import DelixHook

    paths = sorted(folder.iterdir())[:count]
    hook = DelixHook(CONN_ID)
    hook.get_conn()
    start = time.perf_counter()
    for i in range(0, len(paths), 5):
        stored = hook.upload_files([str(p) for p in paths[i : i + 5]])
        uuids = [s.uuid for s in stored]  # type: ignore[union-attr]
        hook.extract_images(uuids)
        for uuid in uuids:
            hook.delete_file(uuid)
    elapsed = time.perf_counter() - start
    hook.close()
    return len(paths) / elapsed


def check_charges(stats: dict[str, Any], expected: int) -> None:
    charges = stats["charges"]
    if len(charges) != expected or any(n != 1 for n in charges.values()):
        raise SystemExit(f"expected {expected} pages charged once each, got {len(charges)} keys")


def span_of(result: dict[str, Any]) -> float:
    """Seconds from the run's first request to its last answer (its last delete)."""
    return float(result["last_response"] - result["first_request"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--small", type=int, default=600, help="(b) again on this many images")
    parser.add_argument("--seq-images", type=int, default=200)
    parser.add_argument("--smoke", action="store_true", help="tiny run: checks the bench works")
    args = parser.parse_args()
    if args.smoke:
        args.images, args.seq_images, args.small = 40, 10, 20
    f = bound_figures()
    print(
        f"latencies: U={f['U']:.2f}s (one 5-file upload) E={f['E']:.2f}s (5-page extraction) "
        f"D={f['D']:.2f}s (one delete)"
    )
    with tempdir("throughput") as tmp:
        home = Path(tmp)
        per_part = -(-args.images // len(SHARES))
        for part in range(len(SHARES)):
            write_images(home / "images" / f"part{part}", per_part, start=part * per_part)
        total = per_part * len(SHARES)
        write_images(home / "small", args.small)
        with start_emulator(**LATENCIES) as emu:
            use_connection(emu, home)

            rate_a = sequential(home / "images" / "part0", args.seq_images)
            emu.reset()

            (small,) = run_forked([{"images": str(home / "small"), "output": str(home / "out-small")}])
            check_charges(emu.stats(), args.small)
            emu.reset()

            (one,) = run_forked([{"images": str(home / "images"), "output": str(home / "out-b")}])
            stats_b = emu.stats()
            check_charges(stats_b, total)
            rate_b = total / span_of(one)
            emu.reset()

            results = run_forked(
                [
                    {
                        "images": str(home / "images" / f"part{i}"),
                        "output": str(home / f"out-scale-{i}"),
                        "run_id": f"scale{i}",
                        "max_stored_files": share,
                    }
                    for i, share in enumerate(SHARES)
                ]
            )
            stats_s = emu.stats()
            check_charges(stats_s, total)
    bound = f["bound"]
    span = max(r["end"] for r in results) - min(r["start"] for r in results)
    rate_s = total / span
    print(
        f"(a) sequential hook loop: {args.seq_images} images, {rate_a:.2f} images/s "
        f"(closed form 5/(U+E+5D) = {f['sequential']:.2f})"
    )
    print(
        f"(b) ImageExtractionOperator engine: {total} images in {span_of(one):.1f}s, "
        f"{rate_b:.2f} images/s; peak stored {stats_b['files']['max_count']}"
    )
    print(f"(c) bound 30/(U+E+D): {bound:.2f} images/s")
    rate_small = args.small / span_of(small)
    print(
        f"(b) at {args.small} images: {span_of(small):.2f}s first request to last delete "
        f"({small['elapsed']:.2f}s for the whole run_extraction call, "
        f"{args.small / small['elapsed'] / bound:.3f} of the bound), {rate_small:.2f} images/s"
    )
    print(
        f"(b) at {total} images: {span_of(one):.2f}s first request to last delete "
        f"({one['elapsed']:.2f}s for the whole call, {total / one['elapsed'] / bound:.3f} of the bound)"
    )
    print(f"RESULT throughput b/c at {args.small} images = {rate_small / bound:.3f} (target >= 0.95)")
    print(f"RESULT throughput b/c at {total} images = {rate_b / bound:.3f} (target >= 0.95)")
    print(f"RESULT throughput b/a = {rate_b / rate_a:.2f} (target >= 6)")
    print(
        f"scale-out: 4 processes, budgets {'/'.join(map(str, SHARES))}, {total} images in "
        f"{span:.1f}s, {rate_s:.2f} images/s; per instance "
        + ", ".join(f"{r['pages_total'] / r['elapsed']:.2f}" for r in results)
    )
    print(f"RESULT scale-out b/c = {rate_s / bound:.3f} (target >= 0.85)")
    print(f"RESULT scale-out storage high-water = {stats_s['files']['max_count']} (must be <= 30)")


if __name__ == "__main__":
    main()
