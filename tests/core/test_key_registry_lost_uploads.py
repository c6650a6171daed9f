"""The key registry when upload answers are lost: sweeps never take a live claim, leftovers go.

An upload whose answer was lost may have stored its files; they hold their slots until a sweep
has looked, a concurrent sweep never deletes what a live writer claimed, and a run ends with
nothing stored even when every other upload was stored twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeDelix
from registry_helpers import registry

from airflow_provider_delix.api.errors import DelixStorageFullError, DelixTransientError
from airflow_provider_delix.api.models import StoredFile
from airflow_provider_delix.core.budget import StorageBudget
from airflow_provider_delix.core.orphan_sweep import sweep_orphans
from airflow_provider_delix.core.run_cleanup import ClaimingClient, RunCleanup

pytestmark = pytest.mark.timeout(60)


class LosingClient(FakeDelix):
    """Stores every ``lose_every``-th upload and then loses its answer (a dropped connection)."""

    def __init__(self, lose_every: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lose_every, self._n, self.lost = lose_every, 0, 0

    def upload_files(self, files: Any) -> Any:
        with self.lock:
            self._n += 1
            lose = self._n % self.lose_every == 0
        results = super().upload_files(files)
        if lose:
            with self.lock:
                self.lost += len(results)
            raise DelixTransientError("the connection dropped after the request was sent")
        return results


def test_concurrent_writers_and_sweeps_never_delete_a_live_claim(tmp_path: Path) -> None:
    """Four writers upload, check and delete their own files while a fifth sweeps in a loop."""
    fake, reg = LosingClient(lose_every=4, max_files=1000), registry(tmp_path)
    stolen: list[str] = []
    done = threading.Event()

    def writer(i: int) -> None:
        cleanup = RunCleanup(reg, StorageBudget(1000, 10**9), tag=f"w{i}")
        cleanup.start()
        client = ClaimingClient(fake, cleanup)
        for _ in range(15):
            try:
                mine = [r.uuid for r in client.upload_files([("a.png", b"a"), ("b.png", b"b")])]
            except DelixTransientError:
                continue
            time.sleep(0.002)
            stolen.extend(u for u in mine if u not in fake.stored)
            for uuid in mine:
                client.delete_file(uuid)
        cleanup.writer.close()  # type: ignore[union-attr]

    def sweeper() -> None:
        while not done.is_set():
            sweep_orphans(fake, reg, me="sweeper", poll=0.001)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    sweeping = threading.Thread(target=sweeper)
    sweeping.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    sweeping.join()
    assert stolen == [], "a sweep deleted a file a live writer had claimed"
    assert fake.lost > 0
    sweep_orphans(fake, reg)
    assert fake.stored == {}, "every file of a lost answer is swept once its intent is resolved"


def test_registry_writes_stay_two_per_upload(tmp_path: Path) -> None:
    fake, reg = FakeDelix(), registry(tmp_path)
    cleanup = RunCleanup(reg, StorageBudget(30, 10**9), tag="w")
    cleanup.start()
    client = ClaimingClient(fake, cleanup)
    for _ in range(5):
        for r in client.upload_files([("a.png", b"a")] * 5):
            client.delete_file(r.uuid)  # type: ignore[union-attr]
    assert cleanup.writer is not None and cleanup.writer.writes == 10
    body = json.loads((tmp_path / "registry" / "acct" / "claims" / "w.json").read_bytes())
    assert len(body["claims"]) == 5, "deleted files leave the claims with the next rewrite"
    cleanup.finish(sweep=False)
    assert not os.listdir(tmp_path / "registry" / "acct" / "claims")


def test_a_lost_upload_holds_its_slots_until_a_sweep_has_looked(tmp_path: Path) -> None:
    fake, reg = LosingClient(lose_every=1), registry(tmp_path)
    budget = StorageBudget(30, 10**9)
    cleanup = RunCleanup(reg, budget, tag="w")
    client = ClaimingClient(fake, cleanup)
    cleanup.client = client
    cleanup.start()
    release = threading.Event()
    original = fake.list_files

    def slow_list() -> list[StoredFile]:
        release.wait(10)
        return original()

    fake.list_files = slow_list  # type: ignore[method-assign]
    with pytest.raises(DelixTransientError):
        client.upload_files([("a.png", b"aaa"), ("b.png", b"bbb")])
    assert budget.usage().files == 2, "the lost upload's files may be stored: their slots stay held"
    release.set()
    cleanup.finish(sweep=True)
    assert budget.usage().files == 0 and fake.stored == {} and cleanup.deleted == 2


class RetriedAfterLoss(FakeDelix):
    """Every ``every``-th upload is stored twice: the first answer was lost, the hook's retry answered."""

    def __init__(self, every: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.every, self._n, self.leaked = every, 0, 0
        self.copies: set[str] = set()  # uuids of the copies whose answer was lost
        self.swept: list[str] = []  # uuids deleted by a sweep's delete threads

    def delete_file(self, uuid: str) -> bool:
        gone = super().delete_file(uuid)
        if gone and threading.current_thread().name.startswith("delix-sweep"):
            with self.lock:
                self.swept.append(uuid)
        return gone

    def upload_files(self, files: Any) -> Any:
        with self.lock:
            self._n += 1
            twice = self._n % self.every == 0
        if twice:
            with contextlib.suppress(DelixStorageFullError):  # a full account stored nothing
                copies = super().upload_files(files)
                with self.lock:
                    self.leaked += len(copies)
                    self.copies.update(c.uuid for c in copies if isinstance(c, StoredFile))
        return super().upload_files(files)


def test_a_run_sweeps_the_leftovers_of_lost_answers_and_ends_with_nothing_stored(tmp_path: Path) -> None:
    from fakes import images

    from airflow_provider_delix.core.options import PipelineTuning, RunOptions
    from airflow_provider_delix.core.pipeline import ExtractionPipeline
    from airflow_provider_delix.core.store import OutputStore

    fake, reg = RetriedAfterLoss(every=2), registry(tmp_path)
    store = OutputStore(str(tmp_path / "out"), heartbeat_seconds=0.05, stale_after_seconds=0.3)
    tuning = PipelineTuning(storage_backoff=(0.01, 0.05))
    pipeline = ExtractionPipeline(fake, store, RunOptions(), tuning=tuning, run_id="r", registry=reg)
    pipeline.cleanup.refusal_interval = 0.0
    summary = pipeline.run(iter(images(90)))
    assert fake.leaked >= 30, "the leftovers alone would have filled the account"
    assert summary.pages_left == 0 and summary.rows["processed"] == 90
    assert fake.stored == {} and summary.orphans_deleted == fake.leaked
    assert sorted(fake.swept) == sorted(fake.copies), "a sweep deletes the lost copies and nothing else"
    assert summary.requests["list_files"] >= 2 and summary.to_dict()["orphans_reported"] == 0
