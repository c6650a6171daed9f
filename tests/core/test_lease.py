"""Writer leases: a live writer process on this host is alive without watching its beat."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import pytest

from airflow_provider_delix.core import lease as lease_module
from airflow_provider_delix.core.lease import WriterLease, process_alive
from airflow_provider_delix.core.state_dir import StateDir
from airflow_provider_delix.core.table import open_output


def _other_writer(state: StateDir, tag: str, pid: int) -> None:
    body = {"run_tag": tag, "host": socket.gethostname(), "pid": pid, "beat": 1, "heartbeat": time.time()}
    state.write_bytes(f"{state.root}/writers/{tag}.json", json.dumps(body).encode())
    state.write_bytes(f"{state.root}/journal/{tag}/c1.arrow", b"rows")  # it has state


def test_a_running_process_on_this_host_is_alive_at_once_a_killed_one_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs, path = open_output(str(tmp_path / "out"))
    state = StateDir(fs, f"{path}/_delix_state")
    other = subprocess.Popen(["sleep", "60"])
    try:
        _other_writer(state, "other", other.pid)
        assert process_alive({"host": socket.gethostname(), "pid": other.pid})

        def no_watch(_seconds: float) -> None:
            raise AssertionError("a live process on this host must not be watched")

        monkeypatch.setattr(lease_module.time, "sleep", no_watch)
        mine = WriterLease(state, "mine", heartbeat_seconds=60, stale_after_seconds=30)
        assert "other" not in mine.dead_writers(wait=True)
        mine.release()
    finally:
        monkeypatch.undo()
        other.kill()
    # Killed but not reaped (a zombie answers kill(pid, 0)): not alive, so it is watched as before.
    for _ in range(500):  # the kill is delivered asynchronously
        if not process_alive({"host": socket.gethostname(), "pid": other.pid}):
            break
        time.sleep(0.01)
    assert not process_alive({"host": socket.gethostname(), "pid": other.pid})
    other.wait()
    assert not process_alive({"host": socket.gethostname(), "pid": other.pid})
    assert not process_alive({"host": "elsewhere", "pid": 1})
