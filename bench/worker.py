"""One measured extraction: ``run_extraction`` with a ``DelixHook``, in its own process.

    python bench/worker.py '{"images": DIR, "output": DIR, "max_stored_files": 30, ...}'
    python bench/worker.py '{"kind": "documents", "documents": DIR, "output": DIR, "poll_interval": 0.5}'

This is what ``ImageExtractionOperator.execute()`` runs (the operator adds only the XCom
manifest and Airflow's exception mapping). Prints one JSON line: wall time of the run, the
CPU time (user + sys) of this process during the run, its RSS before the run and its peak RSS
(``VmHWM``), and the run's summary counts. The benches call :func:`extract` in processes forked
after the imports (``bench.common.run_forked``); the command line is for profiling one run
under ``py-spy record``.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def preload() -> None:
    """Import what a run needs (Airflow included), so forked children start at once."""
    import airflow_provider_delix.core.run
    import airflow_provider_delix.hooks.delix  # noqa: F401


def _time_requests(hook: object) -> list[float]:
    """[start of the first request, end of the last one] (``time.time()``) of this hook's API calls.

    What a user sees of the run's throughput: from the first upload to the last confirmed delete.
    """
    import threading

    span = [float("inf"), 0.0]
    lock = threading.Lock()
    for name in ("upload_files", "extract_images", "extract_documents", "delete_file", "get_extract"):
        method = getattr(hook, name)

        def timed(*args: object, _m: object = method, **kwargs: object) -> object:
            start = time.time()
            try:
                return _m(*args, **kwargs)  # type: ignore[operator]
            finally:
                end = time.time()
                with lock:
                    span[0], span[1] = min(span[0], start), max(span[1], end)

        setattr(hook, name, timed)
    return span


def extract(job: dict[str, object], go: object = None) -> dict[str, object]:
    """Run one job; with ``go`` (an Event), wait for it after the set-up, before the clock starts."""
    from airflow_provider_delix.core.run import RunOptions, run_extraction
    from airflow_provider_delix.hooks.delix import DelixHook
    from bench.common import CONN_ID

    kind = str(job.get("kind", "images"))
    options = RunOptions(
        kind="documents" if kind == "documents" else "images",
        engine=str(job.get("engine", "danlin")),
        poll_interval=float(job.get("poll_interval", 60.0)),  # type: ignore[arg-type]
        max_stored_files=int(job.get("max_stored_files", 30)),  # type: ignore[call-overload]
        packing="pdf" if job.get("packing") == "pdf" else "none",
        language=str(job.get("language", "fa")),
        max_failed_ratio=0.0,
        progress_interval=3600.0,
    )
    hook = DelixHook(CONN_ID)
    hook.get_conn()  # build the session (reads the connection) before the clock starts
    span = _time_requests(hook)
    if go is not None:
        go.wait()  # type: ignore[attr-defined]
    rss_before = _status_kib("VmRSS")
    cpu0 = os.times()
    t0 = time.time()
    summary = run_extraction(
        job[kind], str(job["output"]), hook, options, run_id=str(job.get("run_id", "bench"))
    )
    t1 = time.time()
    cpu1 = os.times()
    hook.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "start": t0,
        "end": t1,
        "elapsed": t1 - t0,
        "cpu_user": cpu1.user - cpu0.user,
        "cpu_sys": cpu1.system - cpu0.system,
        "rss_before_kib": rss_before,
        "peak_rss_kib": _status_kib("VmHWM"),
        "ru_maxrss_kib": usage.ru_maxrss,
        "first_request": span[0],
        "last_response": span[1],
        "rows": dict(summary.rows),
        "pages_total": summary.pages_total,
        "peak_stored_files": summary.peak_stored_files,
        "requests": dict(summary.requests),
    }


def main() -> None:
    print(json.dumps(extract(json.loads(sys.argv[1]))), flush=True)


if __name__ == "__main__":
    main()
