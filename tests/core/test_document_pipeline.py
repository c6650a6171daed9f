"""DocumentJob through ExtractionPipeline: PDFs in, one row per original page out.

Against the fake account (documents of at most 5 pages answered at once, larger requests
queued) and the real OutputStore on memory://, as ``test_pipeline.py`` drives the image path.
Each page's text names its document and page, so a row in the wrong place shows.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest
from core_pdfs import document, encrypted, image_pdf, merged, page_text, text_pdf
from fakes import PRICE_PER_PDF_PAGE, FakeClock, FakeDelix

from airflow_provider_delix.api.errors import DelixNotFoundError, DelixResponseError, DelixTransientError
from airflow_provider_delix.core.inputs import InputRef
from airflow_provider_delix.core.jobs import DocumentJob
from airflow_provider_delix.core.ledger import ExtractLedger, ExtractRecord
from airflow_provider_delix.core.options import PipelineTuning, RunOptions
from airflow_provider_delix.core.pipeline import ExtractionPipeline
from airflow_provider_delix.core.planning import SourceLike
from airflow_provider_delix.core.resume import ResumeIndex
from airflow_provider_delix.core.store import OutputStore
from airflow_provider_delix.core.summary import PagesLeftError, PipelineSummary
from airflow_provider_delix.core.table import open_output, read_table

pytestmark = pytest.mark.timeout(120)
FAST: dict[str, Any] = {"heartbeat_seconds": 0.05, "stale_after_seconds": 0.3}
Truth = dict[tuple[str, int], str]


@pytest.fixture
def out() -> Iterator[str]:
    url = f"memory://documents-{uuid.uuid4().hex}"
    yield url
    fs, path = open_output(url)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def archive(root: Path, **docs: int | bytes) -> tuple[list[InputRef], Truth]:
    """PDFs on disk (name -> page count, or bytes); the expected text of every text-layer page."""
    root.mkdir(parents=True, exist_ok=True)
    refs, truth = [], {}
    for name, spec in docs.items():
        path = root / f"{name}.pdf"
        path.write_bytes(document(name, spec) if isinstance(spec, int) else spec)
        refs.append(InputRef(source=str(path), fs=fsspec.filesystem("file"), path=str(path)))
        if isinstance(spec, int):
            truth.update({(str(path), n): page_text(name, n) for n in range(1, spec + 1)})
    return refs, truth


def run(fake: FakeDelix, out: str, refs: list[InputRef], **kwargs: Any) -> PipelineSummary:
    """One pipeline run of the document job over ``refs``; settings as flat keyword arguments."""
    options = RunOptions(
        kind="documents", **{k: kwargs.pop(k) for k in list(kwargs) if k in RunOptions.__dataclass_fields__}
    )
    tuning = PipelineTuning(
        **{k: kwargs.pop(k) for k in list(kwargs) if k in PipelineTuning.__dataclass_fields__}
    )
    job = DocumentJob(options)
    kwargs.setdefault("sleep", lambda _s: None)

    def sources(resume: ResumeIndex) -> Iterable[SourceLike]:
        return (job.prepare(ref, resume) for ref in refs)

    store = OutputStore(out, **FAST)
    pipeline = ExtractionPipeline(fake, store, options, job=job, tuning=tuning, run_id="run-1", **kwargs)
    return pipeline.run(sources)


def texts(out: str) -> Truth:
    frame = read_table(out)
    assert not frame.duplicated(["source", "page_number"]).any(), "a page got two rows"
    return {(s, int(p)): t for s, p, t in zip(frame.source, frame.page_number, frame.text, strict=True)}


def state_left(out: str) -> list[str]:
    fs, path = open_output(out)
    base = f"{path}/_delix_state"
    found = fs.find(base) if fs.exists(base) else []
    return [p for p in found if "/extracts/" in p or "/uploads/" in p]


def assert_clean(fake: FakeDelix, out: str) -> None:
    assert fake.ours_left() == set(), "files uploaded by the run are still stored"
    assert fake.storage_full_raised == 0, "the run asked for more storage than the account holds"
    assert state_left(out) == [], "extract or upload records left behind"


def charged_once(fake: FakeDelix, pages: int) -> None:
    assert len(fake.charged_pages) == pages and set(fake.charged_pages.values()) == {1}, fake.charged_pages


def test_an_archive_gives_one_row_per_original_page(out: str, tmp_path: Path) -> None:
    fake = FakeDelix(queue_polls=3)
    refs, truth = archive(tmp_path / "pdfs", one=1, five=5, twelve=12, three=3)
    summary = run(fake, out, refs)

    assert texts(out) == truth
    frame = read_table(out)
    assert set(frame.status) == {"processed"} and set(frame.engine) == {"danlin"}
    assert (
        set(frame.language) == {"fa"} and frame.file_uuid.notna().all() and frame.extract_uuid.notna().all()
    )
    # credits: each request's cost split over its pages, adding up to what was charged
    assert set(frame.credits_charged) == {PRICE_PER_PDF_PAGE}
    assert frame.credits_charged.sum() == summary.credits_charged == 21 * PRICE_PER_PDF_PAGE
    assert summary.rows["processed"] == summary.pages_total == 21 and summary.pages_left == 0
    charged_once(fake, 21)
    # the 1- and 3-page documents share one synchronous request (4 pages <= 5); 5 pages alone;
    # the 12-page one is queued, polled until processed, and read through the paginated contents
    requested = sorted(sorted(fake.pdf_pages[u] for u, _ in files) for _, files in fake.document_requests)
    assert requested == [[1, 3], [5], [12]]
    queued = [e for e in fake.extracts.values() if e.queued]
    assert len(queued) == 1 and queued[0].polls == 3
    assert summary.requests["iter_extract_pages"] == 1 and summary.requests["extract_documents"] == 3
    assert summary.requests["delete_file"] == 4
    assert_clean(fake, out)


def test_long_and_big_documents_are_split_and_reassembled(out: str, tmp_path: Path) -> None:
    fake = FakeDelix()  # rejects a PDF over 150 pages or 8 MB, as Delix does
    big = document("big", 3, pad=8_100_000)
    refs, truth = archive(tmp_path / "pdfs", long=160, big=big)
    truth.update({(str(tmp_path / "pdfs" / "big.pdf"), n): page_text("big", n) for n in (1, 2, 3)})
    summary = run(fake, out, refs)
    assert texts(out) == truth and summary.rows["processed"] == 163
    frame = read_table(out)
    assert set(frame.normalization) == {"split"}
    assert sorted(frame[frame.source.str.endswith("long.pdf")].page_number) == list(range(1, 161))
    assert all(n <= 150 for n in fake.pdf_pages.values())
    charged_once(fake, 163)
    assert_clean(fake, out)


def test_a_rerun_pays_only_for_the_pages_still_to_do(out: str, tmp_path: Path) -> None:
    refs, truth = archive(tmp_path / "pdfs", twelve=12, six=6)
    first = FakeDelix()
    run(first, out, refs, pages="1-6")
    assert len(texts(out)) == 12
    again = FakeDelix()
    summary = run(again, out, refs)
    assert texts(out) == truth
    assert summary.pages_resumed == 12 and summary.rows["processed"] == 6
    # the original bytes again, asked only for the other half
    ((_, files),) = again.document_requests
    assert [selection for _, selection in files] == ["7-12"] and again.pdf_pages[files[0][0]] == 12
    charged_once(again, 6)
    third = FakeDelix()
    run(third, out, refs)
    assert sum(third.calls.values()) == 0, "a finished archive calls nothing"


def test_auto_sends_typed_pages_to_probe_and_scans_to_ocr(out: str, tmp_path: Path) -> None:
    fake = FakeDelix()
    mixed = merged(document("mixed", 2), image_pdf(2))
    refs, _ = archive(tmp_path / "pdfs", mixed=mixed, typed=3)
    summary = run(fake, out, refs, engine="auto")
    frame = read_table(out).set_index(["source", "page_number"])
    source = str(tmp_path / "pdfs" / "mixed.pdf")
    engines = {n: frame.loc[(source, n), "engine"] for n in (1, 2, 3, 4)}
    assert engines == {1: "probe", 2: "probe", 3: "danlin", 4: "danlin"}
    assert frame.loc[(source, 1), "text"] == page_text("mixed", 1)
    assert frame.loc[(source, 3), "text"].startswith("text-")  # OCR of the scan: the JPEG it embeds
    assert summary.rows["processed"] == 7
    # probe takes no language (the fake refuses what the API would), danlin needs one
    assert sorted(engine for engine, _ in fake.document_requests) == ["danlin", "probe", "probe"]
    assert_clean(fake, out)


def test_invalid_documents_get_rows_without_a_call(out: str, tmp_path: Path) -> None:
    fake = FakeDelix()
    refs, _ = archive(tmp_path / "pdfs", notes=b"my notes, not a PDF", damaged=b"%PDF-1.4\n" + bytes(200))
    summary = run(fake, out, refs, max_failed_ratio=None)
    frame = read_table(out)
    assert sorted(frame.error) == ["corrupt_pdf", "not_a_pdf"] and set(frame.status) == {"invalid"}
    assert summary.rows["invalid"] == 2 and sum(fake.calls.values()) == 0


def test_identical_pdfs_are_paid_once_and_each_gets_its_rows(out: str, tmp_path: Path) -> None:
    """The same PDF in two folders: one upload and one extraction, a row per page for each copy
    (as for images); a queued one too. Credits are on the first copy's rows only."""
    fake = FakeDelix(queue_polls=2)
    refs, truth = archive(
        tmp_path / "pdfs",
        three=3,
        twelve=12,
        three_copy=document("three", 3),
        twelve_copy=document("twelve", 12),
    )
    summary = run(fake, out, refs)
    charged_once(fake, 15)
    assert fake.calls["upload_files"] + fake.calls["extract_documents"] <= 4
    copies = {(refs[2].source, n): page_text("three", n) for n in range(1, 4)}
    copies |= {(refs[3].source, n): page_text("twelve", n) for n in range(1, 13)}
    assert texts(out) == truth | copies
    assert summary.rows["processed"] == 30 and summary.pages_reused == 15
    assert read_table(out).credits_charged.sum() == 15 * PRICE_PER_PDF_PAGE == summary.credits_charged
    assert_clean(fake, out)


