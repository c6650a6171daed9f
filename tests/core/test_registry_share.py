"""``RunCleanup.fair_share``: the equal share of the account the storage window keeps to.

It is read from the key registry (live writers) and the last sweep (files no visible writer
claims), against a real registry folder; the window's use of it is in ``test_window.py``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from fakes import FakeDelix, images
from test_key_registry import dead_writer, registry

from airflow_provider_delix.api.models import StoredFile
from airflow_provider_delix.core.budget import StorageBudget
from airflow_provider_delix.core.key_registry import KeyRegistry, RegistryWriter
from airflow_provider_delix.core.options import PipelineTuning, RunOptions
from airflow_provider_delix.core.orphan_sweep import SweepReport, sweep_orphans
from airflow_provider_delix.core.pipeline import ExtractionPipeline
from airflow_provider_delix.core.run_cleanup import ClaimingClient, RunCleanup
from airflow_provider_delix.core.store import OutputStore

pytestmark = pytest.mark.timeout(60)


def test_without_a_registry_there_is_no_share() -> None:
    assert RunCleanup(None, StorageBudget(30, 10**9), tag="a").fair_share() is None


def test_the_share_splits_the_account_among_the_live_writers(tmp_path: Path) -> None:
    reg = registry(tmp_path)  # every uploader on the key uses this registry
    now = [0.0]
    a = RunCleanup(reg, StorageBudget(30, 10**9), tag="a", clock=lambda: now[0])
    b = RunCleanup(reg, StorageBudget(30, 10**9), tag="b", clock=lambda: now[0])
    a.start()
    assert a.fair_share() == 30.0  # alone on the key
    b.start()
    assert a.fair_share() == 30.0  # cached: read at most every second or so
    now[0] += 10
    assert a.fair_share() == 15.0
    dead_writer(reg, "killed", claims=[])  # a stopped task is no longer sharing
    now[0] += 10
    assert a.fair_share() == 15.0
    b.finish(sweep=False)
    now[0] += 10
    assert a.fair_share() == 30.0
    assert a.shares is not None and a.shares.reads == 4
    a.finish(sweep=False)


def test_a_partial_registry_takes_off_what_nobody_visible_claims_and_keeps_that_count_fresh(
    tmp_path: Path,
) -> None:
    fake, reg = FakeDelix(), registry(tmp_path, foreign_uploaders=True)  # tasks on other hosts
    now = [0.0]
    a = RunCleanup(reg, StorageBudget(30, 10**9), tag="a", clock=lambda: now[0])
    b = RunCleanup(reg, StorageBudget(30, 10**9), tag="b", clock=lambda: now[0])
    a.client = ClaimingClient(fake, a)
    a.start()
    # Alone in a registry that may see only part of the key (a Kubernetes pod's own registry):
    # no share, or it would never give way to the tasks it cannot see.
    assert a.fair_share() is None
    b.start()
    for _ in range(6):  # files of uploaders this registry cannot see
        fake.put_foreign(b"x")
    report = a.sweep("middle")
    assert report is not None and report.unclaimed == 6 and not report.deleted  # reported only
    now[0] += 10
    assert a.fair_share() == 12.0  # (30 - 6) / 2
    for gone in list(fake.stored)[:4]:
        fake.delete_file(gone)  # the other hosts' tasks hold less now
    now[0] += 20  # the count is older than unseen_ttl: reading the share asks for a sweep
    assert a.fair_share() == 12.0
    thread = a._thread
    if thread is not None:
        thread.join(10)
    now[0] += 10
    assert a.fair_share() == 14.0  # (30 - 2) / 2
    b.finish(sweep=False)
    now[0] += 10
    assert a.fair_share() is None  # alone again in a partial registry
    a.finish(sweep=False)


def test_a_registry_that_cannot_be_read_gives_no_share_and_is_not_read_again_at_once(
    tmp_path: Path,
) -> None:
    reg = registry(tmp_path)
    now = [0.0]
    cleanup = RunCleanup(reg, StorageBudget(30, 10**9), tag="a", clock=lambda: now[0])
    cleanup.start()
    calls = []

    def broken() -> None:
        calls.append(now[0])
        raise OSError("registry unreachable")

    reg.read = broken  # type: ignore[assignment,method-assign]
    assert cleanup.fair_share() is None  # the window runs on AIMD alone
    now[0] += 10
    assert cleanup.fair_share() is None and calls == [0.0]  # not on every upload and refusal
    now[0] += 30
    assert cleanup.fair_share() is None and calls == [0.0, 40.0]
    cleanup.finish(sweep=False)


def test_a_size_refusal_cuts_the_window_even_below_the_share(tmp_path: Path) -> None:
    # The share counts files; the account is full of bytes here (someone else's big files).
    fake = FakeDelix(max_bytes=3_000, upload_latency=0.002, delete_latency=0.002)
    reg = KeyRegistry(str(tmp_path / "registry"), "acct", heartbeat_seconds=0.05, stale_after_seconds=5)
    store = OutputStore(f"memory://share-{uuid.uuid4().hex}", heartbeat_seconds=0.05, stale_after_seconds=0.3)
    pipeline = ExtractionPipeline(
        fake, store, RunOptions(), tuning=PipelineTuning(), run_id="r", sleep=lambda _s: None, registry=reg
    )
    summary = pipeline.run(iter(images(40, size=300)))
    assert summary.rows["processed"] == 40 and fake.ours_left() == set()
    state = pipeline.window.state()
    assert fake.storage_full_raised > 0  # refused on size, holding at most 10 of a share of 30
    assert state.decreases >= 1 and state.limit < 30


def claimed_upload(fake: FakeDelix, reg: KeyRegistry) -> tuple[RegistryWriter, str]:
    """Writer ``a`` with one stored file it claims."""
    writer = reg.writer("a")
    (x,) = [r.uuid for r in fake.upload_files([("a.png", b"a")]) if isinstance(r, StoredFile)]
    writer.answered(writer.intend(1), [x])
    return writer, x


def sweep_with(fake: FakeDelix, reg: KeyRegistry, after_listing: Callable[[], None]) -> SweepReport:
    """A sweep during which ``after_listing`` happens just after the account is listed."""
    listing = fake.list_files

    def listed() -> list[StoredFile]:
        files = listing()
        after_listing()
        return files

    fake.list_files = listed  # type: ignore[method-assign]
    return sweep_orphans(fake, reg, me="sweeper")


def test_a_file_deleted_between_the_listing_and_the_claims_read_is_not_counted_unclaimed(
    tmp_path: Path,
) -> None:
    # Without the read before the listing, every delete racing a sweep showed up as a file
    # nobody claims: reported as foreign, and taken off every task's share.
    fake, reg = FakeDelix(), registry(tmp_path, foreign_uploaders=True)
    writer, x = claimed_upload(fake, reg)

    def delete() -> None:
        fake.delete_file(x)  # the writer's delete lands just after the snapshot...
        writer.dropped([x])
        writer.answered(writer.intend(1), [])  # ...and its claims are rewritten without x

    report = sweep_with(fake, reg, delete)
    assert report.listed == 1 and report.unclaimed == 0 and not report.reported
    writer.close()


def test_a_writer_that_finishes_during_a_sweep_leaves_no_unclaimed_file_behind(tmp_path: Path) -> None:
    fake, reg = FakeDelix(), registry(tmp_path, foreign_uploaders=True)
    writer, x = claimed_upload(fake, reg)

    def finish() -> None:
        fake.delete_file(x)  # its last delete, then it leaves the registry
        writer.dropped([x])
        writer.close()

    report = sweep_with(fake, reg, finish)
    assert report.listed == 1 and report.unclaimed == 0 and not report.reported


def test_a_writer_that_dies_during_a_sweep_still_has_its_files_deleted(tmp_path: Path) -> None:
    fake, reg = FakeDelix(), registry(tmp_path)  # deletion mode: the registry sees the whole key
    (x,) = [r.uuid for r in fake.upload_files([("a.png", b"a")])]
    lease = {"run_tag": "a", "host": "elsewhere", "pid": 1, "beat": 1, "heartbeat": time.time()}
    reg.state.write_bytes(f"{reg.state.root}/writers/a.json", json.dumps(lease).encode())
    body = {"intents": {}, "claims": [x]}
    reg.state.write_bytes(f"{reg.state.root}/claims/a.json", json.dumps(body).encode())
    # Killed just after the listing: its lease stops beating, its claims stay.
    report = sweep_with(fake, reg, lambda: dead_writer(reg, "a", claims=[x]))
    assert report.dead_claimed == 1 and report.deleted == [x] and x not in fake.stored
