"""A throw-away Airflow CeleryExecutor deployment on this machine, for ``bench/celery_share.py``.

PostgreSQL (metadata database and Celery result backend), Redis (broker), and Airflow's
api-server, scheduler, dag-processor and ``celery worker`` processes, each started here and
stopped on exit. The Celery packages are bench-only: installed from
``bench/requirements-celery.txt`` into ``build/celery-site`` (on PYTHONPATH for these
processes only), so the project's venv and its tests never see them. Redis and PostgreSQL
come from Debian (``apt-get install`` when missing; we run as root on these machines).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from glob import glob
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "build" / "celery-site"
REQUIREMENTS = ROOT / "bench" / "requirements-celery.txt"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_packages() -> None:
    """Debian's redis-server and postgresql, and the pinned Celery packages for this bench."""
    missing = [
        p for p, probe in (("redis-server", "redis-server"), ("postgresql", "pg_ctl")) if not _have(probe)
    ]
    if missing:
        subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True)
    marker = SITE / ".installed"
    if not marker.exists() or marker.read_text() != REQUIREMENTS.read_text():
        if shutil.which("uv"):
            cmd = ["uv", "pip", "install", "--python", sys.executable]
        else:
            cmd = [sys.executable, "-m", "pip", "install"]
        subprocess.run([*cmd, "--no-deps", "--target", str(SITE), "-r", str(REQUIREMENTS)], check=True)
        marker.write_text(REQUIREMENTS.read_text())


def _have(program: str) -> bool:
    return shutil.which(program) is not None or bool(glob(f"/usr/lib/postgresql/*/bin/{program}"))


def _pg_bindir() -> Path:
    found = sorted(glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    return Path(found[-1]).parent if found else Path(shutil.which("initdb") or "initdb").parent


@contextmanager
def postgres(database: str) -> Iterator[str]:
    """A fresh PostgreSQL cluster on a free port with ``database``; yields its host:port."""
    bindir = _pg_bindir()
    run_as: dict[str, Any] = {}
    if os.geteuid() == 0:  # initdb refuses root
        owner = pwd.getpwnam("postgres")
        run_as = {"user": owner.pw_uid, "group": owner.pw_gid}
    root = Path(tempfile.mkdtemp(prefix="delix-bench-pg-"))
    if run_as:
        os.chown(root, run_as["user"], run_as["group"])
    data, port = root / "data", free_port()
    subprocess.run(
        [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
         "--no-locale"],
        capture_output=True, check=True, **run_as,
    )  # fmt: skip
    options = f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c full_page_writes=off -c max_connections=200"
    subprocess.run(
        [str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"],
        capture_output=True, check=True, **run_as,
    )  # fmt: skip
    try:
        subprocess.run(
            [str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-c",
             f"CREATE DATABASE {database}"],
            capture_output=True, check=True,
        )  # fmt: skip
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run(
            [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True, check=False, **run_as,
        )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def redis() -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(30)


def _wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on port {port} after {timeout:.0f} s")


class CeleryAirflow:
    """Airflow with the CeleryExecutor: ``env`` for any ``airflow`` command, ``airflow(...)`` runs one."""

    def __init__(self, home: Path, db: str, broker: str, extra_env: dict[str, str]) -> None:
        self.home = home
        self.dags = home / "dags"
        self.dags.mkdir(parents=True, exist_ok=True)
        self.api_port = free_port()
        self.db_url = f"postgresql+psycopg2://postgres@{db}/airflow"
        self.env = {
            **os.environ,
            **extra_env,
            "PYTHONPATH": os.pathsep.join([str(SITE), str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__PARALLELISM": "64",
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "64",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.api_port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.db_url,
            "AIRFLOW__CELERY__BROKER_URL": broker,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://postgres@{db}/airflow",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        }
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def airflow(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and done.returncode:
            raise RuntimeError(
                f"airflow {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done.stdout

    def start(self, name: str, *args: str) -> None:
        log = open(self.home / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._procs.append((name, proc))

    def up(self, workers: int, concurrency: int) -> None:
        self.airflow("db", "migrate")
        self.start("api-server", "api-server", "--port", str(self.api_port), "--workers", "1")
        self.start("scheduler", "scheduler")
        self.start("dag-processor", "dag-processor")
        for i in range(workers):
            self.start(
                f"worker{i}", "celery", "worker", "--concurrency", str(concurrency),
                "--celery-hostname", f"w{i}@%h", "--skip-serve-logs",
            )  # fmt: skip
        _wait_port(self.api_port, 180)

    def down(self) -> None:
        for _, proc in reversed(self._procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for name, proc in self._procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                print(f"{name} did not stop in 60 s: killed")

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.home / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


@contextmanager
def celery_airflow(workers: int, concurrency: int, extra_env: dict[str, str]) -> Iterator[CeleryAirflow]:
    """The whole stack, up; everything stopped and removed on exit."""
    ensure_packages()
    with ExitStack() as stack:
        db = stack.enter_context(postgres("airflow"))
        broker = stack.enter_context(redis())
        home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="delix-bench-celery-")))
        stack_ = CeleryAirflow(home, db, broker, extra_env)
        stack.callback(stack_.down)
        stack_.up(workers, concurrency)
        yield stack_