def park_then_resume(
    out: str, refs: list[InputRef], fake: FakeDelix
) -> tuple[PipelineSummary, PipelineSummary]:
    """A deferrable run parks its queued extract; Delix finishes it; the resumed run collects it."""
    parked = run(fake, out, refs, deferrable=True)
    assert parked.waiting and parked.stop_reason == "waiting for queued extracts"
    fake.queue_polls = 0  # Delix is done (the trigger saw it)
    resumed = run(fake, out, refs, deferrable=True)
    return parked, resumed


def test_a_deferrable_run_parks_a_queued_extract_and_the_next_one_collects_it(
    out: str, tmp_path: Path
) -> None:
    fake = FakeDelix(queue_polls=10**6)
    refs, truth = archive(tmp_path / "pdfs", twelve=12, two=2)
    parked, resumed = park_then_resume(out, refs, fake)
    assert parked.pages_waiting == 12 and parked.rows["processed"] == 2
    assert len(parked.waiting_extracts) == 1 and parked.requests["get_extract"] == 0
    assert resumed.extracts_adopted == 1 and resumed.waiting_extracts == []
    assert resumed.rows["processed"] == 12 and resumed.requests["extract_documents"] == 0
    assert resumed.pages_total == 14 and resumed.pages_resumed == 2  # the 2-page one was stored before
    assert texts(out) == truth
    charged_once(fake, 14)
    assert_clean(fake, out)


