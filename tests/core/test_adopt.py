"""adopt_extracts: a later attempt collects the extracts a dead writer paid for, never paying again.

The dead writer is a store that journalled its records and uploads, then closed (its lease
is released, so it is dead at once). Its extracts live on the fake account: synchronous ones
(<= 5 pages) answered at once, queued ones processed after some polls or some (fake) time.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from core_pdfs import document, page_text, text_pdf
from fakes import PRICE_PER_PDF_PAGE, FakeClock, FakeDelix

from airflow_provider_delix.api.errors import DelixResponseError, DelixTransientError
from airflow_provider_delix.core import adopt as adopt_module
from airflow_provider_delix.core.adopt import Adoption, adopt_extracts
from airflow_provider_delix.core.adopt_claims import marker_name
from airflow_provider_delix.core.claims import claim_book
from airflow_provider_delix.core.collect import ExtractWaitTimeout
from airflow_provider_delix.core.ledger import ExtractRecord, ledger_files
from airflow_provider_delix.core.options import RunOptions
from airflow_provider_delix.core.planning import PageTarget
from airflow_provider_delix.core.resume import ResumeIndex, empty_index
from airflow_provider_delix.core.run_stats import RunStats
from airflow_provider_delix.core.store import OutputStore
from airflow_provider_delix.core.table import open_output, read_table

pytestmark = pytest.mark.timeout(60)
FAST: dict[str, Any] = {"heartbeat_seconds": 0.05, "stale_after_seconds": 0.3}
DOCS = RunOptions(kind="documents", poll_interval=60.0)


@pytest.fixture
def out() -> Iterator[str]:
    url = f"memory://adopt-{uuid.uuid4().hex}"
    yield url
    fs, path = open_output(url)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def targets(name: str, data: bytes, pages: range) -> list[tuple[int, list[PageTarget]]]:
    sha = hashlib.sha256(data).hexdigest()
    return [(n, [PageTarget(f"{name}.pdf", sha, n, None)]) for n in pages]


def paid(fake: FakeDelix, name: str, pages: int, *, send: bool = True) -> ExtractRecord:
    """A document uploaded and (unless ``send`` is False: an intent) sent for extraction."""
    data = document(name, pages)
    (stored,) = fake.upload_files([(f"{name}.pdf", data)])
    file_uuid = stored.uuid  # type: ignore[union-attr]
    extract_uuid = fake.extract_documents([(file_uuid, None)], "danlin", "fa").uuid if send else None
    return ExtractRecord(
        chunk_id=f"c-{name}-x1",
        extract_uuid=extract_uuid,
        kind="documents",
        engine="danlin",
        language="fa",
        files=ledger_files([(file_uuid, targets(name, data, range(1, pages + 1)))]),
    )


def dead_writer(out: str, *records: ExtractRecord) -> None:
    """A writer that journalled its uploads and extracts, then went away."""
    store = OutputStore(out, run_tag="dead", **FAST)
    for record in records:
        store.uploads.record_uploaded(record.chunk_id, record.file_uuids)
        store.ledger.record(record)
    store.close()


def dead_collector(out: str, record: ExtractRecord, tag: str = "died") -> None:
    """An attempt that died while collecting ``record``: its decided marker is one more record."""
    assert record.extract_uuid is not None
    died = OutputStore(out, run_tag=tag, **FAST)
    died.ledger.record(replace(record, chunk_id=marker_name(record.extract_uuid), decided=True))
    died.close()


def adopt(
    fake: FakeDelix,
    out: str,
    *,
    options: RunOptions = DOCS,
    index: ResumeIndex | None = None,
    clock: FakeClock | None = None,
    tag: str = "again",
    listed: Callable[[], object] | None = None,
    aborting: Callable[[], bool] = lambda: False,
) -> tuple[Adoption, RunStats]:
    """One later attempt's adoption; ``listed`` runs once it has read the dead writers' records."""
    clock = clock or FakeClock()
    stats = RunStats()
    with OutputStore(out, run_tag=tag, **FAST) as store:
        if listed is not None:
            orphaned = store.ledger.orphaned

            def orphaned_then(*, wait: bool = True) -> list[ExtractRecord]:
                records = orphaned(wait=wait)
                listed()
                return records

            store.ledger.orphaned = orphaned_then  # type: ignore[method-assign]
        claims = claim_book(store, options.row_engines(), options.language, poll_seconds=0.01)
        adoption = adopt_extracts(
            fake,
            store,
            index if index is not None else empty_index(),
            options,
            stats,
            claims=claims.adoption_claims(),
            run_id="run-2",
            clock=clock,
            sleep=clock.sleep,
            aborting=aborting,
        )
    return adoption, stats


def records_left(out: str) -> list[str]:
    fs, path = open_output(out)
    base = f"{path}/_delix_state/extracts"
    return sorted(p.rsplit("/", 1)[-1] for p in fs.find(base)) if fs.exists(base) else []


def orphaned_uploads(out: str) -> list[str]:
    with OutputStore(out, **FAST) as store:
        return store.uploads.orphaned_uploads(wait=False)


def rows_by_page(out: str) -> dict[tuple[str, int], str]:
    frame = read_table(out)
    assert not frame.duplicated(["source", "page_number"]).any(), "a page got two rows"
    return {(s, int(p)): t for s, p, t in zip(frame.source, frame.page_number, frame.text, strict=True)}


def test_answered_extracts_of_a_dead_writer_are_collected_once(out: str) -> None:
    fake = FakeDelix(queue_polls=3)
    sync, queued = paid(fake, "three", 3), paid(fake, "twelve", 12)
    assert fake.get_extract(queued.extract_uuid or "").status == "processing"  # poll 1 of 3
    dead_writer(out, sync, queued)
    before = fake.calls.copy()

    adoption, stats = adopt(fake, out)

    assert (adoption.adopted, adoption.lost, adoption.waiting, adoption.in_doubt_pages) == (2, 0, [], 0)
    expected = {
        (f"{n}.pdf", p): page_text(n, p) for n, k in (("three", 3), ("twelve", 12)) for p in range(1, k + 1)
    }
    assert rows_by_page(out) == expected
    frame = read_table(out)
    assert set(frame.status) == {"processed"} and set(frame.run_id) == {"run-2"}
    assert set(frame.extract_uuid) == {sync.extract_uuid, queued.extract_uuid}
    assert frame.credits_charged.sum() == 15 * PRICE_PER_PDF_PAGE == stats.credits_charged
    assert stats.rows["processed"] == 15
    calls = fake.calls - before
    assert calls["extract_documents"] == 0, "nothing is paid again"
    assert calls["get_extract"] == 1 + 2  # the sync one once; the queued one polled until processed
    assert calls["iter_extract_pages"] == 1  # the queued one's pages are paginated, the sync ones inline
    assert fake.ours_left() == set(), "the files of collected extracts are deleted"
    assert records_left(out) == [] and orphaned_uploads(out) == []

    # A third attempt finds nothing left to collect: the rows are not written twice.
    calls_before = fake.calls.copy()
    again, _ = adopt(fake, out)
    assert (again.adopted, again.lost) == (0, 0) and fake.calls == calls_before
    assert len(read_table(out)) == 15


def test_a_queued_extract_is_waited_for_on_the_clock(out: str) -> None:
    clock = FakeClock()
    fake = FakeDelix(queue_polls=0, queue_seconds=290, clock=clock)
    record = paid(fake, "seven", 7)
    dead_writer(out, record)
    adoption, _ = adopt(fake, out, clock=clock)
    assert adoption.adopted == 1
    assert clock.sleeps == [60.0] * 5  # polled every poll_interval until Delix finished it
    assert len(rows_by_page(out)) == 7 and fake.ours_left() == set()


def test_a_queued_extract_past_the_timeout_stays_on_record(out: str) -> None:
    clock = FakeClock()
    fake = FakeDelix(queue_polls=0, queue_seconds=10_000, clock=clock)
    record = paid(fake, "seven", 7)
    dead_writer(out, record)
    options = RunOptions(kind="documents", poll_interval=60.0, extract_timeout=300.0)
    with pytest.raises(ExtractWaitTimeout, match="re-run collects it"):
        adopt(fake, out, options=options, clock=clock)
    assert records_left(out) == ["c-seven-x1.json"] and len(fake.ours_left()) == 1
    clock.advance(10_000)  # Delix finished it meanwhile: the next attempt collects it
    adoption, _ = adopt(fake, out, options=options, clock=clock)
    assert adoption.adopted == 1 and len(rows_by_page(out)) == 7 and records_left(out) == []


def test_an_extract_delix_no_longer_has_is_counted_lost(out: str) -> None:
    """Paid, then gone from Delix: its pages are sent again, and until their new rows replace
    them, answer_lost rows hold the first charge at the published price (counted at risk)."""
    fake = FakeDelix()
    lost, kept = paid(fake, "lost", 2), paid(fake, "kept", 1)
    fake.forget_extract(lost.extract_uuid or "")
    dead_writer(out, lost, kept)
    before = fake.calls.copy()
    adoption, stats = adopt(fake, out)
    assert (adoption.adopted, adoption.lost) == (1, 1)
    frame = read_table(out).set_index("source")
    assert frame.loc["kept.pdf", "status"] == "processed"
    lost_rows = frame.loc["lost.pdf"]
    assert list(lost_rows["error"]) == ["answer_lost"] * 2 and lost_rows.credits_charged.sum() == 2 * 100
    assert stats.rows["processed"] == 1 and sum(stats.rows.values()) == 1, "the lost pages' new rows count"
    assert (stats.requests_in_doubt, stats.pages_in_doubt, stats.credits_at_risk) == (1, 2, 200)
    calls = fake.calls - before
    assert calls["get_extract"] == 2 and calls["iter_extract_pages"] == 0
    assert calls["delete_file"] == 2 and fake.ours_left() == set()  # its files are deleted too
    assert records_left(out) == [] and orphaned_uploads(out) == []


def test_an_intent_without_uuid_is_in_doubt_and_dropped_without_a_call(out: str) -> None:
    fake = FakeDelix()
    intent = paid(fake, "wire", 4, send=False)
    dead_writer(out, intent)
    before = fake.calls.copy()
    adoption, stats = adopt(fake, out)
    assert adoption.in_doubt_pages == intent.page_count == 4
    assert (adoption.adopted, adoption.lost, adoption.waiting) == (0, 0, [])
    assert fake.calls == before, "no API call: there is no way to find that extract"
    assert records_left(out) == [] and sum(stats.rows.values()) == 0
    assert read_table(out).empty
    # Its file stays on the uploads journal: the pipeline deletes it with the other orphans.
    assert orphaned_uploads(out) == intent.file_uuids


def test_a_deferrable_run_leaves_a_processing_extract_waiting(out: str) -> None:
    fake = FakeDelix(queue_polls=10)
    queued, sync = paid(fake, "twelve", 12), paid(fake, "two", 2)
    dead_writer(out, queued, sync)
    before = fake.calls.copy()
    options = RunOptions(kind="documents", deferrable=True)
    adoption, _ = adopt(fake, out, options=options)
    assert adoption.waiting == [queued.extract_uuid] and adoption.waiting_pages == 12
    assert adoption.adopted == 1  # the finished one is collected all the same
    assert set(rows_by_page(out)) == {("two.pdf", 1), ("two.pdf", 2)}
    calls = fake.calls - before
    assert calls["get_extract"] == 2 and calls["iter_extract_pages"] == 0  # one look, no polling
    assert fake.ours_left() == set(queued.file_uuids)  # in use by Delix: kept
    assert records_left(out) == ["c-twelve-x1.json"]  # for the attempt after the deferral


def test_rows_already_in_the_resume_index_are_not_written_twice(out: str) -> None:
    fake = FakeDelix()
    record = paid(fake, "five", 5)
    dead_writer(out, record)
    (ledger_file,) = record.files
    stored = [ts[0] for n, ts in ledger_file.pages if n <= 3]  # the dead writer stored these rows
    index = ResumeIndex(
        ((t.source, t.source_sha256, t.page_number, "processed", "danlin", "fa") for t in stored),
        engines=["danlin"],
        language="fa",
    )
    adoption, stats = adopt(fake, out, index=index)
    assert adoption.adopted == 1
    assert set(rows_by_page(out)) == {("five.pdf", 4), ("five.pdf", 5)}
    assert stats.rows["processed"] == 2
    assert all(t.key in index for _, ts in ledger_file.pages for t in ts)  # the planner sees all 5 done
    assert fake.ours_left() == set() and records_left(out) == []


def test_failed_pages_get_their_refund_share(out: str) -> None:
    fake = FakeDelix()
    data = text_pdf([page_text("mixed", 1), "FAILPAGE the scanner jammed", page_text("mixed", 3)])
    (stored,) = fake.upload_files([("mixed.pdf", data)])
    file_uuid = stored.uuid  # type: ignore[union-attr]
    extract = fake.extract_documents([(file_uuid, None)], "danlin", "fa")
    files = ledger_files([(file_uuid, targets("mixed", data, range(1, 4)))])
    record = ExtractRecord("c-mixed-x1", extract.uuid, "documents", "danlin", "fa", files)
    dead_writer(out, record)
    index = empty_index()
    adoption, stats = adopt(fake, out, index=index)
    assert adoption.adopted == 1
    frame = read_table(out).set_index("page_number")
    assert frame.loc[2, "status"] == "failed" and frame.loc[2, "error"] == "page_failed"
    assert frame.loc[2, "credits_refunded"] == PRICE_PER_PDF_PAGE
    assert frame.credits_charged.sum() == 3 * PRICE_PER_PDF_PAGE
    assert stats.credits_refunded == PRICE_PER_PDF_PAGE and stats.rows["failed"] == 1


def test_a_collected_extract_also_carries_its_sends_whose_answer_was_lost(out: str) -> None:
    """A queued extract answered on its re-send, parked, then collected by the next attempt:
    its rows carry the lost send too (assumed charged), and the collecting run reports it."""
    fake = FakeDelix()
    record = replace(paid(fake, "resent", 3), lost_sends=1)
    assert ExtractRecord.from_json(record.to_json(), "p").lost_sends == 1, "kept across attempts"
    dead_writer(out, record)
    adoption, stats = adopt(fake, out, index=empty_index())
    assert adoption.adopted == 1
    frame = read_table(out)
    assert frame.credits_charged.sum() == 2 * 3 * PRICE_PER_PDF_PAGE
    assert (stats.requests_in_doubt, stats.pages_in_doubt, stats.credits_at_risk) == (1, 3, 300)


def test_an_extract_whose_pages_cannot_be_read_keeps_its_cost_and_is_not_retried_forever(
    out: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Paid, its cost known, its pages unreadable: malformed_answer rows hold the cost while the
    pages are sent again (their new rows carry it on); the extract itself is not read again."""
    fake = FakeDelix(queue_polls=0)
    record = paid(fake, "seven", 7)  # queued: its pages come through the paginated contents
    dead_writer(out, record)

    def unreadable(extract_uuid: str, file_uuid: str) -> Iterator[Any]:
        raise DelixResponseError("a contents page that is not JSON")

    monkeypatch.setattr(fake, "iter_extract_pages", unreadable)
    adoption, stats = adopt(fake, out)
    assert (adoption.adopted, adoption.lost) == (1, 0)
    assert records_left(out) == [] and fake.ours_left() == set()  # its pages are sent again
    frame = read_table(out)
    assert len(frame) == 7 and set(frame["error"]) == {"malformed_answer"}
    assert frame.credits_charged.sum() == 7 * PRICE_PER_PDF_PAGE == stats.credits_charged
    assert sum(stats.rows.values()) == 0, "their new rows are what the run counts"


