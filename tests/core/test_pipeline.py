"""ExtractionPipeline against the fake account and the real OutputStore on memory://.

The fake raises DelixStorageFullError whenever the account's limits would be passed, so every
test that ends with ``storage_full_raised == 0`` also proves the budget held.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pandas as pd
import pytest
from fakes import PRICE_PER_PAGE, FakeClock, FakeDelix, images, invalid_source, source, text_of

from airflow_provider_delix.api.errors import DelixApiError, DelixAuthError
from airflow_provider_delix.api.models import ErrorCode
from airflow_provider_delix.core.options import PipelineTuning, RunOptions
from airflow_provider_delix.core.pipeline import ExtractionPipeline, chunk_size_for, default_concurrency
from airflow_provider_delix.core.run_stats import Progress
from airflow_provider_delix.core.store import OutputStore
from airflow_provider_delix.core.summary import (
    CreditsExhaustedError,
    PagesLeftError,
    PipelineCancelledError,
    PipelineSummary,
    StorageWaitTimeoutError,
    TooManyFailedPagesError,
    check_failed_ratio,
)
from airflow_provider_delix.core.table import open_output, read_table

pytestmark = pytest.mark.timeout(60)
FAST: dict[str, Any] = {"heartbeat_seconds": 0.05, "stale_after_seconds": 0.3}


@pytest.fixture
def out() -> Iterator[str]:
    url = f"memory://pipeline-{uuid.uuid4().hex}"
    yield url
    fs, path = open_output(url)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def run(
    fake: FakeDelix, out: str, sources: Any, **kwargs: Any
) -> tuple[PipelineSummary | None, BaseException | None, ExtractionPipeline]:
    store = OutputStore(out, **FAST)
    kwargs.setdefault("sleep", lambda _s: None)
    pipeline = build(fake, store, **kwargs)
    try:
        return pipeline.run(sources), None, pipeline
    except BaseException as exc:  # the tests inspect it
        return pipeline.summary, exc, pipeline


def build(fake: Any, store: OutputStore, **kwargs: Any) -> ExtractionPipeline:
    """An ExtractionPipeline from flat keyword arguments: options, tuning and the rest."""
    option_names = set(RunOptions.__dataclass_fields__)
    tuning_names = set(PipelineTuning.__dataclass_fields__)
    options = RunOptions(**{k: kwargs.pop(k) for k in list(kwargs) if k in option_names})
    tuning = PipelineTuning(**{k: kwargs.pop(k) for k in list(kwargs) if k in tuning_names})
    kwargs.setdefault("run_id", "run-1")
    return ExtractionPipeline(fake, store, options, tuning=tuning, **kwargs)


def table(out: str) -> pd.DataFrame:
    return read_table(out)


def assert_clean(fake: FakeDelix) -> None:
    assert fake.ours_left() == set(), "files uploaded by the run are still stored"
    assert fake.storage_full_raised == 0, "the run asked for more storage than the account holds"


def test_success_writes_one_row_per_page_and_deletes_everything(out: str) -> None:
    fake = FakeDelix()
    sources = [*images(57), source("multi.tif", b"m1", b"m2", b"m3"), invalid_source("bad.png")]
    summary, error, _ = run(fake, out, iter(sources))
    assert error is None and summary is not None
    frame = table(out)
    assert len(frame) == 61 and not frame.duplicated(["source", "page_number"]).any()
    assert summary.rows == {"processed": 60, "failed": 0, "rejected": 0, "invalid": 1}
    assert summary.pages_total == 61 and summary.pages_left == 0 and summary.input_complete
    processed = frame[frame.status == "processed"]
    assert all(processed.text.str.startswith("text-")) and set(processed.run_id) == {"run-1"}
    assert set(processed.engine) == {"danlin"} and set(processed.language) == {"fa"}
    assert frame.credits_charged.sum() == summary.credits_charged == 60 * PRICE_PER_PAGE
    # 60 files: the first 30 go as six planned chunks of 5, each cut 1 + 2 + 2 (18 requests),
    # the last 30 in chunks of 2 (15 requests); see core/tail.py.
    assert summary.requests["upload_files"] == summary.requests["extract_images"] == 33
    assert max(len(r) for r in fake.extract_requests) <= 5
    assert summary.requests["delete_file"] == 60 and len(fake.deleted) == 60
    assert 0 < summary.peak_stored_files <= 30 and fake.peak_files <= 30
    invalid = frame[frame.status == "invalid"].iloc[0]
    assert (invalid.source, invalid.error) == ("bad.png", "corrupt_image") and pd.isna(invalid.file_uuid)
    assert_clean(fake)


def test_small_budget_is_never_exceeded_by_files_or_bytes(out: str) -> None:
    fake = FakeDelix(max_files=7, max_bytes=2_000, upload_latency=0.002, delete_latency=0.002)
    summary, error, _ = run(
        fake, out, images(80, size=300), max_stored_files=7, max_stored_bytes=2_000, max_concurrency=6
    )
    assert error is None and summary is not None
    assert summary.rows["processed"] == 80
    assert summary.peak_stored_files <= 7 and summary.peak_stored_bytes <= 2_000
    assert fake.peak_bytes <= 2_000 and fake.peak_files <= 7
    assert_clean(fake)


def test_one_bad_file_does_not_sink_the_others(out: str) -> None:
    fake = FakeDelix()
    sources = [source("a", b"good-a"), source("b", b"BADINPUT-b"), *images(3), source("r", b"REJECT-r")]
    summary, error, _ = run(fake, out, sources, max_concurrency=7)  # full chunks (no ramp/tail cut)
    assert error is None and summary is not None
    frame = table(out).set_index("source")
    assert frame.loc["b", "status"] == "failed" and frame.loc["b", "error"] == "BAD_INPUT"
    assert frame.loc["b", "error_message"] == "فایل" and frame.loc["b", "credits_charged"] == 0
    assert frame.loc["r", "status"] == "rejected" and frame.loc["r", "error"] == "MALFORMED_FILE"
    assert frame.loc["r", "error_message"] == (
        "Delix rejected the file at upload (MALFORMED_FILE: the file is damaged or of an unsupported type)."
    ), "a rejection comes as a bare code: the row says what it means"
    assert (frame.status == "processed").sum() == 4
    # the first chunk was refused whole, then its 5 files were tried one by one
    assert [len(r) for r in fake.extract_requests[:6]] == [5, 1, 1, 1, 1, 1]
    assert_clean(fake)


def test_failed_pages_get_their_refund_and_credit_shares_add_up(out: str) -> None:
    fake = FakeDelix()
    summary, error, _ = run(fake, out, [source("ok", b"ok1", b"ok2"), source("f", b"FAILPAGE")])
    assert error is None and summary is not None
    frame = table(out).set_index("source")
    assert frame.loc["f", "status"] == "failed" and frame.loc["f", "error"] == "page_failed"
    assert frame.loc["f", "credits_refunded"] == PRICE_PER_PAGE
    assert frame.credits_charged.sum() == 3 * PRICE_PER_PAGE == summary.credits_charged
    assert summary.credits_refunded == PRICE_PER_PAGE


def test_expired_file_is_uploaded_again_once(out: str) -> None:
    fake = FakeDelix()
    sources = [source("once", b"EXPIRE-1"), source("always", b"EXPIREALL-2"), source("fine", b"fine")]
    summary, error, _ = run(fake, out, sources)
    assert error is None and summary is not None
    frame = table(out).set_index("source")
    assert frame.loc["once", "status"] == "processed"
    assert frame.loc["always", "status"] == "failed" and frame.loc["always", "error"] == "file_expired"
    assert frame.loc["fine", "status"] == "processed"
    assert_clean(fake)


def test_duplicate_content_is_extracted_once_with_a_row_for_every_source(out: str) -> None:
    fake = FakeDelix()
    shared = b"the same page"
    sources = [source("a.png", shared), *images(12), source("b.pdf", b"x", shared), source("c.png", shared)]
    summary, error, _ = run(fake, out, sources)
    assert error is None and summary is not None
    frame = table(out)
    rows = frame[frame.text == text_of(shared)]
    assert sorted(zip(rows.source, rows.page_number, strict=True)) == [
        ("a.png", 1),
        ("b.pdf", 2),
        ("c.png", 1),
    ]
    assert sum(fake.extracted.values()) == 14  # 12 images + "x" + the shared page, once
    assert rows.credits_charged.sum() == PRICE_PER_PAGE  # charged once, on one row
    assert summary.pages_reused == 2


def test_rerun_resumes_without_calling_the_api(out: str) -> None:
    fake = FakeDelix()
    sources = images(23)
    run(fake, out, sources)
    again = FakeDelix()
    summary, error, _ = run(again, out, sources + images(2, prefix="new"))
    assert error is None and summary is not None
    assert summary.pages_resumed == 23 and summary.rows["processed"] == 2
    assert again.calls["upload_files"] == 1 and sum(again.extracted.values()) == 2
    assert len(table(out)) == 25


def test_orphaned_uploads_of_a_crashed_attempt_are_deleted_first(out: str) -> None:
    fake = FakeDelix()
    orphan = fake.put_foreign(b"left by a crash")
    foreign = fake.put_foreign(b"someone else's file")
    crashed = OutputStore(out, **FAST)
    crashed.uploads.record_uploaded("c0000001", [orphan, "already-gone"])
    del crashed  # a SIGKILL: no close, the lease goes stale
    order: list[str] = []
    fake.on_upload = lambda: order.append("upload")
    original = fake.delete_file

    def delete(uuid: str) -> bool:
        order.append(f"delete:{uuid}")
        return original(uuid)

    fake.delete_file = delete  # type: ignore[method-assign]
    summary, error, pipeline = run(fake, out, images(3))
    assert error is None and summary is not None
    assert set(order[:2]) == {f"delete:{orphan}", "delete:already-gone"}  # concurrent: any order
    assert order[2] == "upload" and summary.orphans_deleted == 2
    assert orphan not in fake.stored and foreign in fake.stored  # never touches others' files
    assert pipeline.store.uploads.orphaned_uploads() == []


def test_credits_running_out_stops_early_and_keeps_finished_rows(out: str) -> None:
    fake = FakeDelix(credits=12 * PRICE_PER_PAGE, upload_latency=0.002)
    summary, error, _ = run(fake, out, iter(images(100)), max_concurrency=2)
    assert isinstance(error, CreditsExhaustedError) and summary is not None
    assert error.summary is summary
    done = summary.rows["processed"]
    assert done == 10 and len(table(out)) == 10  # two chunks of 5 fitted in 12 pages of credits
    message = str(error)
    assert f"{done} page(s) are done" in message and f"{summary.pages_left} page(s) remain" in message
    assert "inputs not read yet" in message and "never pays twice" in message
    assert summary.requests["upload_files"] < 20  # it stopped sending chunks
    assert_clean(fake)


def test_transient_failure_leaves_pages_for_a_rerun_and_fails_at_the_end(out: str) -> None:
    fake = FakeDelix()
    sources = [*images(9), source("flaky", b"TRANSIENT"), *images(5, prefix="tail")]
    summary, error, _ = run(fake, out, sources, max_concurrency=7)  # full chunks (no ramp/tail cut)
    assert isinstance(error, PagesLeftError) and summary is not None
    assert summary.pages_left == 5  # the whole chunk of the flaky file
    assert "5 page(s) got no row" in str(error) and "re-run" in str(error)
    assert len(table(out)) == 10 and "flaky" not in set(table(out).source)
    assert sum(fake.extracted.values()) == 10
    assert fake.calls["extract_images"] == 3  # one call per chunk: no second retry layer here
    assert_clean(fake)
    # A re-run (the service recovered) does exactly the missing pages.
    # Same source file (same sha256, so the same resume keys); the fake keys its faults on
    # content, so the healed service is modelled by other page bytes under that sha256.
    healed = [
        *images(9),
        replace(source("flaky", b"healed"), sha256=sources[9].sha256),
        *images(5, prefix="tail"),
    ]
    again = FakeDelix()
    summary2, error2, _ = run(again, out, healed)
    assert error2 is None and summary2 is not None
    assert summary2.pages_resumed == 10 and summary2.rows["processed"] == 5
    assert len(table(out)) == 15


def test_storage_full_from_other_users_is_waited_out_with_backoff(out: str) -> None:
    clock = FakeClock()
    fake = FakeDelix(full_for_uploads=4)
    summary, error, _ = run(fake, out, images(5), clock=clock, sleep=clock.sleep, max_concurrency=1)
    assert error is None and summary is not None and summary.rows["processed"] == 5
    # Jittered exponential back-off (the storage window, core/window.py, spreads the retries).
    assert len(clock.sleeps) == 4
    for sleep, nominal in zip(clock.sleeps, [1.0, 2.0, 4.0, 8.0], strict=True):
        assert 0.5 * nominal <= sleep <= 1.5 * nominal


def test_storage_full_for_too_long_fails_clearly(out: str) -> None:
    clock = FakeClock()
    fake = FakeDelix(full_for_uploads=10**6)
    summary, error, _ = run(
        fake, out, images(5), clock=clock, sleep=clock.sleep, storage_wait_timeout=100, max_concurrency=1
    )
    assert isinstance(error, StorageWaitTimeoutError) and summary is not None
    assert "stayed full" in str(error) and "other files fill it" in str(error)
    assert "Without a key registry (registry_path) whose files they are is unknown" in str(error)
    assert sum(clock.sleeps) == pytest.approx(100) and max(clock.sleeps) <= 30
    assert summary.pages_left == 5
    assert fake.ours_left() == set()


def test_auth_error_is_final_for_every_request_deletes_included(out: str) -> None:
    fake = FakeDelix(auth_fail=["extract_images"])
    summary, error, _ = run(fake, out, iter(images(200)))
    assert isinstance(error, DelixAuthError) and summary is not None
    assert fake.calls["extract_images"] <= default_concurrency(30)
    assert fake.calls["upload_files"] <= default_concurrency(30)
    assert summary.stop_reason is not None and "DelixAuthError" in summary.stop_reason
    # A refused key is refused for deletes too: none is sent; the files stay on record.
    assert fake.calls["delete_file"] == 0
    assert set(summary.undeleted_uuids) == fake.ours_left() and fake.ours_left()
    again = OutputStore(out, heartbeat_seconds=0.05, stale_after_seconds=0.01)
    try:
        assert set(again.uploads.orphaned_uploads()) == fake.ours_left()
    finally:
        again.close()


def test_files_that_cannot_be_deleted_are_left_on_record_for_the_next_run(out: str) -> None:
    fake = FakeDelix(auth_fail=["extract_images", "delete_file"])
    summary, error, _ = run(fake, out, images(5), max_concurrency=7)  # one chunk of 5
    assert isinstance(error, DelixAuthError) and summary is not None
    assert set(summary.undeleted_uuids) == fake.ours_left() and len(fake.ours_left()) == 5
    again = OutputStore(out, heartbeat_seconds=0.05, stale_after_seconds=0.01)
    try:
        assert set(again.uploads.orphaned_uploads()) == fake.ours_left()
    finally:
        again.close()


def test_cancel_mid_run_deletes_everything_and_keeps_finished_rows(out: str) -> None:
    fake = FakeDelix(upload_latency=0.005)
    cancel = threading.Event()
    uploads = 0

    def count() -> None:
        nonlocal uploads
        uploads += 1
        if uploads == 8:  # upload 7 needed budget freed by a chunk that was extracted
            cancel.set()

    fake.on_upload = count
    summary, error, _ = run(fake, out, iter(images(500)), cancel=cancel, max_concurrency=7)  # full chunks
    assert isinstance(error, PipelineCancelledError) and summary is not None
    assert fake.calls["upload_files"] <= 8 + default_concurrency(30)
    assert len(table(out)) == summary.rows["processed"] > 0
    assert_clean(fake)


def test_an_exception_mid_run_still_cleans_up(out: str) -> None:
    fake = FakeDelix(upload_latency=0.005, extract_latency=(0.01, 0.0))

    def sources() -> Iterator[Any]:
        yield from images(40)
        raise OSError("the archive went away")

    _, error, pipeline = run(fake, out, sources())
    assert isinstance(error, OSError) and "went away" in str(error)
    assert_clean(fake)
    assert pipeline.store.uploads.orphaned_uploads() == []


def test_progress_is_throttled(out: str) -> None:
    clock = FakeClock()
    fake = FakeDelix(upload_latency=1.0, sleep=clock.sleep)
    reports: list[tuple[float, Progress]] = []
    summary, error, _ = run(
        fake,
        out,
        images(60),
        clock=clock,
        progress=lambda p: reports.append((clock(), p)),
        progress_interval=5.0,
        max_concurrency=2,
    )
    assert error is None and summary is not None
    times = [t for t, _ in reports]
    assert len(reports) >= 2
    assert all(b - a >= 5.0 for a, b in itertools.pairwise(times))
    last = reports[-1][1]
    assert last.pages_done <= 60 and last.credits_charged <= summary.credits_charged
    assert any(p.pages_per_second > 0 for _, p in reports)


def test_failed_ratio_is_checked_after_the_run(out: str) -> None:
    fake = FakeDelix()
    summary, error, _ = run(fake, out, [*images(3), source("r", b"REJECT"), invalid_source("x")])
    assert error is None and summary is not None
    assert summary.failed_ratio == pytest.approx(2 / 5)
    check_failed_ratio(summary, 0.5)
    check_failed_ratio(summary, None)
    with pytest.raises(TooManyFailedPagesError, match="2 of 5 pages were not processed"):
        check_failed_ratio(summary, 0.3)
    assert summary.to_dict()["failed_ratio"] == 0.4


def test_a_retry_still_counts_the_pages_an_earlier_attempt_could_not_process(out: str) -> None:
    inputs = [*images(3), source("r", b"REJECT"), invalid_source("x")]
    run(FakeDelix(), out, inputs)
    fake = FakeDelix()
    summary, error, _ = run(fake, out, inputs)  # an Airflow retry: everything is resumed
    assert error is None and summary is not None
    assert summary.pages_resumed == 5 and summary.pages_resumed_not_processed == 2
    assert summary.failed_ratio == pytest.approx(2 / 5)
    with pytest.raises(TooManyFailedPagesError, match="2 not processed by earlier attempts"):
        check_failed_ratio(summary, 0.3)
    assert sum(fake.calls.values()) == 0, "a resumed run calls nothing"


def test_bad_engine_settings_fail_before_any_upload(out: str) -> None:
    store = OutputStore(out, **FAST)
    try:
        with pytest.raises(ValueError):
            build(FakeDelix(), store, engine="danlin", language="xx")
    finally:
        store.close()


def test_deletes_wait_out_file_under_processing_and_404_frees_the_slot(out: str) -> None:
    clock = FakeClock()
    fake = FakeDelix(max_files=5)
    busy: dict[str, int] = {}
    original = fake.delete_file

    def delete(uuid: str) -> bool:
        busy[uuid] = busy.get(uuid, 0) + 1
        if busy[uuid] <= 2:
            raise DelixApiError("in use", error=ErrorCode.FILE_UNDER_PROCESSING, status_code=422)
        if busy[uuid] == 3 and len(busy) % 2:
            with fake.lock:  # expired meanwhile: the API answers 404, the hook returns False
                fake.stored.pop(uuid, None)
            return False
        return original(uuid)

    fake.delete_file = delete  # type: ignore[method-assign]
    # With a 5-file budget every chunk needs all five slots back: a lost release would hang.
    summary, error, _ = run(fake, out, images(20), max_stored_files=5, clock=clock, sleep=clock.sleep)
    assert error is None and summary is not None and summary.rows["processed"] == 20
    assert set(busy.values()) == {3} and clock.sleeps.count(1.0) == 20
    assert_clean(fake)


def test_a_cancel_stops_waiting_for_a_busy_file_at_once(out: str) -> None:
    # After a cancel the pipeline's sleep returns at once: waiting on would be a loop of DELETEs.
    fake = FakeDelix()
    cancel = threading.Event()
    attempts: dict[str, int] = {}

    def delete(uuid: str) -> bool:
        attempts[uuid] = attempts.get(uuid, 0) + 1
        cancel.set()
        raise DelixApiError("in use", error=ErrorCode.FILE_UNDER_PROCESSING, status_code=422)

    fake.delete_file = delete  # type: ignore[method-assign]
    summary, error, _ = run(fake, out, images(5), cancel=cancel, max_concurrency=7)  # one chunk
    assert error is not None and summary is not None
    assert len(attempts) == 5 and max(attempts.values()) <= 3, attempts  # chunk, then final cleanup
    assert set(summary.undeleted_uuids) == set(attempts), "kept on record for the next attempt"


@pytest.mark.parametrize(
    ("budget", "size"), [(30, 5), (25, 5), (8, 4), (7, 3), (6, 3), (29, 4), (5, 5), (3, 3), (1, 1)]
)
def test_chunk_size_lets_whole_chunks_fill_the_budget(budget: int, size: int) -> None:
    assert chunk_size_for(budget) == size


def test_a_share_of_8_files_holds_8_not_5(out: str) -> None:
    # A pool share of the account (8 of 30) is used whole: two chunks of 4, not one of 5.
    fake = FakeDelix(max_files=8, upload_latency=0.01, extract_latency=(0.02, 0.0), delete_latency=0.01)
    summary, error, pipeline = run(fake, out, images(64), max_stored_files=8, max_concurrency=3)
    assert error is None and summary is not None and summary.rows["processed"] == 64
    assert pipeline.files_per_chunk == 4 and summary.requests["extract_images"] == 16
    assert summary.peak_stored_files == fake.peak_files == 8
    assert_clean(fake)


def test_first_and_last_budget_of_files_go_in_small_chunks_each_content_charged_once(out: str) -> None:
    fake = FakeDelix()
    summary, error, _ = run(fake, out, images(100))
    assert error is None and summary is not None and summary.rows["processed"] == 100
    sizes = [len(r) for r in fake.extract_requests]
    # ramp: the first chunks are cut to 1 or 2 files; tail: the last budget's worth goes in 2s.
    # (The storage window sets the body's chunk size, so only the ends are pinned here.) The
    # requests are in the order they reached the fake: on a loaded machine a larger chunk
    # planned just before the tail can arrive among the tail's, so two of them are allowed.
    assert sum(sizes) == 100 and max(sizes) <= 5
    assert max(sizes[:6]) <= 2 and sum(size <= 2 for size in sizes[-12:]) >= 10, sizes
    assert set(fake.extracted.values()) == {1} and len(fake.extracted) == 100
    assert fake.peak_files <= 30 and summary.peak_stored_files <= 30
    assert_clean(fake)


def test_a_chosen_max_concurrency_keeps_every_chunk_full(out: str) -> None:
    fake = FakeDelix()
    summary, error, _ = run(fake, out, images(100), max_concurrency=7)
    assert error is None and summary is not None and summary.rows["processed"] == 100
    assert [len(r) for r in fake.extract_requests] == [5] * 20
    assert_clean(fake)


def test_an_unreadable_answer_to_a_re_upload_keeps_the_chunks_other_files_on_record(
    out: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file expired before its extraction and its re-upload got an answer that cannot be read:
    the file the answer named is deleted, and the chunk's other stored file (here "bad", refused
    alone and not deleted yet) stays on the upload record, so a kill at that moment still
    leaves it to the next attempt's orphan deletes."""
    from airflow_provider_delix.api.errors import DelixResponseError
    from airflow_provider_delix.core.chunk_bad_answers import ChunkBadAnswers

    fake = FakeDelix()
    upload = fake.upload_files
    uploaded: set[bytes] = set()

    def second_answer_unreadable(files: Any) -> Any:
        stored = upload(files)
        datas = [bytes(d) for _, d in files]
        again = datas == [b"EXPIRE-1"] and b"EXPIRE-1" in uploaded
        uploaded.update(datas)
        if again:  # the re-upload of the expired file alone
            raise DelixResponseError("two entries for one file", uuids=tuple(s.uuid for s in stored))
        return stored

    monkeypatch.setattr(fake, "upload_files", second_answer_unreadable)
    # The chunk's request is refused for the bad file (422), so its files go one by one; only
    # then does "once" expire, so it alone is uploaded again while "fine" waits, stored.
    extract = fake.extract_images
    extractions = itertools.count()

    def expiring_later(*args: Any) -> Any:
        fake.expiring = next(extractions) >= 2
        return extract(*args)

    monkeypatch.setattr(fake, "extract_images", expiring_later)
    recorded: list[tuple[set[str], set[str]]] = []  # (on the upload record, the chunk's stored files)
    unreadable = ChunkBadAnswers._unreadable_upload

    def snapshot(self: Any, slots: Any, exc: DelixResponseError) -> None:
        unreadable(self, slots, exc)
        with self.ctx.store._lock:
            on_record = set(self.ctx.store.uploads._uploads.get(self.chunk.chunk_id, []))
        recorded.append((on_record, {s.uuid for s in self.slots if s.uuid in fake.stored}))

    monkeypatch.setattr(ChunkBadAnswers, "_unreadable_upload", snapshot)
    # The tail goes in chunks of two: "bad" and "once" share the last one.
    sources = [source("fine", b"fine"), source("bad", b"BADINPUT"), source("once", b"EXPIRE-1")]
    summary, error, _ = run(fake, out, sources)
    assert error is None and summary is not None
    ((on_record, stored),) = recorded
    assert len(stored) == 1 and stored <= on_record, "a stored file of the chunk left the upload record"
    frame = table(out).set_index("source")
    assert frame.loc["fine", "status"] == "processed" and frame.loc["once", "error"] == "malformed_answer"
    assert_clean(fake)
