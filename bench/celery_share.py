"""Mapped tasks sharing one Delix key on a real distributed executor, with default settings.

Airflow's CeleryExecutor (Redis broker, PostgreSQL metadata database, two Celery worker
processes; see ``bench/celery_stack.py``) runs N mapped ``ImageExtractionOperator`` instances,
all on one emulator key with fixed latencies -- upload 0.5 s, extraction 1.0 s + 0.1 s per
page, delete 0.1 s -- so the account's bound is 30 / (U + E + D) = 30 / 2.1 = 14.29 images/s
(E for a full chunk of 5). No instance is given a share: each learns its own storage window.
For each scenario it prints

* storage high-water (the emulator's, all tasks together; must be <= 30),
* pages charged once (the emulator's charge ledger: every page exactly once),
* slowest / fastest task (the run inside each task, equal work only),
* aggregate / bound over the OCR phase (first run start to last run end, from the manifests),
* storage-full refusals per task per minute (the emulator's 422 answers to uploads).

    flock /tmp/delix-heavy.lock .venv/bin/python bench/celery_share.py [--images 200] [--only 4,8,unequal]

Installs what it needs (Debian redis-server/postgresql, the pinned Celery packages of
``bench/requirements-celery.txt`` into ``build/celery-site``) and starts and stops everything.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.celery_stack import celery_airflow
from bench.common import CONN_ID, connection_json, start_emulator, tempdir, write_images

LATENCIES = {
    "latency_upload": 0.5,
    "latency_extract_base": 1.0,
    "latency_extract_page": 0.1,
    "latency_delete": 0.1,
}
BOUND = 30 / (0.5 + 1.0 + 5 * 0.1 + 0.1)

DAG = """
import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_delix.operators.image_extraction import ImageExtractionOperator

with DAG({dag_id!r}, schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False) as dag:
    ImageExtractionOperator.partial(
        task_id="ocr",
        delix_conn_id={conn!r},
        engine="danlin",
        max_failed_ratio=0.0,
        progress_interval=30,
        retries=0,
    ).expand_kwargs({batches!r})
