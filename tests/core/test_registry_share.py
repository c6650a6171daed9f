"""``RunCleanup.fair_share``: the equal share of the account the storage window keeps to.

It is read from the key registry (live writers) and the last sweep (files no visible writer
claims), against a real registry folder; the window's use of it is in ``test_window.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import FakeDelix
from test_key_registry import dead_writer, registry

from airflow_provider_delix.api.models import StoredFile
from airflow_provider_delix.core.budget import StorageBudget
from airflow_provider_delix.core.orphan_sweep import sweep_orphans
from airflow_provider_delix.core.run_cleanup import ClaimingClient, RunCleanup

pytestmark = pytest.mark.timeout(60)


def test_without_a_registry_there_is_no_share() -> None:
    assert RunCleanup(None, StorageBudget(30, 10**9), tag="a").fair_share() is None


def test_the_share_splits_the_account_among_live_writers_less_what_nobody_visible_claims(
    tmp_path: Path,
) -> None:
    fake, reg = FakeDelix(), registry(tmp_path, foreign_uploaders=True)  # tasks on other hosts
    now = [0.0]
    a = RunCleanup(reg, StorageBudget(30, 10**9), tag="a", clock=lambda: now[0])
    b = RunCleanup(reg, StorageBudget(30, 10**9), tag="b", clock=lambda: now[0])
    a.start()
    assert a.fair_share() == 30.0  # alone on the key
    b.start()
    assert a.fair_share() == 30.0  # read at most every share_interval: refusals ask, often
    now[0] += a.share_interval
    assert a.fair_share() == 15.0
    dead_writer(reg, "killed", claims=[])  # a stopped task is no longer sharing
    now[0] += a.share_interval
    assert a.fair_share() == 15.0

    for _ in range(6):  # files of uploaders this registry cannot see
        fake.put_foreign(b"x")
    a.client = ClaimingClient(fake, a)
    report = a.sweep("middle")
    assert report is not None and report.unclaimed == 6 and not report.deleted  # reported only
    now[0] += a.share_interval
    assert a.fair_share() == 12.0  # (30 - 6) / 2

    b.finish(sweep=False)
    now[0] += a.share_interval
    assert a.fair_share() == 24.0  # b left: a may use everything the others leave
    now[0] += a.unseen_ttl  # no refusal, so no sweep since: the count is no longer trusted
    assert a.fair_share() == 30.0
    a.finish(sweep=False)


def test_a_registry_that_cannot_be_read_gives_no_share(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    cleanup = RunCleanup(reg, StorageBudget(30, 10**9), tag="a")
    cleanup.start()

    def broken() -> None:
        raise OSError("registry unreachable")

    reg.read = broken  # type: ignore[assignment,method-assign]
    assert cleanup.fair_share() is None  # the window falls back to AIMD alone
    cleanup.finish(sweep=False)


def test_a_file_deleted_between_the_listing_and_the_claims_read_is_not_counted_unclaimed(
    tmp_path: Path,
) -> None:
    # Without the read before the listing, every delete racing a sweep showed up as a file
    # nobody claims: reported as foreign, and taken off every task's share.
    fake, reg = FakeDelix(), registry(tmp_path, foreign_uploaders=True)
    writer = reg.writer("a")
    (x,) = [r.uuid for r in fake.upload_files([("a.png", b"a")])]
    writer.answered(writer.intend(1), [x])
    listing = fake.list_files

    def list_then_delete() -> list[StoredFile]:
        files = listing()
        fake.delete_file(x)  # the writer's delete lands just after the snapshot...
        writer.dropped([x])
        writer.answered(writer.intend(1), [])  # ...and its claims are rewritten without x
        return files

    fake.list_files = list_then_delete  # type: ignore[method-assign]
    report = sweep_orphans(fake, reg, me="sweeper")
    assert report.listed == 1 and report.unclaimed == 0 and not report.reported
    writer.close()
