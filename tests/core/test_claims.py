"""Writers sharing one output path: every page is paid once and written once (core/claims.py).

Real OutputStores on a temporary directory, the in-memory fake account, real threads: the
writers race for real; the assertions are on charges and rows, never on timing.
"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeDelix, images, source

from airflow_provider_delix.core.claims import ClaimBook, claim_book
from airflow_provider_delix.core.ledger import ExtractRecord, LedgerFile
from airflow_provider_delix.core.options import PipelineTuning, RunOptions
from airflow_provider_delix.core.pipeline import ExtractionPipeline
from airflow_provider_delix.core.planning import PageTarget
from airflow_provider_delix.core.store import OutputStore
from airflow_provider_delix.core.summary import PagesLeftError, PipelineSummary
from airflow_provider_delix.core.table import PageRow, RowStatus, read_table

pytestmark = pytest.mark.timeout(120)
FAST: dict[str, Any] = {"heartbeat_seconds": 0.05, "stale_after_seconds": 0.3}


def pipeline(fake: FakeDelix, store: OutputStore, run_id: str) -> ExtractionPipeline:
    options = RunOptions(max_stored_files=10)  # two writers share the fake's 30 files
    return ExtractionPipeline(fake, store, options, tuning=PipelineTuning(), run_id=run_id)


def run_writers(fake: FakeDelix, out: str, inputs: list[list[Any]]) -> list[PipelineSummary]:
    summaries: list[Any] = [None] * len(inputs)
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            with OutputStore(out, run_tag=f"w{i}", **FAST) as store:
                summaries[i] = pipeline(fake, store, f"run-{i}").run(inputs[i])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return summaries


def assert_once(fake: FakeDelix, out: str, pages: int) -> None:
    assert set(fake.extracted.values()) == {1}, "a page was paid for twice"
    assert sum(fake.extracted.values()) == pages
    df = read_table(out)
    assert len(df) == pages, "one row per page"
    assert not df.duplicated(["source_sha256", "page_number"]).any()
    assert (df["status"] == "processed").all()
    assert fake.ours_left() == set()


def test_two_writers_over_the_same_inputs_pay_each_page_once(tmp_path: Path) -> None:
    fake = FakeDelix(extract_latency=(0.03, 0.0))
    shared = images(40)
    summaries = run_writers(fake, str(tmp_path / "out"), [shared, list(shared)])
    assert_once(fake, str(tmp_path / "out"), 40)
    done = [sum(s.rows.values()) + s.pages_resumed for s in summaries]
    assert done == [40, 40], "each writer accounts for every page: its rows plus the other's"


def test_overlapping_inputs_pay_the_overlap_once(tmp_path: Path) -> None:
    fake = FakeDelix(extract_latency=(0.03, 0.0))
    every = images(45)
    run_writers(fake, str(tmp_path / "out"), [every[:30], every[15:], every[10:40]])
    assert_once(fake, str(tmp_path / "out"), 45)


def test_pages_claimed_by_a_writer_that_dies_are_sent_after_its_lease_goes(tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    fake = FakeDelix()
    sources = images(12)
    dying = OutputStore(out, run_tag="dying", **FAST)
    # Its decided claim on the first six pages, never answered: it dies before sending them.
    claimed = [PageTarget(s.ref.source, s.sha256, 1, None) for s in sources[:6]]
    dying.ledger.record(
        ExtractRecord(
            "c0000001-x1",
            None,
            "images",
            "danlin",
            "fa",
            tuple(LedgerFile(f"u{i}", ((1, (t,)),)) for i, t in enumerate(claimed)),
            claimed_at=time.time() - 60,
            decided=True,
        )
    )
    threading.Timer(1.5, dying.abort).start()  # the writer stops; its lease goes with it
    with OutputStore(out, run_tag="survivor", **FAST) as store:
        summary = pipeline(fake, store, "run-s").run(sources)
    assert sum(summary.rows.values()) == 12
    assert_once(fake, out, 12)


def test_pages_a_dead_writer_was_answered_for_are_left_for_the_next_run_not_paid_again(
    tmp_path: Path,
) -> None:
    out = str(tmp_path / "out")
    fake = FakeDelix()
    sources = images(8)
    dying = OutputStore(out, run_tag="dying", **FAST)
    claimed = [PageTarget(s.ref.source, s.sha256, 1, None) for s in sources[:3]]
    files = tuple(LedgerFile(f"u{i}", ((1, (t,)),)) for i, t in enumerate(claimed))
    # Delix answered its request (the extract is paid), then the writer died.
    dying.ledger.record(ExtractRecord("c0000001-x1", "paid-extract", "images", "danlin", "fa", files))
    threading.Timer(1.5, dying.abort).start()
    store = OutputStore(out, run_tag="survivor", **FAST)
    with pytest.raises(PagesLeftError, match="held by another writer") as raised:
        pipeline(fake, store, "run-s").run(sources)
    assert raised.value.summary.pages_left == 3 and sum(raised.value.summary.rows.values()) == 5
    paid = {hashlib.sha256(s.pages[0].data or b"").hexdigest() for s in sources[:3]}
    assert not paid & set(fake.extracted), "pages a dead writer paid for were sent again"
    assert len(fake.extracted) == 5


def _book(out: str, tag: str) -> tuple[OutputStore, ClaimBook]:
    store = OutputStore(out, run_tag=tag, **FAST)
    book = claim_book(store, ["danlin"], "fa", cache_seconds=0.0, poll_seconds=0.01)
    return store, book


def _claim(store: OutputStore, keys: list[PageTarget], at: float) -> ExtractRecord:
    record = ExtractRecord(
        f"c{int(at * 1000) % 10_000_000:07d}-x1",
        None,
        "images",
        "danlin",
        "fa",
        (LedgerFile(f"f-{store.run_tag}", tuple((1, (t,)) for t in keys)),),
        claimed_at=at,
    )
    store.ledger.record(record)
    return record


@pytest.mark.parametrize("round_", range(12))
def test_two_claims_on_one_page_at_once_resolve_to_exactly_one_sender(tmp_path: Path, round_: int) -> None:
    out = str(tmp_path / "out")
    (a, book_a), (b, book_b) = _book(out, "a"), _book(out, "b")
    page = [PageTarget("x.png", "sha-x", 1, None)]
    start = threading.Barrier(2)
    verdicts: dict[str, Any] = {}
    now = time.time()

    def claim(store: OutputStore, book: ClaimBook, at: float, pause: float) -> None:
        start.wait()
        time.sleep(pause)
        verdicts[store.run_tag[0]] = book.check(_claim(store, page, at))

    # Claim times and pauses vary: who writes first, who reads first, and who wins all change.
    at_a, at_b = now + (round_ % 3) * 0.001, now + ((round_ + 1) % 3) * 0.001
    pause_a, pause_b = (round_ % 4) * 0.002, ((round_ // 4) % 3) * 0.002
    threads = [
        threading.Thread(target=claim, args=(a, book_a, at_a, pause_a)),
        threading.Thread(target=claim, args=(b, book_b, at_b, pause_b)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    senders = [tag for tag, v in verdicts.items() if v.send]
    assert len(senders) == 1, verdicts
    loser = "b" if senders == ["a"] else "a"
    assert verdicts[loser].deferred, "the other writer defers the page instead of dropping it"
    a.abort()
    b.abort()


def test_a_lone_writer_only_lists_the_leases(tmp_path: Path) -> None:
    store, book = _book(str(tmp_path / "out"), "alone")
    record = _claim(store, [PageTarget("x.png", "sha-x", 1, None)], time.time())
    verdict = book.check(record)
    assert verdict.send == {f"f-{store.run_tag}"} and verdict.record is record  # not rewritten
    store.abort()


def test_pages_a_writer_finished_after_the_other_joined_are_not_sent_again(tmp_path: Path) -> None:
    """B joined while A lived; A then wrote its rows, published and left: B is alone again, but
    the pages A wrote are done, not free (CI saw 60 rows for 40 pages when A finished first)."""
    out, fake = str(tmp_path / "out"), FakeDelix()
    shared = images(5)
    b, book_b = _book(out, "b")
    with OutputStore(out, run_tag="a", **FAST) as a:
        pipeline(fake, a, "run-a").run(shared)
    assert book_b.alone() is False, "a writer that published rows since B started is not 'alone'"
    first = shared[0]
    verdict = book_b.check(_claim(b, [PageTarget(first.ref.source, first.sha256, 1, None)], time.time()))
    assert not verdict.send and verdict.done == {f"f-{b.run_tag}"}
    b.abort()


def test_a_page_another_writer_just_tried_is_left_for_the_next_run(tmp_path: Path) -> None:
    """A wrote a retryable row (answer lost twice) after B started: B does not send the page
    again. B's index predates that row, so B's row could not carry its credits; the next run
    sends the page and carries them."""
    out, fake = str(tmp_path / "out"), FakeDelix()
    lost = source("lost.png", b"LOSTTWICE")
    b, book_b = _book(out, "b")
    with OutputStore(out, run_tag="a", **FAST) as a:
        pipeline(fake, a, "run-a").run([lost])
    verdict = book_b.check(_claim(b, [PageTarget(lost.ref.source, lost.sha256, 1, None)], time.time()))
    assert not verdict.send and verdict.done == {f"f-{b.run_tag}"}
    b.abort()


def test_a_retryable_row_older_than_this_run_is_its_to_send_even_once_published(tmp_path: Path) -> None:
    """Another writer's retryable row already journalled when this run started is in this
    run's resume index: this run sends the page, also after that writer publishes the row."""
    out = str(tmp_path / "out")
    other = OutputStore(out, run_tag="w2", **FAST)
    lost = PageRow("a.jpg", "shaA", 1, RowStatus.FAILED, error="answer_lost", engine="danlin", language="fa")
    other.append("c1", [lost])
    mine, book = _book(out, "w1")
    other.close()  # its journal becomes a part after this run started
    verdict = book.check(_claim(mine, [PageTarget("a.jpg", "shaA", 1, None)], time.time()))
    assert verdict.send, "not a fresh try of another writer: this run's own work"
    mine.abort()


