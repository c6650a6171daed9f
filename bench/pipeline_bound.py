"""How close the pipeline gets to the storage-bound throughput 30 / (U + E + D) images/s.

A file occupies one of the account's 30 slots from the start of its upload until its delete
is confirmed: at best U (upload) + E (extraction of a full chunk) + D (one delete). So no
client can do better than ``max_files / (U + E + D)`` images per second; the pipeline is
expected to reach at least 90 % of it. Runs the real pipeline and OutputStore (on
``memory://``) against the in-memory fake account of the tests, with sleeps for latencies.

    .venv/bin/python bench/pipeline_bound.py [--images 300] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "core"))

from fakes import FakeDelix, images

from airflow_provider_delix.core.pipeline import ExtractionPipeline
from airflow_provider_delix.core.store import OutputStore

U, E_BASE, E_PER_PAGE, D = 0.15, 0.4, 0.1, 0.05
FILES = 30


def once(n: int) -> tuple[float, int, int]:
    fake = FakeDelix(upload_latency=U, extract_latency=(E_BASE, E_PER_PAGE), delete_latency=D)
    out = f"memory://bench-{uuid.uuid4().hex}"
    with OutputStore(out, run_tag="bench") as store:
        pipeline = ExtractionPipeline(fake, store, run_id="bench", max_stored_files=FILES)
        start = time.perf_counter()
        summary = pipeline.run(images(n, size=200_000))
        elapsed = time.perf_counter() - start
    assert summary.rows["processed"] == n, summary
    assert fake.storage_full_raised == 0 and not fake.ours_left()
    return elapsed, summary.peak_stored_files, fake.peak_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    e_chunk = E_BASE + 5 * E_PER_PAGE
    bound = FILES / (U + e_chunk + D)
    print(f"latencies: U={U}s E={e_chunk:.2f}s (5 pages) D={D}s -> bound {bound:.2f} images/s")
    ratios = []
    for i in range(args.repeat):
        elapsed, peak, fake_peak = once(args.images)
        rate = args.images / elapsed
        ratios.append(rate / bound)
        print(
            f"run {i + 1}: {args.images} images in {elapsed:.2f}s = {rate:.2f} images/s "
            f"({rate / bound:.1%} of the bound); peak stored {peak} (account saw {fake_peak})"
        )
    best, worst = max(ratios), min(ratios)
    print(f"ratio to bound: best {best:.1%}, worst {worst:.1%} (target >= 90%)")
    sys.exit(0 if worst >= 0.9 else 1)


if __name__ == "__main__":
    main()
