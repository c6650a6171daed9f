"""The key registry and the orphan rule, on the fake account, without Airflow.

A sweep must never delete a file that a live writer claims or may be about to claim (an
upload whose answer is not in yet), must delete what dead writers and lost answers left, and
with ``foreign_uploaders`` must only report files nobody claims.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeDelix
from registry_helpers import dead_writer, registry, upload

from airflow_provider_delix.api.errors import DelixApiError
from airflow_provider_delix.api.models import ErrorCode
from airflow_provider_delix.core.key_registry import KeyRegistry, account_fingerprint
from airflow_provider_delix.core.orphan_sweep import FILE_LIFETIME_SECONDS, sweep_orphans

pytestmark = pytest.mark.timeout(60)


def test_the_fingerprint_names_the_account_never_the_key() -> None:
    a = account_fingerprint("https://api.delix.ir/v1/", "secret-key")
    assert a == account_fingerprint("https://api.delix.ir/v1", "secret-key")
    assert a != account_fingerprint("https://api.delix.ir/v1", "other-key")
    assert a != account_fingerprint("http://127.0.0.1:8080/v1", "secret-key")
    assert "secret" not in a and len(a) == 24


def test_a_live_writers_files_are_never_deleted_and_unclaimed_ones_are(tmp_path: Path) -> None:
    fake, reg = FakeDelix(), registry(tmp_path)
    live = reg.writer("live")
    intent = live.intend(2)
    mine = upload(fake, 2)
    live.answered(intent, mine)
    stray = fake.put_foreign(b"left by a lost answer")
    report = sweep_orphans(fake, reg, me="sweeper")
    assert report.deleted == [stray] and set(fake.stored) == set(mine)
    assert (report.listed, report.live_others, report.live_writers, report.unclaimed) == (3, 2, 1, 1)
    assert "2 of 1 other live task(s)" in report.describe()
    live.close()
    assert not list((tmp_path / "registry" / "acct" / "claims").iterdir())


def test_an_intent_pending_at_the_snapshot_is_waited_for(tmp_path: Path) -> None:
    """The file is stored but its answer not in yet: the sweep waits, then sees it claimed."""
    fake, reg = FakeDelix(), registry(tmp_path)
    writer = reg.writer("w")
    intent = writer.intend(1)
    (uuid,) = upload(fake)  # stored; the answer is "on the wire"
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 3:
            writer.answered(intent, [uuid])

    report = sweep_orphans(fake, reg, me="sweeper", sleep=sleep, poll=0.01)
    assert len(waits) == 3 and report.deleted == [] and uuid in fake.stored
    assert report.live_others == 1 and report.pending_files == 0


def test_an_intent_resolved_as_lost_leaves_an_orphan_that_is_deleted(tmp_path: Path) -> None:
    fake, reg = FakeDelix(), registry(tmp_path)
    writer = reg.writer("w")
    intent = writer.intend(1)
    (uuid,) = upload(fake)
    report = sweep_orphans(fake, reg, me="sweeper", sleep=lambda _s: writer.lost(intent), poll=0.01)
    assert report.deleted == [uuid] and fake.stored == {}
    assert writer.lost_files == 1


def test_an_intent_still_pending_after_the_wait_protects_every_unclaimed_file(tmp_path: Path) -> None:
    fake, reg = FakeDelix(), registry(tmp_path)
    writer = reg.writer("w")
    writer.intend(3)
    stray = fake.put_foreign(b"maybe that upload's")
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    report = sweep_orphans(fake, reg, intent_wait=2.0, poll=0.5, clock=lambda: now[0], sleep=sleep)
    assert report.deleted == [] and stray in fake.stored
    assert report.pending_files == 3 and [f.uuid for f in report.reported] == [stray]
    writer.close()


def test_dead_writers_claims_are_swept_and_their_records_forgotten(tmp_path: Path) -> None:
    fake, reg = FakeDelix(), registry(tmp_path)
    left = upload(fake, 2)
    dead_writer(reg, "killed", left, intents={"i7": 5})  # its pending intent is not waited for
    report = sweep_orphans(fake, reg, intent_wait=30.0)
    assert sorted(report.deleted) == sorted(left) and fake.stored == {}
    assert report.dead_claimed == 2 and report.pending_files == 0
    assert reg.read().writers == {}, "a dead writer with nothing left on the account is forgotten"


def test_a_writer_whose_process_is_gone_on_this_host_is_dead_at_once(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    fake, reg = FakeDelix(), registry(tmp_path, stale_after_seconds=3600.0)
    (uuid,) = upload(fake)
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True
    )
    lease = {
        "run_tag": "gone",
        "host": socket.gethostname(),
        "pid": int(child.stdout),
        "heartbeat": time.time(),
    }
    reg.state.write_bytes(f"{reg.state.root}/writers/gone.json", json.dumps(lease).encode())
    reg.state.write_bytes(f"{reg.state.root}/claims/gone.json", json.dumps({"claims": [uuid]}).encode())
    assert sweep_orphans(fake, reg).deleted == [uuid]


def test_foreign_uploaders_unclaimed_files_are_reported_with_expiry_never_deleted(tmp_path: Path) -> None:
    fake, reg = FakeDelix(), registry(tmp_path, foreign_uploaders=True)
    ours = upload(fake)
    dead_writer(reg, "killed", ours)
    theirs = fake.put_foreign(b"someone else's")
    before = time.time()
    first = sweep_orphans(fake, reg)
    assert first.deleted == ours, "a dead writer's claims are ours even on a shared key"
    (item,) = first.reported
    assert item.uuid == theirs and theirs in fake.stored
    assert (
        before <= item.first_seen <= time.time()
        and item.expires_by == item.first_seen + FILE_LIFETIME_SECONDS
    )
    again = sweep_orphans(fake, reg)
    assert again.reported == first.reported, "first seen is remembered across sweeps"
    assert "foreign uploaders'" in again.describe()


def test_a_file_under_processing_is_skipped_and_reported(tmp_path: Path) -> None:
    fake, reg = FakeDelix(), registry(tmp_path)
    busy, free = fake.put_foreign(b"queued"), fake.put_foreign(b"free")

    def delete(uuid: str) -> bool:
        if uuid == busy:
            raise DelixApiError("in use", error=ErrorCode.FILE_UNDER_PROCESSING, status_code=422)
        return FakeDelix.delete_file(fake, uuid)

    fake.delete_file = delete  # type: ignore[method-assign]
    report = sweep_orphans(fake, reg)
    assert report.deleted == [free] and report.busy == [busy] and busy in fake.stored


def test_dry_run_deletes_nothing_and_says_what_would_go(tmp_path: Path) -> None:
    fake, reg = FakeDelix(), registry(tmp_path)
    stray = fake.put_foreign(b"x")
    report = sweep_orphans(fake, reg, dry_run=True)
    assert report.would_delete == [stray] and report.deleted == [] and stray in fake.stored


def test_a_storage_full_message_says_whose_files_fill_the_account(tmp_path: Path) -> None:
    from fakes import FakeClock, images

    from airflow_provider_delix.core.options import RunOptions
    from airflow_provider_delix.core.pipeline import ExtractionPipeline
    from airflow_provider_delix.core.store import OutputStore
    from airflow_provider_delix.core.summary import StorageWaitTimeoutError

    fake, reg, clock = FakeDelix(max_files=4), registry(tmp_path, foreign_uploaders=True), FakeClock()
    foreign = [fake.put_foreign(f"theirs-{i}".encode()) for i in range(4)]
    store = OutputStore(str(tmp_path / "out"), heartbeat_seconds=0.05, stale_after_seconds=0.3)
    options = RunOptions(storage_wait_timeout=20, max_concurrency=1)
    pipeline = ExtractionPipeline(fake, store, options, clock=clock, sleep=clock.sleep, registry=reg)
    with pytest.raises(StorageWaitTimeoutError) as caught:
        pipeline.run(iter(images(3)))
    message = str(caught.value)
    assert "the account held 4 file(s) at the last look: 0 this task's" in message
    assert "4 that no task on the key claims (foreign uploaders' or left by lost answers)" in message
    assert set(fake.stored) == set(foreign), "a key with foreign uploaders: nothing unclaimed is deleted"
    summary = caught.value.summary
    assert sorted(f["uuid"] for f in summary.orphans_reported) == sorted(foreign)
    assert summary.to_dict()["orphans_reported"] == 4


def test_a_stop_cuts_the_wait_and_then_nothing_unclaimed_is_deleted(tmp_path: Path) -> None:
    fake, reg = FakeDelix(), registry(tmp_path)
    reg.writer("busy").intend(2)  # another task's upload that will not be answered soon
    stray = fake.put_foreign(b"maybe that upload's")
    waits: list[float] = []
    report = sweep_orphans(fake, reg, intent_wait=600.0, sleep=waits.append, stopped=lambda: len(waits) >= 2)
    assert len(waits) == 2 and report.deleted == [] and stray in fake.stored and report.pending_files == 2


def test_concurrent_changes_share_rewrites_and_each_is_on_record_when_its_call_returns(
    tmp_path: Path,
) -> None:
    """Group commit: on slow storage (S3: a PUT per write) threads do not queue one write each."""
    reg = registry(tmp_path)
    writer = reg.writer("w")
    real = reg.state.write_bytes

    def slow(path: str, data: bytes) -> None:
        time.sleep(0.05)
        real(path, data)

    reg.state.write_bytes = slow  # type: ignore[method-assign]
    missing: list[str] = []

    def one() -> None:
        intent = writer.intend(1)
        if intent not in reg.read().writers["w"].intents:
            missing.append(intent)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert missing == [], "an intent must be on record before its upload is sent"
    assert len(reg.read().writers["w"].intents) == 8 and writer.writes < 8
    writer.close()


def test_an_unwritable_registry_fails_the_run_before_any_upload(tmp_path: Path) -> None:
    from fakes import images

    from airflow_provider_delix.core.options import RunOptions
    from airflow_provider_delix.core.pipeline import ExtractionPipeline
    from airflow_provider_delix.core.run_cleanup import RegistryUnavailableError
    from airflow_provider_delix.core.store import OutputStore

    fake, reg = FakeDelix(), registry(tmp_path)

    def refuse(path: str, data: bytes) -> None:
        raise PermissionError("read-only")

    reg.state.write_bytes = refuse  # type: ignore[method-assign]
    store = OutputStore(str(tmp_path / "out"), heartbeat_seconds=0.05, stale_after_seconds=0.3)
    with pytest.raises(RegistryUnavailableError, match="registry_path"):
        ExtractionPipeline(fake, store, RunOptions(), registry=reg).run(iter(images(3)))
    assert fake.calls["upload_files"] == 0


def test_the_registry_works_on_object_storage_too() -> None:
    """memory:// stands in for s3:// (no directories, one PUT per write)."""
    import uuid as uuidlib

    fake = FakeDelix()
    reg = KeyRegistry(f"memory://registry-{uuidlib.uuid4().hex}", "acct", heartbeat_seconds=0.05)
    live = reg.writer("live")
    mine = upload(fake)
    live.answered(live.intend(1), mine)
    dead_writer(reg, "killed", upload(fake))
    stray = fake.put_foreign(b"lost")
    report = sweep_orphans(fake, reg)
    assert set(fake.stored) == set(mine) and report.dead_claimed == 1 and stray in report.deleted
    live.close()
    assert set(reg.read().writers) == set()


@pytest.mark.parametrize(("others", "foreign", "start"), [(0, False, 30), (1, False, 5), (0, True, 5)])
def test_the_storage_window_starts_full_only_when_the_registry_knows_the_run_is_alone(
    tmp_path: Path, others: int, foreign: bool, start: int
) -> None:
    from fakes import images

    from airflow_provider_delix.core.options import RunOptions
    from airflow_provider_delix.core.pipeline import ExtractionPipeline
    from airflow_provider_delix.core.store import OutputStore

    reg = registry(tmp_path, foreign_uploaders=foreign)
    live = [reg.writer(f"other{i}") for i in range(others)]  # other tasks on the key, alive
    limits: list[int] = []
    fake = FakeDelix()
    upload_files = fake.upload_files

    def watching(files: Any) -> Any:
        limits.append(pipeline.window.limit)
        return upload_files(files)

    fake.upload_files = watching  # type: ignore[method-assign]
    pipeline = ExtractionPipeline(fake, OutputStore(str(tmp_path / "out")), RunOptions(), registry=reg)
    pipeline.run(iter(images(10)))
    for writer in live:
        writer.close()
    assert limits and limits[0] == start