def test_a_fresh_try_is_told_by_identity_not_by_clock(tmp_path: Path) -> None:
    """Another writer whose clock is behind ours writes a retryable row after this run started:
    its time says "before", but this run's resume index never read it, so it is a fresh try."""
    import datetime as dt

    out = str(tmp_path / "out")
    mine, book = _book(out, "w1")
    book.know(set())  # this run's resume index read no retryable row
    other = OutputStore(out, run_tag="w2", **FAST)
    behind = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    lost = PageRow("a.jpg", "shaA", 1, RowStatus.FAILED, error="answer_lost", engine="danlin", language="fa")
    lost.processed_at = behind
    other.append("c1", [lost])
    verdict = book.check(_claim(mine, [PageTarget("a.jpg", "shaA", 1, None)], time.time()))
    assert not verdict.send, "another writer's fresh try: left for the next run"
    other.close()
    mine.abort()


def test_writers_resuming_together_collect_a_dead_writers_extracts_once(tmp_path: Path) -> None:
    """Two writers start at once over an output whose earlier writer was answered for half the
    pages and died: its extracts are collected by one of them (core/adopt_claims.py), the other
    half is paid once, and nothing is left on the account."""
    out = str(tmp_path / "out")
    fake = FakeDelix(extract_latency=(0.03, 0.0))
    sources = images(20)
    dead = OutputStore(out, run_tag="dead", **FAST)
    for n in range(2):
        batch = sources[5 * n : 5 * n + 5]
        stored = fake.upload_files([(s.ref.source, s.pages[0].data or b"") for s in batch])
        uuids = [f.uuid for f in stored]  # type: ignore[union-attr]
        extract = fake.extract_images(uuids, "danlin", "fa")
        files = tuple(
            LedgerFile(u, ((1, (PageTarget(s.ref.source, s.sha256, 1, None),)),))
            for u, s in zip(uuids, batch, strict=True)
        )
        dead.uploads.record_uploaded(f"c{n}", uuids)
        dead.ledger.record(ExtractRecord(f"c{n}-x1", extract.uuid, "images", "danlin", "fa", files))
    dead.close()
    summaries = run_writers(fake, out, [sources, list(sources)])
    assert_once(fake, out, 20)
    assert sum(s.extracts_adopted for s in summaries) == 2


def test_another_writers_rows_about_its_own_run_neither_settle_nor_hold_a_page(tmp_path: Path) -> None:
    """An image writer's ``pdf_not_supported`` row or a ``not_found``/``over_budget`` row says
    something about that writer's run, not the page: a document writer that started before it
    still sends the page (and keeps its rows), and is not told to leave it for the next run."""
    out = str(tmp_path / "out")
    mine, book = _book(out, "w1")
    other = OutputStore(out, run_tag="w2", **FAST)
    routed = PageRow(
        "a.pdf", "shaA", 1, RowStatus.INVALID, error="pdf_not_supported", engine="danlin", language="fa"
    )
    budget = PageRow(
        "b.pdf", "shaB", 1, RowStatus.INVALID, error="over_budget", engine="danlin", language="fa"
    )
    other.append("c1", [routed, budget])
    for sha in ("shaA", "shaB"):
        verdict = book.check(_claim(mine, [PageTarget(f"{sha}.pdf", sha, 1, None)], time.time()))
        assert verdict.send, sha
    assert book.keep_rows([("shaA", 1), ("shaB", 1)]) == [True, True]
    other.close()
    mine.abort()
