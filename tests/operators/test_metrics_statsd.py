"""Metrics reach a real StatsD listener through Airflow's ``Stats``, with the run's figures.

A UDP socket stands in for the StatsD daemon; Airflow (``[metrics] statsd_on``) sends to it
from the task, as it would on a worker. The packets are parsed and compared with the table.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from airflow_runner import AirflowEnv, connection_json
from archives import write_good_scans

from airflow_provider_delix.core.table import read_table

pytestmark = pytest.mark.timeout(300)

DAG = """
import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_delix.operators.image_extraction import ImageExtractionOperator

with DAG("ocr_metrics", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False) as dag:
    ImageExtractionOperator(task_id="ocr", images={images!r}, output_path={output!r}, max_failed_ratio=None)
"""


class StatsdListener:
    """Collects StatsD lines (``name:value|type``) sent to a loopback UDP port."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                continue
            self.lines.extend(data.decode().splitlines())

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()

    def counters(self, prefix: str) -> Counter[str]:
        found: Counter[str] = Counter()
        for line in self.lines:
            name, _, rest = line.partition(":")
            value, _, kind = rest.partition("|")
            if name.startswith(prefix) and kind.startswith("c"):
                found[name[len(prefix) :]] += int(value)
        return found

    def timers(self, prefix: str) -> list[str]:
        return [
            line.split(":")[0][len(prefix) :]
            for line in self.lines
            if line.startswith(prefix) and "|ms" in line
        ]


def test_run_figures_reach_statsd(airflow_env: AirflowEnv, emulator: Any, tmp_path: Path) -> None:
    write_good_scans(tmp_path / "scans", 7)
    (tmp_path / "scans" / "notes.txt").write_text("not a scan")
    output = tmp_path / "table"
    dag_file = airflow_env.write_dag(
        "ocr_metrics", DAG.format(images=str(tmp_path / "scans"), output=str(output))
    )
    listener = StatsdListener()
    try:
        state, log = airflow_env.run(
            dag_file,
            AIRFLOW_CONN_DELIX_DEFAULT=connection_json(emulator),
            AIRFLOW__METRICS__STATSD_ON="True",
            AIRFLOW__METRICS__STATSD_HOST="127.0.0.1",
            AIRFLOW__METRICS__STATSD_PORT=str(listener.port),
            AIRFLOW__METRICS__STATSD_PREFIX="airflow",
        )
    finally:
        listener.close()
    assert state == "success", log[-4000:]
    table = read_table(str(output))
    got = listener.counters("airflow.delix.")
    assert got["pages.processed"] == int((table["status"] == "processed").sum()) == 7
    assert got["pages.invalid"] == 1
    assert (
        got["credits.charged"]
        == int(table["credits_charged"].sum())
        == emulator.stats()["credits"]["charged"]
    )
    calls = emulator.stats()["calls"]
    assert got["requests.upload_files"] == calls["POST /files"]
    assert got["requests.extract_images"] == calls["POST /image-extraction"]
    assert got["requests.delete_file"] == calls["DELETE /files/{uuid}"]
    assert "chunk_duration" in listener.timers("airflow.delix.")
