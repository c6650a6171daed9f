"""Helpers to run the emulator from tests and benchmarks.

* ``run_emulator(**config)``: a context manager serving on a free loopback port from a daemon
  thread of this process. Cheap (milliseconds), so one per test is fine.
* ``start_emulator_process(**config)``: the same in a child process
  (``python -m airflow_provider_delix.emulator``), for tests that kill the client process and
  for memory benchmarks that must not count the emulator. Use it as a context manager or call
  ``stop()``.

Both yield an object with ``base_url`` (ends in ``/v1``), ``api_key``, ``stats()``,
``configure(**changes)``, ``reset()`` and ``advance_clock(seconds)``; these talk to the admin
endpoints over HTTP, so they behave the same in both cases. Config keywords are the fields
of ``EmulatorConfig`` (``api_key``, ``ocr``, ``credits``, ``rate_429``, ...).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from airflow_provider_delix.emulator.app import EmulatorApp
from airflow_provider_delix.emulator.clock import Clock
from airflow_provider_delix.emulator.config import EmulatorConfig
from airflow_provider_delix.emulator.ocr import OcrBackend
from airflow_provider_delix.emulator.server import API_PREFIX, EmulatorServer


class EmulatorHandle:
    """A running emulator as seen by a test: URL, key, and the admin endpoints as methods."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.root_url = base_url[: -len(API_PREFIX)]

    @property
    def headers(self) -> dict[str, str]:
        """The ``Authorization`` header the emulator accepts."""
        return {"Authorization": f"Bearer {self.api_key}"}

    def _admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 (our own loopback URL)
            f"{self.root_url}/_emulator{path}", data=data, method=method
        )
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            return json.loads(answer.read())

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._admin("GET", "/stats")
        return result

    def config(self) -> dict[str, Any]:
        result: dict[str, Any] = self._admin("GET", "/config")
        return result

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change settings at run time (``add_credits=N`` tops up); returns the new settings."""
        result: dict[str, Any] = self._admin("POST", "/config", changes)
        return result

    def reset(self) -> None:
        self._admin("POST", "/reset", {})

    def foreign_upload(self, files: int) -> list[str]:
        """Files another program on the key stores (no task claims them)."""
        return list(self._admin("POST", "/foreign_upload", {"files": files})["uuids"])

    def restart(self) -> dict[str, Any]:
        """Lose stored files and in-flight extracts, as a server restart would (charges stay)."""
        result: dict[str, Any] = self._admin("POST", "/restart", {})
        return result

    def lose_answers(self, every: int, on: str = "upload") -> None:
        """Every ``every``-th applied answer of ``on`` (``upload``/``extraction``) is dropped after
        the request was applied; 0 turns it off. Shorthand for the ``lost_after_apply_*`` settings."""
        self.configure(lost_after_apply_every=every, lost_after_apply_on=on, lost_after_apply_kinds="drop")

    def advance_clock(self, seconds: float) -> float:
        now: float = self._admin("POST", "/clock", {"advance_seconds": seconds})["now"]
        return now


class InProcessEmulator(EmulatorHandle):
    """``EmulatorHandle`` plus direct access to the app (``.app``) for white-box tests."""

    def __init__(self, server: EmulatorServer) -> None:
        super().__init__(server.base_url, server.app.config.api_key)
        self.server = server
        self.app = server.app


@contextmanager
def run_emulator(
    *, clock: Clock | None = None, backend: OcrBackend | None = None, **config: Any
) -> Iterator[InProcessEmulator]:
    """Serve an emulator on a free loopback port from a background thread for the block."""
    app = EmulatorApp(EmulatorConfig().replace(config), clock=clock, backend=backend)
    server = EmulatorServer(app, "127.0.0.1", 0)
    server.start()
    try:
        yield InProcessEmulator(server)
    finally:
        server.stop()


class EmulatorProcess(EmulatorHandle):
    """An emulator in a child process; ``stop()`` sends SIGTERM and waits."""

    def __init__(self, process: subprocess.Popen[str], base_url: str, api_key: str) -> None:
        super().__init__(base_url, api_key)
        self.process = process

    def stop(self, timeout: float = 10) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def cli_args(config: dict[str, Any]) -> list[str]:
    """``EmulatorConfig`` keywords as ``delix-emulator`` flags."""
    args: list[str] = []
    for name, value in config.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            args += [flag] if value else []
        else:
            args += [flag, str(value)]
    return args


def start_emulator_process(*, timeout: float = 30, **config: Any) -> EmulatorProcess:
    """Start ``python -m airflow_provider_delix.emulator`` on a free port; wait until it serves."""
    EmulatorConfig().replace(config)  # fail here, not in the child, on a bad keyword
    api_key = str(config.get("api_key", EmulatorConfig().api_key))
    cmd = [sys.executable, "-m", "airflow_provider_delix.emulator", "--port", "0", *cli_args(config)]
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    first_line: list[str] = []
    reader = threading.Thread(
        target=lambda: first_line.append(process.stdout.readline() if process.stdout else "")
    )
    reader.start()
    reader.join(timeout)
    line = first_line[0].strip() if first_line else ""
    if not line.startswith("http"):
        process.kill()
        process.wait()
        raise RuntimeError(
            f"delix-emulator did not start within {timeout} s (exit code {process.returncode})"
        )
    return EmulatorProcess(process, line, api_key)
