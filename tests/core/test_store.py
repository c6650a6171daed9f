"""OutputStore: streaming, atomic parts, journal recovery, upload records, resume keys, threads, memory."""

from __future__ import annotations

import gc
import threading
import time
import uuid
from pathlib import Path

import fsspec
import pandas as pd
import pyarrow.parquet as pq
import pytest

from airflow_provider_delix.core.store import OutputStore
from airflow_provider_delix.core.table import PageRow, RowStatus, open_output, read_table

FAST = {"heartbeat_seconds": 0.05, "stale_after_seconds": 0.3}


def rows(chunk: int, n: int = 5, status: RowStatus = RowStatus.PROCESSED, text: str = "متن") -> list[PageRow]:
    return [
        PageRow(
            source=f"scan-{chunk}.pdf",
            source_sha256=f"sha{chunk}",
            page_number=i + 1,
            status=status,
            text=text if status is RowStatus.PROCESSED else None,
        )
        for i in range(n)
    ]


def files(out: str, under: str = "") -> list[str]:
    fs, path = open_output(out)
    base = f"{path}/{under}".rstrip("/")
    return sorted(p[len(path) + 1 :] for p in fs.find(base)) if fs.exists(base) else []


def put(out: str, relative: str, data: bytes) -> None:
    fs, path = open_output(out)
    fs.makedirs(f"{path}/{relative}".rsplit("/", 1)[0], exist_ok=True)
    fs.pipe_file(f"{path}/{relative}", data)


def test_streaming_rotates_parts_and_pandas_reads_them_all(out: str) -> None:
    with OutputStore(out, run_tag="manual__2024:try1", row_group_rows=3, rows_per_file=10, **FAST) as store:
        for chunk in range(10):
            store.append(f"c{chunk}", rows(chunk))
            # The state sits inside the output while writing; pandas must not trip over it.
            assert len(pd.read_parquet(out)) == 10 * (len(store.parts))
            journaled = any(p.startswith("_delix_state/journal/") for p in files(out))
            assert journaled == (chunk % 2 == 0)  # the open part's rows live in journals
    parts = [p for p in files(out) if p.startswith("part-")]
    assert len(parts) == 5 and all(p.startswith("part-manual__2024_try1-") for p in parts)
    fs, path = open_output(out)
    with fs.open(f"{path}/{parts[0]}", "rb") as handle:
        assert pq.ParquetFile(handle).metadata.num_row_groups == 2
    frame = pd.read_parquet(out)
    assert len(frame) == 50 and set(frame["text"]) == {"متن"}
    assert len(read_table(out)) == 50
    assert not any(p.startswith("_delix_state/journal/") for p in files(out))  # all published
    assert store.counts == {"processed": 50, "failed": 0, "rejected": 0, "invalid": 0}


def test_state_dir_and_hidden_files_are_ignored_by_pandas(out: str) -> None:
    with OutputStore(out, **FAST) as store:
        store.append("c0", rows(0))
    put(out, "_delix_state/partial/x/part-x-00000.parquet", b"not parquet")
    put(out, "_delix_state/junk.json", b"{}")
    put(out, ".part-y-00000.parquet", b"half a file")
    assert len(pd.read_parquet(out)) == 5
    assert len(read_table(out)) == 5


def test_crash_then_recover_publishes_journal_rows_once(out: str) -> None:
    store = OutputStore(out, row_group_rows=4, rows_per_file=1000, **FAST)
    for chunk in range(3):
        store.append(f"c{chunk}", rows(chunk))
    store.uploads.record_uploaded("c9", ["u-crashed"])
    del store  # what a SIGKILL leaves: nothing closed, and the lease stops beating
    gc.collect()
    assert len(read_table(out)) == 0  # nothing half-written is visible
    assert len([p for p in files(out) if "/journal/" in p]) == 3
    assert any("/partial/" in p for p in files(out))

    time.sleep(0.35)
    with OutputStore(out, **FAST) as again:
        assert again.recover() == 15
        assert again.recover() == 0
        assert not [p for p in files(out) if "/journal/" in p or "/partial/" in p]
        assert again.uploads.orphaned_uploads() == ["u-crashed"]
        again.append("c5", rows(5))
    frame = read_table(out)
    assert len(frame) == 20
    assert not frame.duplicated(["source_sha256", "page_number", "source"]).any()


