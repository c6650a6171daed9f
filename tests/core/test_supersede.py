"""Pages that failed for a reason other than their content are done by the next run, once.

``file_expired`` (the stored file vanished twice), ``malformed_answer`` and ``no_result`` rows
are not "done": the next run on the same output sends those pages again and their old rows
are replaced, so the table keeps one row per page and nothing stored is paid twice.
"""

from __future__ import annotations

from typing import Any

from fakes import FakeDelix, source
from test_pipeline import run, table

from airflow_provider_delix.api.errors import DelixApiError
from airflow_provider_delix.api.models import ErrorCode
from airflow_provider_delix.core.resume import ResumeIndex
from airflow_provider_delix.core.supersede import retryable


def sources() -> list[Any]:
    return [source("always", b"EXPIREALL-2"), source("fine", b"fine"), source("other", b"other")]


def test_a_page_stranded_by_vanishing_files_is_finished_by_the_next_run(out: str) -> None:
    fake = FakeDelix()
    first, error, _ = run(fake, out, sources())
    assert error is None and first is not None
    assert table(out).set_index("source").loc["always", "error"] == "file_expired"
    charged = dict(fake.extracted)

    again, error, _ = run(fake, out, sources())  # the files vanish again: still failed, one row
    assert error is None and again is not None and sum(again.rows.values()) == 1
    frame = table(out)
    assert len(frame) == 3 and frame.set_index("source").loc["always", "error"] == "file_expired"

    fake.expiring = False  # the server keeps its files now
    last, error, _ = run(fake, out, sources())
    assert error is None and last is not None
    assert last.rows["processed"] == 1 and last.pages_resumed == 2
    frame = table(out).set_index("source")
    assert len(frame) == 3 and (frame["status"] == "processed").all(), "one row per page, the new one"
    assert {k: v for k, v in fake.extracted.items() if k in charged} == charged, "nothing paid twice"
    assert sum(fake.extracted.values()) == 3

    uploads = fake.calls["upload_files"]
    settled, error, _ = run(fake, out, sources())
    assert error is None and settled is not None
    assert sum(settled.rows.values()) == 0 and settled.pages_resumed == 3
    assert fake.calls["upload_files"] == uploads, "a finished output sends nothing"


def test_only_reasons_that_are_not_the_content_are_retried() -> None:
    assert retryable("failed", "file_expired") and retryable("failed", "malformed_answer")
    assert retryable("failed", "no_result")
    assert not retryable("failed", "page_failed") and not retryable("failed", "BAD_INPUT")
    assert not retryable("processed", None) and not retryable("invalid", "corrupt_image")
    assert retryable("failed", "GENERAL_EXCEPTION"), "a server failure refused it: nothing settled"
    assert not retryable("rejected", "GENERAL_EXCEPTION")
    rows = [
        ("a", "sha-a", 1, "failed", "danlin", "fa", "file_expired"),
        ("b", "sha-b", 1, "failed", "danlin", "fa", "page_failed"),
        ("c", "sha-c", 1, "failed", "danlin", "fa", "no_result"),
        ("c", "sha-c", 1, "processed", "danlin", "fa", None),
    ]
    index = ResumeIndex(rows, engines=["danlin"], language="fa")
    assert not index.done("sha-a", "a", 1) and index.done("sha-b", "b", 1) and index.done("sha-c", "c", 1)
    assert index.sent_again == 1 and index.has_stale


def test_rows_of_other_settings_neither_supersede_nor_are_superseded(tmp_path: Any) -> None:
    """Re-running an output in another language or with another engine asks another question:
    only rows of the closing run's settings, whose credits its index carried, are replaced."""
    import fsspec
    import pyarrow as pa
    import pyarrow.parquet as pq

    from airflow_provider_delix.core.supersede import stale_rows
    from airflow_provider_delix.core.table import PageRow, RowStatus, rows_to_record_batch

    def part(name: str, engine: str, language: str, status: RowStatus, error: str | None = None) -> str:
        row = PageRow("a.png", "sha-a", 1, status, error=error, engine=engine, language=language)
        pq.write_table(pa.Table.from_batches([rows_to_record_batch([row])]), tmp_path / name)
        return str(tmp_path / name)

    lost = part("p1.parquet", "danlin", "fa", RowStatus.FAILED, "answer_lost")
    english = part("p2.parquet", "danlin", "en", RowStatus.PROCESSED)
    tiho_lost = part("p4.parquet", "tiho", "fa", RowStatus.FAILED, "answer_lost")
    tiho = part("p3.parquet", "tiho", "fa", RowStatus.PROCESSED)  # the later try
    fs = fsspec.filesystem("file")
    parts = [lost, english, tiho, tiho_lost]

    def run_of(engines: set[str], language: str) -> Any:
        return lambda engine, lang: engine in engines and lang == language

    assert stale_rows(fs, parts, run_of({"danlin"}, "fa")) == {}, "the danlin fa page still needs its row"
    assert stale_rows(fs, parts, run_of({"tiho"}, "fa")) == {tiho_lost: [0]}, "not the danlin row"
    persian = part("p5.parquet", "danlin", "fa", RowStatus.PROCESSED)
    assert stale_rows(fs, [*parts, persian], run_of({"danlin"}, "fa")) == {lost: [0]}
    assert stale_rows(fs, [*parts, persian], run_of({"danlin"}, "en")) == {}


