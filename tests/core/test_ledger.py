"""ExtractLedger: the write-ahead record of paid extracts, on a local folder and on memory://.

A writer is made dead the two ways the pipeline meets: its store closed (lease released: dead
at once) or dropped without closing (a SIGKILL: its lease stops beating and goes stale).
"""

from __future__ import annotations

import dataclasses
import gc
import json
from pathlib import Path

import pytest

from airflow_provider_delix.core.ledger import ExtractRecord, LedgerFile, ledger_files
from airflow_provider_delix.core.planning import PageTarget
from airflow_provider_delix.core.state_dir import StateUnreadableError
from airflow_provider_delix.core.store import OutputStore
from airflow_provider_delix.core.table import open_output

FAST = {"heartbeat_seconds": 0.05, "stale_after_seconds": 0.3}


def target(source: str, page: int, normalization: str | None = None) -> PageTarget:
    return PageTarget(source, f"sha-{source}", page, normalization)


def record(
    chunk_id: str = "c0000001-x1", extract_uuid: str | None = "ex-1", **kwargs: object
) -> ExtractRecord:
    files = ledger_files(
        [
            ("file-a", [(1, [target("scan.pdf", 1)]), (2, [target("scan.pdf", 2)])]),
            # a split part: page 1 of the stored file is page 151 of the original
            ("file-b", [(1, [target("long.pdf", 151, "split")])]),
            # an image whose content two sources share: one page, two rows
            ("file-c", [(1, [target("a.png", 1), target("نامه.png", 1)])]),
        ]
    )
    fields: dict[str, object] = {
        "chunk_id": chunk_id,
        "extract_uuid": extract_uuid,
        "kind": "documents",
        "engine": "danlin",
        "language": "fa",
        "files": files,
    }
    fields.update(kwargs)
    return ExtractRecord(**fields)  # type: ignore[arg-type]


def state_files(out: str, under: str) -> list[str]:
    fs, path = open_output(out)
    base = f"{path}/_delix_state/{under}"
    return sorted(p[len(base) + 1 :] for p in fs.find(base)) if fs.exists(base) else []


def put(out: str, relative: str, data: bytes) -> None:
    fs, path = open_output(out)
    fs.makedirs(f"{path}/{relative}".rsplit("/", 1)[0], exist_ok=True)
    fs.pipe_file(f"{path}/{relative}", data)


# ---------------------------------------------------------------------- the record


@pytest.mark.parametrize("extract_uuid", ["ex-1", None])
def test_record_json_round_trip(extract_uuid: str | None) -> None:
    original = record(extract_uuid=extract_uuid)
    data = original.to_json()
    body = json.loads(data)
    assert body["version"] == 1 and body["extract_uuid"] == extract_uuid
    assert "نامه.png" in data.decode()  # kept as UTF-8, not escaped
    back = ExtractRecord.from_json(data, "somewhere/c0000001-x1.json")
    assert back.path == "somewhere/c0000001-x1.json"
    assert back == ExtractRecord(**{**_fields(original), "path": back.path})
    assert back.files[1].pages == ((1, (PageTarget("long.pdf", "sha-long.pdf", 151, "split"),)),)
    assert back.files[2].pages[0][1][1].source == "نامه.png"


def test_the_credits_a_file_carries_round_trip() -> None:
    original = record(extract_uuid="ex-1")
    carrying = dataclasses.replace(
        original, files=(dataclasses.replace(original.files[0], carried=(300, 100)), *original.files[1:])
    )
    back = ExtractRecord.from_json(carrying.to_json(), "p")
    assert back.files[0].carried == (300, 100) and back.files[1].carried == (0, 0)
    body = json.loads(original.to_json())
    for f in body["files"]:
        del f["carried"]  # a record written before the field existed
    assert ExtractRecord.from_json(json.dumps(body).encode(), "p").files[0].carried == (0, 0)


def _fields(r: ExtractRecord) -> dict[str, object]:
    return {name: getattr(r, name) for name in ExtractRecord.__dataclass_fields__}


def test_an_intent_without_language_round_trips() -> None:
    intent = record(extract_uuid=None, engine="probe", language=None)
    back = ExtractRecord.from_json(intent.to_json(), "p")
    assert back.extract_uuid is None and back.language is None and back.engine == "probe"


def test_answered_adds_only_the_uuid() -> None:
    intent = record(extract_uuid=None)
    paid = intent.answered("ex-42")
    assert paid.extract_uuid == "ex-42" and intent.extract_uuid is None  # frozen: a new record
    assert _fields(paid) == {**_fields(intent), "extract_uuid": "ex-42"}
    assert ExtractRecord.from_json(paid.to_json(), "p").extract_uuid == "ex-42"


def test_page_count_is_pages_requested_not_rows() -> None:
    # 2 + 1 + 1 pages are charged; the shared image page answers two rows but is paid once.
    assert record().page_count == 4
    assert record().file_uuids == ["file-a", "file-b", "file-c"]
    assert record(files=()).page_count == 0
    one = (LedgerFile("f", tuple((n, (target("x.pdf", n),)) for n in range(1, 8))),)
    assert record(files=one).page_count == 7


# ---------------------------------------------------------------------- the ledger