@pytest.mark.parametrize("round_", range(3))
def test_writers_starting_together_publish_a_dead_writers_journals_once(out: str, round_: int) -> None:
    """Mapped tasks retried together after their worker died: each sees the dead writer, and
    exactly one publishes its journalled rows (core/exclusive.py), however they interleave."""
    store = OutputStore(out, run_tag="died", row_group_rows=4, rows_per_file=1000, **FAST)
    for chunk in range(3):
        store.append(f"c{chunk}", rows(chunk))
    del store  # a SIGKILL: its lease stops beating
    gc.collect()
    time.sleep(0.35)
    both_listed = threading.Barrier(2, timeout=20)
    recovered: dict[str, int] = {}

    def retry(tag: str) -> None:
        with OutputStore(out, run_tag=tag, **FAST) as again:
            listed = again._lease.dead_writers

            def listed_then_wait(wait: bool) -> set[str]:
                dead = listed(wait)
                both_listed.wait()  # both know the dead writer before either publishes
                return dead

            again._lease.dead_writers = listed_then_wait  # type: ignore[method-assign]
            recovered[tag] = again.recover()

    threads = [threading.Thread(target=retry, args=(f"retry-{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(recovered.values()) == [0, 15]
    frame = read_table(out)
    assert len(frame) == 15 and not frame.duplicated(["source_sha256", "page_number", "source"]).any()
    assert not [p for p in files(out) if "/journal/" in p or "/recovering/" in p]


def _dead_journal(out: str, stored: list[PageRow]) -> None:
    from airflow_provider_delix.core.row_journal import journal_bytes
    from airflow_provider_delix.core.table import rows_to_record_batch

    put(out, "_delix_state/journal/dead-1/c0.arrow", journal_bytes(rows_to_record_batch(stored)))


def test_recover_skips_rows_whose_part_was_published_before_the_crash(out: str) -> None:
    published = rows(0)
    with OutputStore(out, **FAST) as first:
        first.append("c0", published)
    # A crash between publishing a part and deleting its journals leaves both behind.
    _dead_journal(out, published + rows(1))
    with OutputStore(out, **FAST) as store:
        assert store.recover() == 5  # only chunk 1's rows were missing
    assert len(read_table(out)) == 10
    assert not [p for p in files(out) if "/journal/" in p]


def test_recover_keeps_new_rows_of_pages_that_have_older_rows(out: str) -> None:
    """A page re-sent after a retryable failure, or done in another language, is a new row of a
    page the table already has: the dead writer's journal is its only copy."""
    lost = rows(0, status=RowStatus.FAILED)
    with OutputStore(out, **FAST) as first:
        first.append("c0", [PageRow(**{**_fields(r), "error": "answer_lost"}) for r in lost])
    english = [PageRow(**{**_fields(r), "language": "en"}) for r in rows(0)]
    _dead_journal(out, rows(0) + english)  # the re-sent pages, and the same pages in English
    with OutputStore(out, **FAST) as store:
        assert store.recover() == 10
    table = read_table(out)
    assert len(table) == 15 and (table["status"] == "processed").sum() == 10


def _fields(row: PageRow) -> dict[str, object]:
    return {name: getattr(row, name) for name in PageRow.__dataclass_fields__}


def test_live_writer_state_is_left_alone(out: str) -> None:
    live = OutputStore(out, **FAST)
    live.append("c0", rows(0))
    live.uploads.record_uploaded("c0", ["u-live"])
    other = OutputStore(out, **FAST)
    assert other.recover() == 0  # waited one stale period and saw the lease beat
    assert other.uploads.orphaned_uploads() == []
    assert ("sha0", 1) in other.done_keys()  # durable in the live writer's journal: do not redo
    other.close()
    live.close()
    assert len(read_table(out)) == 5


def test_upload_journal_round_trip(out: str) -> None:
    store = OutputStore(out, **FAST)
    store.uploads.record_uploaded("c1", ["u1", "u2"])
    store.uploads.record_uploaded("c1", ["u3"])  # a second answer for the same chunk merges
    store.uploads.record_uploaded("c2", ["u4"])
    store.uploads.record_deleted("c2")
    del store  # what a SIGKILL leaves: nothing closed, and the lease stops beating
    gc.collect()
    time.sleep(0.35)
    with OutputStore(out, **FAST) as again:
        again.uploads.record_uploaded("own", ["mine"])  # our own uploads are never orphans
        assert again.uploads.orphaned_uploads() == ["u1", "u2", "u3"]
        again.uploads.forget_uploads(["u1"])
        assert again.uploads.orphaned_uploads() == ["u2", "u3"]
        again.uploads.forget_uploads(["u2", "u3"])
        assert again.uploads.orphaned_uploads() == []
        assert [p for p in files(out) if "/uploads/" in p] == [
            f"_delix_state/uploads/{again.run_tag}/own.json"
        ]


def test_unanswered_uploads_are_counted_once_as_in_doubt(out: str) -> None:
    store = OutputStore(out, **FAST)
    store.uploads.record_upload_intent("c1", 5)  # answered: the intent is settled
    store.uploads.record_uploaded("c1", ["u1", "u2"])
    store.uploads.record_upload_intent("c2", 5)  # refused: nothing stored, nothing on record
    store.uploads.record_uploaded("c2", [])
    store.uploads.record_upload_intent("c3", 4)  # on the wire when the writer died
    store.uploads.record_uploaded("c4", ["u4"])
    store.uploads.record_upload_intent("c4", 1)  # a re-upload on the wire: known uuid plus one in doubt
    del store
    gc.collect()
    time.sleep(0.35)
    with OutputStore(out, **FAST) as again:
        assert again.uploads.orphaned_uploads() == ["u1", "u2", "u4"]
        assert again.uploads.uploads_in_doubt() == 5
        assert again.uploads.uploads_in_doubt() == 0, "reported once"
        again.uploads.forget_uploads(["u1", "u2", "u4"])
        assert [p for p in files(out) if "/uploads/" in p] == []


def test_done_keys_from_parts_and_journals(out: str) -> None:
    with OutputStore(out, **FAST) as store:
        store.append("c0", rows(0, 2))
        store.append("c1", rows(1, 1, RowStatus.FAILED))
        store.append(
            "c2", [PageRow(source="x.gif", source_sha256=None, page_number=1, status=RowStatus.INVALID)]
        )
    pending = OutputStore(out, **FAST)
    pending.append("c3", rows(3, 1))  # only in a journal so far
    # A row without a hash (an unreadable file) is keyed by its source name.
    assert pending.done_keys() == {("sha0", 1), ("sha0", 2), ("sha1", 1), ("sha3", 1), ("source:x.gif", 1)}
    assert pending.done_keys(statuses=[RowStatus.PROCESSED]) == {("sha0", 1), ("sha0", 2), ("sha3", 1)}
    pending.close()
    assert OutputStore(out, **FAST).done_keys(statuses=["failed"]) == {("sha1", 1)}


def test_concurrent_appends_lose_nothing(out: str) -> None:
    store = OutputStore(out, row_group_rows=7, rows_per_file=37, **FAST)

    def work(worker: int) -> None:
        for chunk in range(25):
            store.append(f"w{worker}-c{chunk}", rows(worker * 1000 + chunk))

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    frame = read_table(out, columns=["source_sha256", "page_number"])
    assert len(frame) == 8 * 25 * 5
    assert not frame.duplicated().any()
    assert store.counts["processed"] == 1000
    assert not [p for p in files(out) if "/journal/" in p]


def test_memory_stays_bounded_while_streaming_100k_rows() -> None:
    url = f"memory://big-{uuid.uuid4().hex}"
    text = "ب" * 1024  # 2 KB of UTF-8
    store = OutputStore(url, row_group_rows=1000, rows_per_file=20_000, **FAST)
    chunk_rows = 100
    for chunk in range(1000):
        store.append(f"c{chunk}", rows(chunk, chunk_rows, text=text))
        assert store.buffered_bytes < (1000 + chunk_rows) * 2200
    store.close()
    assert store.max_buffered_bytes < (1000 + chunk_rows) * 2200
    assert len(store.parts) == 5
    assert len(read_table(url, columns=["page_number"])) == 100_000
    fs, path = open_output(url)
    fs.rm(path, recursive=True)


def test_misuse_is_refused(out: str) -> None:
    store = OutputStore(out, **FAST)
    with pytest.raises(ValueError):
        store.append("../escape", rows(0))
    store.append("c0", rows(0))
    store.append("c0", rows(1))  # a second journal, not an overwrite of unpublished rows
    assert len([p for p in files(out) if "/journal/" in p]) == 2
    store.close()
    assert len(read_table(out)) == 10
    store.close()  # idempotent
    with pytest.raises(RuntimeError):
        store.append("c1", rows(1))


def test_exception_in_context_aborts_but_keeps_rows(out: str) -> None:
    with pytest.raises(KeyError), OutputStore(out, **FAST) as store:
        store.append("c0", rows(0))
        raise KeyError("boom")
    assert len(read_table(out)) == 5
    assert not [p for p in files(out) if "/writers/" in p]  # lease released: next run need not wait


def test_memory_filesystem_is_shared_by_url() -> None:
    # Guard for the tests above: memory:// must be one process-wide store, as they assume.
    assert fsspec.filesystem("memory") is fsspec.filesystem("memory")


def test_crashed_half_written_state_files_are_ignored_and_cleaned(tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    put(out, "_delix_state/journal/dead-2/.c0.arrow.1234.tmp", b"half")
    put(out, "_delix_state/writers/.dead-2.json.99.tmp", b"half")
    with OutputStore(out, **FAST) as store:
        assert store.recover() == 0
        assert store.done_keys() == set()
    assert files(out, "_delix_state/journal") == []


def test_a_live_writer_without_state_costs_no_wait(out: str) -> None:
    idle = OutputStore(out, heartbeat_seconds=0.05, stale_after_seconds=5)
    started = time.monotonic()
    with OutputStore(out, heartbeat_seconds=0.05, stale_after_seconds=5) as store:
        assert store.recover() == 0 and store.uploads.orphaned_uploads() == []
    assert time.monotonic() - started < 2
    idle.close()
