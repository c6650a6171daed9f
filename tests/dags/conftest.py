"""Fixtures of the example-DAG tests: a migrated Airflow home, a DAG runner, a real PostgreSQL.

* ``airflow_env`` (session): one ``AIRFLOW_HOME`` with a migrated SQLite DB shared by every DAG
  run of the session (migrating costs ~8 s). DAGs run in a subprocess (``python <dag file>``,
  which calls ``dag.test()``) because Airflow 3 reads the DAGs folder and DB settings once, at
  import, and this process has imported Airflow already.
* ``postgres`` (session): a throw-away PostgreSQL cluster from the Debian ``postgresql``
  binaries, on a free loopback port with its socket in a temp dir, stopped at the end. As
  root it runs as the ``postgres`` OS user (initdb refuses root). Skipped when impossible,
  failed when the ``CI`` environment variable is set.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dag_runner import AirflowEnv, migrated


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> AirflowEnv:
    return migrated(tmp_path_factory.mktemp("airflow_home"))


# --- PostgreSQL -----------------------------------------------------------------------------


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is required when CI is set: {reason} (scripts/bootstrap.sh installs it)")
    pytest.skip(reason)


def _pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def postgres() -> Iterator[dict[str, Any]]:
    """Connection settings (host, port, user, dbname) of a fresh PostgreSQL server."""
    bindir = _pg_bindir()
    if bindir is None:
        _unavailable("PostgreSQL binaries (initdb) are not installed")
    assert bindir is not None
    run_as: dict[str, Any] = {}
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root and there is no 'postgres' OS user to run initdb as")
        run_as = {"user": owner.pw_uid, "group": owner.pw_gid}
    root = Path(tempfile.mkdtemp(prefix="delix-pg-"))
    if run_as:
        os.chown(root, run_as["user"], run_as["group"])
    data, port = root / "data", _free_port()
    try:
        subprocess.run(
            [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
             "--no-locale"],
            capture_output=True, text=True, check=True, timeout=120, **run_as,
        )  # fmt: skip
        options = f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c full_page_writes=off"
        subprocess.run(
            [str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"],
            capture_output=True, text=True, check=True, timeout=120, **run_as,
        )  # fmt: skip
    except subprocess.CalledProcessError as error:
        log = (root / "log").read_text() if (root / "log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        _unavailable(f"could not start PostgreSQL: {error.stderr or error.stdout}{log}")
    try:
        yield {"host": "127.0.0.1", "port": port, "user": "postgres", "dbname": "postgres"}
    finally:
        subprocess.run(
            [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True, check=False, timeout=60, **run_as,
        )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_conn(postgres: dict[str, Any]) -> Iterator[Any]:
    """A psycopg2 connection to a fresh database (so tests do not see each other's tables)."""
    import psycopg2

    name = f"t{time.monotonic_ns()}"
    admin = psycopg2.connect(**postgres)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    conn = psycopg2.connect(**{**postgres, "dbname": name})
    try:
        yield conn
    finally:
        conn.close()
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE {name}")
        admin.close()