def test_a_document_gone_on_the_resend_of_a_lost_send_waits_for_the_next_run(
    out: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first send's answer was lost (assumed charged) and the re-send found the file expired.
    Uploading and sending it again in the run would be a new request with a re-send of its own
    (three sends of a page): its pages get answer_lost rows holding the lost send instead, and
    the attempt that reads them carries it on, so the table adds up to what Delix may have charged."""
    fake = FakeDelix(queue_polls=0)
    refs, truth = archive(tmp_path / "pdfs", twelve=12)
    queue = fake.extract_documents
    sends = itertools.count()

    def lost_then_expired(*args: Any) -> Any:
        if next(sends) == 0:
            error = DelixNotFoundError("404: the file expired", status_code=404)
            error.lost_attempts = 1  # the first send was applied, its answer lost
            raise error
        return queue(*args)

    monkeypatch.setattr(fake, "extract_documents", lost_then_expired)
    first = run(fake, out, refs, deferrable=True)
    assert not first.waiting and first.rows["failed"] == 12 and fake.calls["upload_files"] == 1
    assert set(read_table(out).error) == {"answer_lost"}
    assert first.requests_in_doubt == 1 and first.credits_at_risk == 12 * PRICE_PER_PDF_PAGE
    again = run(fake, out, refs, deferrable=True)
    assert again.rows["processed"] == 12 and texts(out) == truth
    # the lost send and the paid one
    assert read_table(out).credits_charged.sum() == 2 * 12 * PRICE_PER_PDF_PAGE
    assert again.credits_charged == 12 * PRICE_PER_PDF_PAGE


def test_a_rerun_while_delix_still_works_leaves_the_parked_files_alone(out: str, tmp_path: Path) -> None:
    fake = FakeDelix(queue_polls=10**6)
    refs, _ = archive(tmp_path / "pdfs", twelve=12)
    parked = run(fake, out, refs, deferrable=True)
    kept = fake.ours_left()
    again = run(fake, out, refs, deferrable=True)  # re-run before the extract is processed
    assert again.waiting_extracts == parked.waiting_extracts and again.pages_waiting == 12
    # Delix answers FILE_UNDER_PROCESSING to a delete of them: the run must not even try
    assert again.requests["delete_file"] == 0 and again.orphans_deleted == 0
    assert fake.ours_left() == kept


def test_adopted_pages_are_counted_once(out: str, tmp_path: Path) -> None:
    fake = FakeDelix(queue_polls=10**6)
    jam = text_pdf([page_text("jam", n) if n != 2 else "FAILPAGE the scanner jammed" for n in range(1, 9)])
    refs, _ = archive(tmp_path / "pdfs", jam=jam)
    _, resumed = park_then_resume(out, refs, fake)
    assert resumed.rows == {"processed": 7, "failed": 1, "rejected": 0, "invalid": 0}
    assert resumed.pages_total == 8
    # written by this run (adopted), so not also "resumed": each page counts once
    assert resumed.pages_resumed == 0 and resumed.pages_resumed_not_processed == 0
    assert resumed.failed_ratio == pytest.approx(1 / 8)
    assert read_table(out).credits_refunded.sum() == resumed.credits_refunded == PRICE_PER_PDF_PAGE


def test_a_queued_extract_is_polled_on_the_clock(out: str, tmp_path: Path) -> None:
    clock = FakeClock()
    fake = FakeDelix(queue_polls=0, queue_seconds=150, clock=clock)
    refs, truth = archive(tmp_path / "pdfs", twelve=12)
    summary = run(fake, out, refs, clock=clock, sleep=clock.sleep, poll_interval=60.0)
    assert texts(out) == truth and summary.rows["processed"] == 12
    assert clock.sleeps == [60.0, 60.0, 60.0] and summary.requests["get_extract"] == 3
    assert_clean(fake, out)


def extract_records_left(out: str) -> list[str]:
    return [p.rsplit("/", 1)[-1] for p in state_left(out) if "/extracts/" in p]


def test_a_queued_extract_past_the_timeout_is_collected_by_the_next_attempt(out: str, tmp_path: Path) -> None:
    clock = FakeClock()
    fake = FakeDelix(queue_polls=0, queue_seconds=10_000, clock=clock)
    refs, truth = archive(tmp_path / "pdfs", twelve=12)
    timing: dict[str, Any] = {"clock": clock, "sleep": clock.sleep, "poll_interval": 60.0}
    with pytest.raises(PagesLeftError, match="re-run collects it without paying again") as stopped:
        run(fake, out, refs, extract_timeout=300.0, **timing)
    # Paid and still queued: the record and the file stay; a delete would only be refused.
    assert len(extract_records_left(out)) == 1 and len(fake.ours_left()) == 1
    assert fake.calls["delete_file"] == 0
    held = stopped.value.summary  # the manifest names what stays on Delix, and why
    assert held.held_file_uuids == sorted(fake.ours_left()) and held.undeleted_uuids == []
    assert held.held_extracts == sorted(fake.extracts) and held.pages_left == 12
    assert "1 file(s) kept on Delix" in str(stopped.value)
    clock.advance(10_000)  # Delix finished it meanwhile
    summary = run(fake, out, refs, **timing)
    assert summary.extracts_adopted == 1 and summary.requests["extract_documents"] == 0
    assert texts(out) == truth
    charged_once(fake, 12)
    assert_clean(fake, out)


def test_a_poll_that_keeps_failing_leaves_the_extract_for_the_next_attempt(
    out: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeDelix(queue_polls=1)
    refs, truth = archive(tmp_path / "pdfs", twelve=12, two=2)

    def unreachable(uuid: str) -> None:
        raise DelixTransientError("Delix answered 503 after the client's retries", status_code=503)

    monkeypatch.setattr(fake, "get_extract", unreachable)
    with pytest.raises(PagesLeftError, match="kept failing") as failed:
        run(fake, out, refs)
    first = failed.value.summary
    # The hold stops new chunks: the 2-page document is done only if it started before.
    done = first.rows["processed"]
    assert done in (0, 2) and first.pages_left == 14 - done and len(extract_records_left(out)) == 1
    assert fake.calls["delete_file"] == done // 2, "only the 2-page document's file; the queued one is kept"
    assert first.held_file_uuids == sorted(fake.ours_left()) and len(first.held_extracts) == 1
    assert "kept on Delix" in str(failed.value)
    monkeypatch.undo()  # Delix answers again
    second = run(fake, out, refs)
    assert second.extracts_adopted == 1 and second.requests["extract_documents"] == (0 if done else 1)
    assert texts(out) == truth
    charged_once(fake, 14)
    assert_clean(fake, out)


def test_an_unreadable_poll_answer_holds_the_extract_instead_of_paying_again(
    out: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeDelix(queue_polls=1)
    refs, truth = archive(tmp_path / "pdfs", twelve=12)

    def gateway_page(uuid: str) -> None:  # a proxy's HTML page with a 200
        raise DelixResponseError("the answer is not JSON")

    monkeypatch.setattr(fake, "get_extract", gateway_page)
    with pytest.raises(DelixResponseError):
        run(fake, out, refs)
    assert len(extract_records_left(out)) == 1 and fake.calls["delete_file"] == 0
    monkeypatch.undo()
    second = run(fake, out, refs)
    assert second.extracts_adopted == 1 and texts(out) == truth
    charged_once(fake, 12)
    assert_clean(fake, out)


def test_files_of_a_queued_request_whose_answer_was_lost_are_kept_not_waited_for(
    out: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Delix queued the request, and its answer never came back (on both sends): the pages get
    ``answer_lost`` rows, and the file is in use by an extract nobody can name. Its delete is
    refused as busy; the run keeps it on record instead of retrying for a minute and failing."""
    clock = FakeClock()
    fake = FakeDelix(queue_polls=0, queue_seconds=10_000, clock=clock)
    refs, _ = archive(tmp_path / "pdfs", twelve=12)
    queue = fake.extract_documents

    def answer_lost(*args: Any) -> None:
        queue(*args)  # applied and charged, as far as anyone knows
        error = DelixTransientError("Delix did not answer (read timeout)", maybe_applied=True)
        error.paid, error.lost_attempts = True, 2
        raise error

    monkeypatch.setattr(fake, "extract_documents", answer_lost)
    summary = run(fake, out, refs, clock=clock, sleep=clock.sleep)
    assert summary.rows["failed"] == 12 and summary.pages_in_doubt == 12
    assert summary.undeleted_uuids == sorted(fake.ours_left()) and len(fake.ours_left()) == 1
    assert clock.sleeps.count(1.0) == 0, "no back-off on a file whose extract cannot be named"
    assert fake.calls["delete_file"] <= 2  # the chunk's delete, and the final cleanup's
    monkeypatch.undo()
    clock.advance(10_000)  # Delix finished with it
    again = run(fake, out, refs, clock=clock, sleep=clock.sleep)
    assert again.orphans_deleted == 1 and again.rows["processed"] == 12  # sent again, as answer_lost
    assert_clean(fake, out)


def test_a_uuid_whose_first_write_failed_is_written_again_at_the_end_and_collected(
    out: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write of the answered record failed once (a throttled object store); the run stops
    and writes it again before it ends, so the next attempt collects the extract it knows by
    uuid instead of paying for its pages again."""
    fake = FakeDelix()
    refs, truth = archive(tmp_path / "pdfs", three=3)
    original = ExtractLedger.record
    failures = itertools.count()

    def throttled_once(self: ExtractLedger, record: ExtractRecord) -> None:
        if record.extract_uuid is not None and next(failures) == 0:
            raise OSError("SlowDown: the state store refused the write")
        original(self, record)

    monkeypatch.setattr(ExtractLedger, "record", throttled_once)
    with pytest.raises(OSError, match="SlowDown"):
        run(fake, out, refs)
    assert len(extract_records_left(out)) == 1
    monkeypatch.undo()
    second = run(fake, out, refs)
    assert second.pages_in_doubt == 0 and second.extracts_adopted == 1
    assert second.requests["extract_documents"] == 0 and texts(out) == truth
    charged_once(fake, 3)
    assert_clean(fake, out)


def test_a_paid_extract_whose_uuid_cannot_be_journalled_is_counted_in_doubt(
    out: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeDelix()
    refs, truth = archive(tmp_path / "pdfs", three=3)
    original = ExtractLedger.record

    def throttled(self: ExtractLedger, record: ExtractRecord) -> None:
        if record.extract_uuid is not None:  # phase two fails: the intent is already durable
            raise OSError("SlowDown: the state store refused the write")
        original(self, record)

    monkeypatch.setattr(ExtractLedger, "record", throttled)
    with pytest.raises(OSError, match="SlowDown"):
        run(fake, out, refs)
    assert len(extract_records_left(out)) == 1, "the intent stays on record"
    monkeypatch.undo()
    second = run(fake, out, refs)
    assert second.pages_in_doubt == 3 and texts(out) == truth  # sent again, and said so
    assert_clean(fake, out)


def test_an_auto_run_writes_invalid_rows_once_and_names_the_engine_of_reused_pages(
    out: str, tmp_path: Path
) -> None:
    """``engine="auto"`` rows say which engine read the page; a page no engine read (invalid)
    says ``auto``, and counts as done for the next auto run instead of being written again."""
    fake = FakeDelix()
    refs, _ = archive(
        tmp_path / "pdfs",
        locked=encrypted(document("locked", 2)),
        damaged=b"%PDF-1.4\n" + bytes(200),
        typed=2,
        typed_copy=document("typed", 2),
    )
    run(fake, out, refs, engine="auto", max_failed_ratio=None)
    frame = read_table(out)
    assert dict(zip(frame.source.map(lambda s: Path(s).stem), frame.engine, strict=False)) == {
        "locked": "auto",
        "damaged": "auto",
        "typed": "probe",
        "typed_copy": "probe",
    }
    calls = dict(fake.calls)
    again = run(fake, out, refs, engine="auto", max_failed_ratio=None)
    assert len(read_table(out)) == 7, "the invalid rows were written again"
    assert sum(again.rows.values()) == 0 and again.pages_resumed == 7 and dict(fake.calls) == calls