@pytest.mark.parametrize("round_", range(3))
def test_two_writers_resuming_together_collect_each_extract_once(out: str, round_: int) -> None:
    """Mapped deferrable tasks sharing an output resume at once: each sees the other's earlier
    attempt as a dead writer. Both read the records before either collects; each extract's rows
    are written by exactly one of them, and every file is deleted."""
    fake = FakeDelix()
    records = [paid(fake, f"doc{i}", 3) for i in range(4)]
    dead_writer(out, *records)
    both_listed = threading.Barrier(2, timeout=20)
    adoptions: dict[str, Adoption] = {}

    def resume(tag: str) -> None:
        adoptions[tag], _ = adopt(fake, out, tag=tag, listed=both_listed.wait)

    threads = [threading.Thread(target=resume, args=(tag,)) for tag in ("mapped-0", "mapped-1")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert set(adoptions) == {"mapped-0", "mapped-1"}
    assert len(rows_by_page(out)) == 12  # no page twice (rows_by_page checks)
    assert sum(a.adopted for a in adoptions.values()) == 4
    for a in adoptions.values():  # what one left to the other (still collecting) it does not delete
        assert len(a.waiting_files) <= 4 - a.adopted and not a.waiting  # one file per document
    assert records_left(out) == [] and fake.ours_left() == set() and orphaned_uploads(out) == []


def test_an_extract_a_live_writer_is_collecting_is_left_to_it(out: str) -> None:
    fake = FakeDelix()
    record = paid(fake, "four", 4)
    dead_writer(out, record)
    assert record.extract_uuid is not None
    marker = replace(record, chunk_id=marker_name(record.extract_uuid), claimed_at=1.0, decided=True)
    collector = OutputStore(out, run_tag="collector", **FAST)  # alive: its lease beats
    try:
        collector.ledger.record(marker)
        before = fake.calls.copy()
        adoption, _ = adopt(fake, out)
        assert (adoption.adopted, adoption.lost, adoption.waiting) == (0, 0, [])
        assert adoption.waiting_files == set(record.file_uuids)  # not deleted under the collector
        assert fake.calls == before, "not even read: the other writer collects it"
        assert read_table(out).empty
        assert records_left(out) == sorted(["c-four-x1.json", f"{marker.chunk_id}.json"])
    finally:
        collector.close()


def test_a_dead_collectors_marker_and_the_original_are_collected_once(out: str) -> None:
    """An attempt died while collecting: its marker is one more record of the same extract."""
    fake = FakeDelix()
    record = paid(fake, "four", 4)
    dead_writer(out, record)
    dead_collector(out, record)
    before = fake.calls.copy()
    adoption, _ = adopt(fake, out)
    assert (adoption.adopted, adoption.lost) == (1, 0)
    assert len(rows_by_page(out)) == 4
    assert (fake.calls - before)["get_extract"] == 1
    assert records_left(out) == [] and fake.ours_left() == set()


@pytest.mark.parametrize("language", ["fa", "en"])
def test_an_extract_collected_through_one_copy_is_not_collected_through_the_other(
    out: str, language: str
) -> None:
    """The original record and a dead collector's marker name one extract. An attempt collects
    it through the first copy and stops before the second: that copy is marked collected, so the
    next attempt (of either language) only deletes, and no row is written twice."""
    fake = FakeDelix()
    record = paid(fake, "four", 4)
    dead_writer(out, record)
    dead_collector(out, record, tag="aaa-died")
    seen = iter(range(10))
    first, _ = adopt(fake, out, tag="c", aborting=lambda: next(seen) > 0)  # stops after one record
    assert first.adopted == 1
    options = replace(DOCS, language=language)
    again, stats = adopt(fake, out, tag="e", options=options)
    assert again.adopted == 0 and sum(stats.rows.values()) == 0 and fake.calls["get_extract"] == 1
    assert len(read_table(out)) == 4 and records_left(out) == [] and fake.ours_left() == set()


@pytest.mark.parametrize(
    "failure",
    [
        DelixTransientError("503 after 5 attempts", status_code=503),
        DelixResponseError("a delete answer that is not JSON"),  # not one _drop expects
    ],
)
def test_a_collected_extract_whose_files_cannot_be_deleted_keeps_its_marker(
    out: str, monkeypatch: pytest.MonkeyPatch, failure: Exception
) -> None:
    """Rows written, a delete failing: the record stays for a later attempt, marked collected so
    that only its files are deleted then. A failure the collector does not expect leaves the
    record as it was: then its marker stays, so no other live writer collects it again."""
    fake = FakeDelix()
    record = paid(fake, "four", 4)
    dead_writer(out, record)
    assert record.extract_uuid is not None
    delete = fake.delete_file

    def unavailable(uuid: str) -> bool:
        raise failure

    monkeypatch.setattr(fake, "delete_file", unavailable)
    adoption, _ = adopt(fake, out, tag="collector")
    assert adoption.adopted == 1 and len(rows_by_page(out)) == 4
    marker = f"{marker_name(record.extract_uuid)}.json"
    expected = isinstance(failure, DelixTransientError)
    assert records_left(out) == (["c-four-x1.json"] if expected else sorted(["c-four-x1.json", marker]))
    assert len(fake.ours_left()) == 1

    # The collector is gone now; the next attempt reads its rows, finishes the deletes, writes nothing.
    monkeypatch.setattr(fake, "delete_file", delete)
    with OutputStore(out, run_tag="reader", **FAST) as reader:
        index = ResumeIndex(reader.resume_rows(), engines=["danlin"], language="fa")
    reads = fake.calls["iter_extract_pages"] + fake.calls["get_extract"]
    again, _ = adopt(fake, out, index=index)
    assert again.adopted == (0 if expected else 1) and len(rows_by_page(out)) == 4
    assert records_left(out) == [] and fake.ours_left() == set()
    if expected:
        assert fake.calls["iter_extract_pages"] + fake.calls["get_extract"] == reads, "not collected again"


def test_every_source_sharing_a_page_of_the_extract_gets_its_row(out: str) -> None:
    """The same scan in two folders: in the run that sent it both got a row; collected after a
    deferral they do too (the resume key is the content, so only the index would stop it)."""
    fake = FakeDelix()
    record = paid(fake, "three", 3)
    (f,) = record.files
    shared = tuple(
        (n, (*ts, PageTarget("copy/three.pdf", ts[0].source_sha256, n, None))) for n, ts in f.pages
    )
    record = replace(record, files=(replace(f, pages=shared),))
    dead_writer(out, record)
    adoption, stats = adopt(fake, out)
    assert adoption.adopted == 1 and stats.rows["processed"] == 6
    got = rows_by_page(out)
    assert {s for s, _ in got} == {"three.pdf", "copy/three.pdf"}
    assert got[("copy/three.pdf", 2)] == got[("three.pdf", 2)] == page_text("three", 2)


def test_rows_a_collector_wrote_before_it_died_are_not_written_again(
    out: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two attempts start together. One collects the extract, writes its rows and dies before
    dropping the record; its marker is then a dead writer's, so the other takes the extract, and
    must not write the rows again though its resume index was built before they existed."""
    fake = FakeDelix()
    record = paid(fake, "four", 4)
    dead_writer(out, record)
    drop = adopt_module._drop

    def killed(*args: Any) -> bool:
        raise KeyboardInterrupt  # the process dies between the rows and the record's removal

    stats = RunStats()
    with OutputStore(out, run_tag="next", **FAST) as store:  # starts first: its index is empty
        claims = claim_book(store, DOCS.row_engines(), DOCS.language, poll_seconds=0.01)
        index = ResumeIndex(store.resume_rows(), engines=["danlin"], language="fa")
        monkeypatch.setattr(adopt_module, "_drop", killed)
        with pytest.raises(KeyboardInterrupt):
            adopt(fake, out, tag="killed")
        monkeypatch.setattr(adopt_module, "_drop", drop)
        clock = FakeClock()
        adoption = adopt_extracts(
            fake,
            store,
            index,
            DOCS,
            stats,
            claims=claims.adoption_claims(),
            run_id="run-3",
            clock=clock,
            sleep=clock.sleep,
            aborting=lambda: False,
        )
    assert adoption.adopted == 1 and sum(stats.rows.values()) == 0, "the rows were written again"
    with OutputStore(out, run_tag="reader", **FAST) as reader:
        reader.recover()  # publishes what the killed writer journalled, if it is not yet
    assert len(rows_by_page(out)) == 4
    assert records_left(out) == [] and fake.ours_left() == set()


def test_a_record_collected_after_this_writer_listed_it_is_not_collected_again(
    out: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """W2 collects the extract while W3 has already listed it; W2's delete fails, so the record
    stays, marked collected. W3 reads it again before collecting: it only deletes what is left."""
    fake = FakeDelix()
    record = paid(fake, "four", 4)
    dead_writer(out, record)
    delete = fake.delete_file

    def collect_elsewhere() -> None:
        def unavailable(uuid: str) -> bool:
            raise DelixTransientError("503", status_code=503)

        monkeypatch.setattr(fake, "delete_file", unavailable)
        adopt(fake, out, tag="w2")
        monkeypatch.setattr(fake, "delete_file", delete)

    reads = fake.calls["get_extract"]
    adoption, stats = adopt(fake, out, tag="w3", listed=collect_elsewhere)
    assert fake.calls["get_extract"] == reads + 1, "read once, by W2"
    assert adoption.adopted == 0 and sum(stats.rows.values()) == 0
    assert len(rows_by_page(out)) == 4 and records_left(out) == [] and fake.ours_left() == set()


def test_a_collected_record_whose_last_delete_fails_unexpectedly_is_kept_not_fatal(
    out: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeDelix()
    record = paid(fake, "four", 4)
    dead_writer(out, replace(record, collected=True))

    def unreadable(uuid: str) -> bool:
        raise DelixResponseError("a delete answer that is not JSON")

    monkeypatch.setattr(fake, "delete_file", unreadable)
    adoption, _ = adopt(fake, out)  # does not raise: the record stays for a later attempt
    assert adoption.adopted == 0 and records_left(out) == ["c-four-x1.json"]


def test_another_languages_extract_collected_before_a_crash_is_not_written_twice(
    out: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An English run collects a Persian run's extract, writes its rows and dies before dropping
    the record. The next English run's index holds only English rows, so it must find the
    extract's rows in the table by their extract uuid, not write them again."""
    fake = FakeDelix()
    record = paid(fake, "four", 4)  # Persian (danlin, fa)
    dead_writer(out, record)
    english = replace(DOCS, language="en")
    drop = adopt_module._drop

    def killed(*args: Any) -> bool:
        raise KeyboardInterrupt  # between the rows and the record's removal

    monkeypatch.setattr(adopt_module, "_drop", killed)
    with pytest.raises(KeyboardInterrupt):
        adopt(fake, out, options=english, tag="killed")
    monkeypatch.setattr(adopt_module, "_drop", drop)
    with OutputStore(out, run_tag="reader", **FAST) as reader:
        reader.recover()  # the killed writer's journal is published
        index = ResumeIndex(reader.resume_rows(), engines=["danlin"], language="en")
    assert len(rows_by_page(out)) == 4
    reads = fake.calls["get_extract"]
    adoption, stats = adopt(fake, out, options=english, index=index, tag="next")
    assert adoption.adopted == 0
    assert sum(stats.rows.values()) == 0, "the Persian rows were written again"
    assert len(rows_by_page(out)) == 4
    assert records_left(out) == [] and fake.ours_left() == set()
    assert fake.calls["get_extract"] == reads, "its rows are in the table: nothing to read again"