def test_the_rows_of_one_try_stay_together_until_a_later_try(tmp_path: Any) -> None:
    """Two sources share a content: one try gives each a row, the first holding the credits. No
    later try: both stay (the credits too). A later try of one source replaces its own row, and
    one holding credits replaces the credited row it carried on; a settled row of the same
    engine replaces all, an older one of the other engine of an auto run (it carried nothing)
    none."""
    import datetime as dt

    import fsspec
    import pyarrow as pa
    import pyarrow.parquet as pq

    from airflow_provider_delix.core.supersede import stale_rows
    from airflow_provider_delix.core.table import PageRow, RowStatus, rows_to_record_batch

    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def row(
        source: str, minute: int, credits: int, status: RowStatus = RowStatus.FAILED, engine: str = "danlin"
    ) -> PageRow:
        error = "answer_lost" if status is RowStatus.FAILED else None
        return PageRow(
            source, "sha-c", 1, status, error=error, engine=engine, language="fa",
            credits_charged=credits, processed_at=at + dt.timedelta(minutes=minute),
        )  # fmt: skip

    def part(name: str, *rows: PageRow) -> str:
        pq.write_table(pa.Table.from_batches([rows_to_record_batch(list(rows))]), tmp_path / name)
        return str(tmp_path / name)

    fs, everything = fsspec.filesystem("file"), lambda engine, language: True
    first = part("p1.parquet", row("x.jpg", 0, 400), row("y.jpg", 1, 0))
    assert stale_rows(fs, [first], everything) == {}, "one try: both rows stay"
    by_y = part("p2.parquet", row("y.jpg", 5, 600))  # a later try through y only, carrying x's 400
    assert stale_rows(fs, [first, by_y], everything) == {first: [0, 1]}
    settled = part("p3.parquet", row("x.jpg", 9, 200, RowStatus.PROCESSED))
    assert stale_rows(fs, [first, by_y, settled], everything) == {first: [0, 1], by_y: [0]}
    probe = part("p4.parquet", row("z.jpg", -5, 100, RowStatus.PROCESSED, "probe"))  # an auto run's
    assert stale_rows(fs, [first, probe], everything) == {}, "an older row of the other engine"
    same = part("p5.parquet", row("z.jpg", -5, 100, RowStatus.PROCESSED))
    assert stale_rows(fs, [first, same], everything) == {first: [0, 1]}, "any settled row of its engine"


def test_a_row_of_other_settings_lends_no_credits(tmp_path: Any) -> None:
    """A run collects a dead writer's extract made in another language: that row's credits stay
    with it, not with this run's row of the same page, which would count them twice."""
    from airflow_provider_delix.core.store import OutputStore
    from airflow_provider_delix.core.table import PageRow, RowStatus, read_table

    out = str(tmp_path / "out")
    persian = ResumeIndex((), engines=["danlin"], language="fa")
    with OutputStore(out, heartbeat_seconds=0.05, stale_after_seconds=0.3) as store:
        store.carried, store.settings = persian.carried, persian.matches
        english = PageRow("d.pdf", "sha-d", 1, RowStatus.FAILED, error="malformed_answer", engine="danlin")
        english.language, english.credits_charged = "en", 100
        store.append("adopt-x", [], holding=[english])
        mine = PageRow("d.pdf", "sha-d", 1, RowStatus.PROCESSED, text="t", engine="danlin", language="fa")
        mine.credits_charged = 100
        store.append("c1", [mine])
    assert int(read_table(out).credits_charged.sum()) == 200


class _GeneralException(FakeDelix):
    """Refuses any extraction naming ``GENEXC`` content with GENERAL_EXCEPTION while ``failing``."""

    failing = True

    def extract_images(self, file_uuids: Any, engine: Any, language: Any) -> Any:
        with self.lock:
            datas = [self.stored.get(u, b"") for u in file_uuids]
        if self.failing and any(d.startswith(b"GENEXC") for d in datas):
            raise DelixApiError("general", error=ErrorCode.GENERAL_EXCEPTION, status_code=422)
        return super().extract_images(file_uuids, engine, language)


def test_a_file_refused_alone_with_general_exception_is_sent_again_by_the_next_run(out: str) -> None:
    fake = _GeneralException()
    first, error, _ = run(fake, out, [*sources()[1:], source("flaky", b"GENEXC")])
    assert error is None and first is not None
    rows = table(out).set_index("source")
    assert rows.loc["flaky", "status"] == "failed" and rows.loc["flaky", "error"] == "GENERAL_EXCEPTION"
    assert rows.loc["flaky", "credits_charged"] == 0, "a refusal is free"

    fake.failing = False  # Delix recovered
    again, error, _ = run(fake, out, [*sources()[1:], source("flaky", b"GENEXC")])
    assert error is None and again is not None
    assert again.rows["processed"] == 1 and again.pages_resumed == 2
    frame = table(out)
    assert len(frame) == 3 and (frame["status"] == "processed").all(), "one row per page, the new one"
