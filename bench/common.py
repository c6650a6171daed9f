"""Shared pieces of the benchmarks: test images, the emulator, the ``delix`` connection, workers.

Every measured extraction runs in a child process (``bench/worker.py``) so that its peak RSS
and CPU time are its own, and so that several of them can run in parallel like mapped task
instances on workers. The emulator always runs in another child process.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONN_ID = "delix_bench"

# The latencies: upload 150 ms per request, extraction 400 ms + 100 ms per page,
# delete 50 ms per request.
LATENCIES = {
    "latency_upload": 0.15,
    "latency_extract_base": 0.4,
    "latency_extract_page": 0.1,
    "latency_delete": 0.05,
}
ACCOUNT_FILES = 30
CHUNK = 5


def bound_figures() -> dict[str, float]:
    """U, E, D and the two closed-form rates (see docs/performance.md for the derivation)."""
    u = LATENCIES["latency_upload"]  # one upload request carries the whole chunk of 5 files
    e = LATENCIES["latency_extract_base"] + CHUNK * LATENCIES["latency_extract_page"]  # 5 pages
    d = LATENCIES["latency_delete"]  # each file is released by its own delete
    return {
        "U": u,
        "E": e,
        "D": d,
        "bound": ACCOUNT_FILES / (u + e + d),
        "sequential": CHUNK / (u + e + CHUNK * d),
    }


# ---------------------------------------------------------------------------------- images


def _chunk(ctype: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(ctype + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", crc)


def _split_png(data: bytes) -> list[tuple[bytes, bytes]]:
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        ctype = data[pos + 4 : pos + 8]
        chunks.append((ctype, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


def base_png(*, embedded_text: bool) -> bytes:
    """A tiny valid scan from ``emulator.scans.make_png``.

    With ``embedded_text`` False the ``delix:text`` ground truth is stripped, so the emulator's
    groundtruth backend answers ``fallback_text_bytes`` of text derived from the file's hash.
    """
    from airflow_provider_delix.emulator.scans import make_png

    data = make_png("benchmark page", language="en")
    if embedded_text:
        return data
    kept = [
        (t, b)
        for t, b in _split_png(data)
        if not (t in (b"tEXt", b"iTXt", b"zTXt") and b.split(b"\x00", 1)[0].startswith(b"delix:"))
    ]
    return data[:8] + b"".join(_chunk(t, b) for t, b in kept)


def unique_png(base: bytes, index: int) -> bytes:
    """``base`` with a ``bench:id`` tEXt chunk after IHDR: distinct bytes, same pixels."""
    ihdr_end = 8 + 12 + 13
    return base[:ihdr_end] + _chunk(b"tEXt", b"bench:id\x00%d" % index) + base[ihdr_end:]


def write_images(folder: Path, count: int, *, embedded_text: bool = True, start: int = 0) -> Path:
    """``count`` distinct PNGs ``img-000000.png`` ... in ``folder`` (created); returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    base = base_png(embedded_text=embedded_text)
    for i in range(start, start + count):
        (folder / f"img-{i:07d}.png").write_bytes(unique_png(base, i))
    return folder


# ---------------------------------------------------------------------------------- environment


def connection_json(emulator: Any) -> str:
    return json.dumps(
        {
            "conn_type": "delix",
            "host": emulator.base_url,
            "password": emulator.api_key,
            "extra": {"max_connections": 32},
        }
    )


def bench_env(emulator: Any, home: Path) -> dict[str, str]:
    """Environment for a worker: the connection as an env var, a throw-away AIRFLOW_HOME."""
    env = dict(os.environ)
    env[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = connection_json(emulator)
    env.setdefault("AIRFLOW_HOME", str(home / "airflow-home"))
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return env


def use_connection(emulator: Any, home: Path) -> None:
    """The same environment for this process (for the in-process sequential loop)."""
    os.environ.update(bench_env(emulator, home))


def start_emulator(**config: Any) -> Any:
    from airflow_provider_delix.emulator.testing import start_emulator_process

    return start_emulator_process(**{"ocr": "groundtruth", **config})


def run_forked(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run ``bench.worker.extract`` for each job in its own forked process, all started together.

    The children are forked after Airflow and the provider are imported here, so each is ready
    in milliseconds (like a worker that has the provider loaded); each waits at a shared event
    until all are set up, then runs. Their RSS and CPU time are their own.
    """
    import multiprocessing

    from bench import worker

    worker.preload()
    ctx = multiprocessing.get_context("fork")
    go = ctx.Event()
    queues = [ctx.SimpleQueue() for _ in jobs]

    def child(job: dict[str, Any], out: Any) -> None:
        try:
            out.put(worker.extract(job, go))
        except BaseException as error:
            out.put({"error": f"{type(error).__name__}: {error}"})
            raise

    processes = [ctx.Process(target=child, args=(job, q)) for job, q in zip(jobs, queues, strict=True)]
    for process in processes:
        process.start()
    time.sleep(0.5)  # let each child build its session
    go.set()
    results = [q.get() for q in queues]
    for process in processes:
        process.join()
    for result in results:
        if "error" in result:
            raise RuntimeError(f"bench worker failed: {result['error']}")
    return results


def tempdir(prefix: str) -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix=f"delix-bench-{prefix}-")
