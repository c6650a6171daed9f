"""``DelixHook.cleanup_orphans`` and the cleanup CLI against the emulator over real HTTP.

Orphans are made the ways they happen: a foreign uploader, an upload whose answer is lost after
the server stored the files (the hook's retry stores them again), a restart. A live task's
claimed files are never deleted; ``foreign_uploaders`` only reports; the registry path comes
from the connection and never holds the key.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from emulator_checks import FAST_RETRIES

from airflow_provider_delix.api.models import StoredFile
from airflow_provider_delix.core.budget import StorageBudget
from airflow_provider_delix.core.run_cleanup import ClaimingClient, RunCleanup
from airflow_provider_delix.hooks.delix import DelixHook

pytestmark = pytest.mark.timeout(120)


def test_cleanup_deletes_what_lost_answers_left_but_never_a_live_claim(
    emulator: Any, connect: Callable[..., str], tmp_path: Path
) -> None:
    registry_path = tmp_path / "registry"
    hook = DelixHook(connect(emulator, registry_path=str(registry_path), **FAST_RETRIES))
    cleanup = RunCleanup(hook.key_registry(), StorageBudget(30, 10**9), tag="live-task")
    cleanup.start()
    client = ClaimingClient(hook, cleanup)
    emulator.lose_answers(every=2)  # the 2nd upload is stored, its answer lost; the retry answers
    first = client.upload_files([("a.png", _png()), ("b.png", _png())])
    second = client.upload_files([("c.png", _png())])
    assert all(isinstance(r, StoredFile) for r in [*first, *second])
    assert (
        emulator.stats()["files"]["count"] == 4 and emulator.stats()["faults"]["lost_after_apply_drop"] == 1
    )

    report = hook.cleanup_orphans()
    claimed = {r.uuid for r in [*first, *second] if isinstance(r, StoredFile)}
    assert len(report.deleted) == 1 and report.live_others == 3 and report.live_writers == 1
    assert emulator.stats()["files"]["count"] == 3
    assert {f.uuid for f in hook.list_files()} == claimed, "the live task's files are all still there"
    (account,) = registry_path.iterdir()
    assert "test-key" not in account.name and all(
        b"test-key" not in p.read_bytes() for p in account.rglob("*") if p.is_file()
    )
    cleanup.finish(sweep=False)  # the task ends without deleting: its files become orphans
    assert len(hook.cleanup_orphans().deleted) == 3 and emulator.stats()["files"]["count"] == 0
    hook.close()


def test_foreign_uploaders_files_are_reported_with_their_expiry(
    emulator: Any, connect: Callable[..., str], tmp_path: Path
) -> None:
    hook = DelixHook(connect(emulator, registry_path=str(tmp_path / "r"), foreign_uploaders="true"))
    theirs = emulator.foreign_upload(3)
    report = hook.cleanup_orphans()
    assert report.deleted == [] and sorted(f.uuid for f in report.reported) == sorted(theirs)
    assert all(f.expires_by - f.first_seen == 24 * 3600 for f in report.reported)
    assert emulator.stats()["files"]["count"] == 3
    hook.close()


def test_the_cli_lists_then_deletes(emulator: Any, connect: Callable[..., str], tmp_path: Path) -> None:
    conn_id = connect(emulator, registry_path=str(tmp_path / "r"))
    emulator.foreign_upload(2)
    env = dict(os.environ)
    command = [sys.executable, "-m", "airflow_provider_delix.cleanup", "--conn-id", conn_id]
    dry = subprocess.run(
        [*command, "--dry-run"], env=env, check=False, capture_output=True, text=True, timeout=120
    )
    assert dry.returncode == 0, dry.stderr
    assert (
        len(json.loads(dry.stdout.splitlines()[-1])["would_delete"]) == 2
        and emulator.stats()["files"]["count"] == 2
    )
    done = subprocess.run(command, env=env, check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (
        len(json.loads(done.stdout.splitlines()[-1])["deleted"]) == 2
        and emulator.stats()["files"]["count"] == 0
    )
    assert "2 that no task on the key claims" in done.stderr


def test_a_restart_forgets_files_and_unfinished_extracts_but_keeps_the_ledger(
    emulator: Any, hook: DelixHook
) -> None:
    (stored,) = hook.upload_files([("a.png", _png())])
    assert isinstance(stored, StoredFile)
    hook.extract_images([stored.uuid])
    charged = emulator.stats()["credits"]["charged"]
    assert emulator.restart() == {"restarted": True, "files_lost": 1, "extracts_lost": 0}
    stats = emulator.stats()
    assert stats["files"]["count"] == 0 and stats["credits"]["charged"] == charged and stats["charges"]


def test_the_connection_extras_are_never_sent_as_headers(emulator: Any, connect: Callable[..., str]) -> None:
    hook = DelixHook(connect(emulator, registry_path="/tmp/somewhere", foreign_uploaders=True))
    session = hook.get_conn()
    assert "registry_path" not in session.headers and "foreign_uploaders" not in session.headers
    assert hook.key_registry().foreign_uploaders is True
    hook.close()


def _png() -> bytes:
    from airflow_provider_delix.emulator.account_events import _PNG

    return _PNG


def test_without_registry_path_a_multi_host_executor_only_reports(
    emulator: Any, connect: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default registry is this host's: on Celery it cannot see the other workers' claims."""
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    assert DelixHook(connect(emulator)).key_registry().foreign_uploaders is True
    shared = DelixHook(connect(emulator, registry_path="/tmp/shared")).key_registry()
    assert shared.foreign_uploaders is False
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    assert DelixHook(connect(emulator)).key_registry().foreign_uploaders is False