def test_record_and_forget_write_one_file_per_chunk(out: str) -> None:
    with OutputStore(out, run_tag="writer", **FAST) as store:
        store.ledger.record(record("c1-x1", extract_uuid=None))
        store.ledger.record(record("c1-x1"))  # the answer replaces the intent
        store.ledger.record(record("c2-x1"))
        tag = store.run_tag
        assert state_files(out, "extracts") == [f"{tag}/c1-x1.json", f"{tag}/c2-x1.json"]
        fs, path = open_output(out)
        body = json.loads(fs.cat_file(f"{path}/_delix_state/extracts/{tag}/c1-x1.json"))
        assert body["extract_uuid"] == "ex-1"
        store.ledger.forget("c1-x1")
        store.ledger.forget("never-recorded")  # tolerant
        assert state_files(out, "extracts") == [f"{tag}/c2-x1.json"]


def test_orphaned_returns_only_records_of_dead_writers(out: str) -> None:
    closed = OutputStore(out, run_tag="closed", **FAST)
    closed.ledger.record(record("c1-x1", extract_uuid=None))
    closed.ledger.record(record("c2-x1", extract_uuid="ex-closed"))
    closed.close()  # lease released: dead at once (records stay for the next attempt)

    killed = OutputStore(out, run_tag="killed", **FAST)
    killed.ledger.record(record("c1-x1", extract_uuid="ex-killed"))
    del killed  # a SIGKILL: no close, the lease stops beating
    gc.collect()

    live = OutputStore(out, run_tag="live", **FAST)
    live.ledger.record(record("c9-x1", extract_uuid="ex-live"))

    with OutputStore(out, run_tag="me", **FAST) as me:
        me.ledger.record(record("c1-x1", extract_uuid="ex-mine"))
        found = me.ledger.orphaned()
        assert sorted((r.chunk_id, r.extract_uuid or "") for r in found) == [
            ("c1-x1", ""),
            ("c1-x1", "ex-killed"),
            ("c2-x1", "ex-closed"),
        ]
        for r in found:  # each knows its file, and what it needs to become rows
            assert r.path.endswith(f"/{r.chunk_id}.json") and "/extracts/" in r.path
            assert r == ExtractRecord(**{**_fields(record(r.chunk_id, r.extract_uuid)), "path": r.path})
        intent = next(r for r in found if r.extract_uuid is None)
        me.ledger.forget_record(intent)
        me.ledger.forget_record(intent)  # gone already: fine
        left = [p.split("/", 1)[1] for p in state_files(out, "extracts")]
        assert sorted(left) == ["c1-x1.json", "c1-x1.json", "c2-x1.json", "c9-x1.json"]
        assert not any(
            p.startswith(closed.run_tag) and p.endswith("c1-x1.json") for p in state_files(out, "extracts")
        )
    live.close()


def test_records_of_a_live_writer_are_never_orphans(out: str) -> None:
    steady = {"heartbeat_seconds": 0.05, "stale_after_seconds": 2.0}  # a busy machine delays beats
    live = OutputStore(out, **steady)
    live.ledger.record(record("c1-x1"))
    other = OutputStore(out, **steady)
    try:
        assert other.ledger.orphaned() == []  # watched its lease for a stale period: it beat
    finally:
        other.close()
        live.close()


def test_orphaned_without_waiting_leaves_a_fresh_lease_alone(out: str) -> None:
    # A long stale period: on a loaded machine 0.3 s can pass between the crash and the check,
    # and the lease would rightly count as dead.
    slow = {"heartbeat_seconds": 0.05, "stale_after_seconds": 60.0}
    crashed = OutputStore(out, **slow)
    crashed.ledger.record(record("c1-x1"))
    del crashed
    gc.collect()
    with OutputStore(out, **slow) as me:
        assert me.ledger.orphaned(wait=False) == []  # a lease seconds old may be alive


@pytest.mark.parametrize(
    "content",
    [
        b"{ not json",
        json.dumps({"version": 1, "chunk_id": "c1", "kind": "documents"}).encode(),  # no files
        json.dumps(
            {
                "chunk_id": "c1",
                "extract_uuid": "e",
                "kind": "documents",
                "engine": "danlin",
                "files": [{"uuid": "f", "pages": [[1, [["a.pdf", "sha", "one", None]]]]}],
            }
        ).encode(),
        json.dumps([1, 2, 3]).encode(),
    ],
    ids=["not-json", "missing-files", "bad-page-number", "not-an-object"],
)
def test_an_unreadable_record_of_a_dead_writer_raises(out: str, content: bytes) -> None:
    dead = OutputStore(out, run_tag="dead", **FAST)
    dead.ledger.record(record("c1-x1"))
    tag = dead.run_tag
    dead.close()
    put(out, f"_delix_state/extracts/{tag}/c2-x1.json", content)
    with OutputStore(out, **FAST) as me, pytest.raises(StateUnreadableError, match=r"c2-x1\.json"):
        me.ledger.orphaned()
    assert len(state_files(out, "extracts")) == 2  # nothing was dropped


def test_half_written_temp_records_are_not_records(tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    dead = OutputStore(out, run_tag="dead", **FAST)
    dead.ledger.record(record("c1-x1"))
    tag = dead.run_tag
    dead.close()
    put(out, f"_delix_state/extracts/{tag}/.c2-x1.json.1234.tmp", b"{ half")
    with OutputStore(out, **FAST) as me:
        assert [r.chunk_id for r in me.ledger.orphaned()] == ["c1-x1"]