"""


def scenario_sizes(name: str, images: int) -> list[int]:
    if name == "unequal":
        return [images] * 3 + [4 * images]
    return [images] * int(name)


def run_scenario(af: Any, emulator: Any, work: Path, name: str, sizes: list[int]) -> dict[str, Any]:
    dag_id = f"delix_share_{name}"
    batches, start = [], 0
    for i, n in enumerate(sizes):
        folder = write_images(work / dag_id / f"in{i}", n, start=start)  # distinct pages everywhere
        start += n
        batches.append({"images": str(folder), "output_path": str(work / dag_id / f"out{i}")})
    (af.dags / f"{dag_id}.py").write_text(DAG.format(dag_id=dag_id, conn=CONN_ID, batches=batches))
    _wait_parsed(af, dag_id)
    emulator.reset()
    emulator.configure(**LATENCIES)
    run_id = f"bench_{int(time.time())}"
    af.airflow("dags", "trigger", dag_id, "--run-id", run_id)
    state = _wait_run(af, dag_id, run_id, timeout=60 + 3 * sum(sizes) / BOUND)
    stats = emulator.stats()
    manifests = _manifests(af, dag_id, run_id)
    return _figures(name, sizes, state, stats, manifests)


def _query(af: Any, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    import psycopg2

    host, port = af.db_url.rsplit("@", 1)[1].split("/", 1)[0].split(":")
    conn = psycopg2.connect(host=host, port=int(port), user="postgres", dbname="airflow")
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())
    finally:
        conn.close()


def _wait_parsed(af: Any, dag_id: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _query(af, "select 1 from dag where dag_id = %s and not is_paused", dag_id):
            return
        time.sleep(1)
    raise RuntimeError(f"{dag_id} was not parsed in {timeout:.0f} s:\n{af.tail('dag-processor')}")


def _wait_run(af: Any, dag_id: str, run_id: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = _query(af, "select state from dag_run where dag_id = %s and run_id = %s", dag_id, run_id)
        if rows and rows[0][0] in ("success", "failed"):
            return str(rows[0][0])
        time.sleep(1)
    raise RuntimeError(
        f"{dag_id} did not finish in {timeout:.0f} s:\n{af.tail('scheduler')}\n{af.tail('worker0')}"
    )


def _manifests(af: Any, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    rows = _query(
        af,
        "select x.map_index, x.value, ti.end_date from xcom x join task_instance ti on "
        "ti.dag_id = x.dag_id and ti.run_id = x.run_id and ti.task_id = x.task_id "
        "and ti.map_index = x.map_index "
        "where x.dag_id = %s and x.run_id = %s and x.key = 'return_value' order by x.map_index",
        dag_id,
        run_id,
    )
    out = []
    for _, value, end in rows:
        manifest = value if isinstance(value, dict) else json.loads(value)
        manifest["_end"] = end.timestamp()
        out.append(manifest)
    return out


def _figures(
    name: str, sizes: list[int], state: str, stats: dict[str, Any], manifests: list[dict[str, Any]]
) -> dict[str, Any]:
    charges = stats["charges"]
    once = len(charges) == sum(sizes) and set(charges.values()) == {1}
    elapsed = [m["elapsed_seconds"] for m in manifests]
    starts = [m["_end"] - m["elapsed_seconds"] for m in manifests]
    phase = max(m["_end"] for m in manifests) - min(starts) if manifests else float("nan")
    done = sum(m["counts"].get("processed", 0) for m in manifests)
    refused = stats["calls_by_status"].get("POST /files", {}).get("422", 0)
    equal = sizes[:-1] if name == "unequal" else sizes
    small = elapsed[: len(equal)]
    return {
        "scenario": name,
        "tasks": len(sizes),
        "images": sum(sizes),
        "dag_run": state,
        "manifests": len(manifests),
        "high_water": stats["files"]["max_count"],
        "left_stored": stats["files"]["count"],
        "charged_once": once,
        "processed": done,
        "slowest_over_fastest": max(small) / min(small) if small else float("nan"),
        "elapsed": [round(e, 1) for e in elapsed],
        "ocr_phase_s": round(phase, 1),
        "aggregate_over_bound": done / phase / BOUND if phase else float("nan"),
        "refusals": refused,
        "refusals_per_task_minute": refused / len(sizes) / (phase / 60) if phase else float("nan"),
        "uploads_per_task": [m["requests"].get("upload_files", 0) for m in manifests],
    }


def report(f: dict[str, Any]) -> None:
    print(
        f"{f['scenario']:>8}: {f['tasks']} tasks, {f['images']} images, run {f['dag_run']}, "
        f"{f['manifests']} manifests; high-water {f['high_water']} (<= 30), left stored {f['left_stored']}; "
        f"charged once: {f['charged_once']} ({f['processed']} processed); slowest/fastest "
        f"{f['slowest_over_fastest']:.2f}; aggregate/bound {f['aggregate_over_bound']:.3f} over "
        f"{f['ocr_phase_s']} s; refusals {f['refusals']} = "
        f"{f['refusals_per_task_minute']:.2f} per task per minute"
    )
    print(f"          task run times {f['elapsed']} s; upload requests per task {f['uploads_per_task']}")
    print("RESULT " + json.dumps(f))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200, help="images per task (the big one has 4x)")
    parser.add_argument("--only", default="4,8,unequal")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    names = args.only.split(",")
    slots = max(len(scenario_sizes(n, 1)) for n in names)
    print(f"bound 30 / (U + E + D) = 30 / 2.1 = {BOUND:.2f} images/s; CeleryExecutor, {args.workers} workers")
    with tempdir("celery") as tmp, start_emulator(**LATENCIES) as emulator:
        work = Path(tmp)
        env = {f"AIRFLOW_CONN_{CONN_ID.upper()}": connection_json(emulator)}
        concurrency = -(-slots // args.workers)
        with celery_airflow(args.workers, concurrency, env) as af:
            for name in names:
                report(run_scenario(af, emulator, work, name, scenario_sizes(name, args.images)))


if __name__ == "__main__":
    main()
