"""Packs whose answer goes wrong: refused after a lost send, unreadable, collected twice.

The table's credit sums must equal what the fake account charged, the run's own figures must
count only what it spent, and every image keeps one row.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import pytest
from fakes import PRICE_PER_PAGE, PRICE_PER_PDF_PAGE, FakeDelix
from test_packing import FAST, archive, jpeg, parked, rows, run, unreadable_contents

import airflow_provider_delix.core.adopt as adopt
from airflow_provider_delix.api.errors import DelixApiError
from airflow_provider_delix.core.store import OutputStore
from airflow_provider_delix.core.table import PageRow, RowStatus, read_table

pytestmark = pytest.mark.timeout(120)


def test_a_refused_pack_hands_its_lost_send_to_its_images(tmp_path: Path) -> None:
    """The pack's first send was charged and its answer lost; the re-send was refused. Its
    images are not sent again in the run (that request could be re-sent too: a third send):
    each gets an answer_lost row with its share of the lost send, which the next run carries on."""

    class LostThenRefused(FakeDelix):
        lost = False

        def extract_documents(self, files: Any, engine: Any, language: Any) -> Any:
            if not self.lost:
                self.lost = True
                refused = DelixApiError("422", error="EXCEEDING_FILE_PAGE")
                refused.lost_attempts = 1
                raise refused
            return super().extract_documents(files, engine, language)

    refs = archive(tmp_path / "scans", 6)
    fake = LostThenRefused()
    out = str(tmp_path / "out")
    summary = run(fake, out, refs, packing="pdf")
    assert {v[:1] + v[2:] for v in rows(out).values()} == {("failed", PRICE_PER_PDF_PAGE, 0)}
    assert set(read_table(out).error) == {"answer_lost"}
    # the refused request is the override's own (not counted): nothing else was extracted
    assert fake.calls["extract_documents"] == 0 and fake.calls["extract_images"] == 0
    assert summary.credits_charged == summary.credits_at_risk == 6 * PRICE_PER_PDF_PAGE

    again = run(fake, out, refs, packing="pdf")
    got = rows(out)
    assert {v[:1] + v[2:] for v in got.values()} == {("processed", 2 * PRICE_PER_PDF_PAGE, 0)}
    assert again.credits_charged == 6 * PRICE_PER_PDF_PAGE and again.credits_at_risk == 0


def test_a_page_that_failed_in_a_pack_answered_on_its_resend_waits_for_the_next_run(tmp_path: Path) -> None:
    """The pack's first send was charged and its answer lost; the re-send was answered, with one
    page failed. With ``retry_packed_failures`` that page is not sent alone in the same run (its
    request could be re-sent too: a third charge for it); its ``failed_in_pack`` row holds both
    sends and the next run sends it alone."""

    class LostOnceThenAnswered(FakeDelix):
        lost = False

        def extract_documents(self, files: Any, engine: Any, language: Any) -> Any:
            extract = super().extract_documents(files, engine, language)
            if not self.lost:  # the first send was applied and its answer lost; the re-send answered
                self.lost = True
                extract = dataclasses.replace(
                    super().extract_documents(files, engine, language), lost_attempts=1
                )
            return extract

    refs = archive(tmp_path / "scans", 6)
    (tmp_path / "scans" / "scan-004.jpg").write_bytes(jpeg(4, comment="PACKFAIL"))
    fake = LostOnceThenAnswered(queue_polls=0)  # the lost send's extract finishes too: its file frees
    out = str(tmp_path / "out")
    first = run(fake, out, refs, packing="pdf", retry_packed_failures=True)
    got = rows(out)
    assert fake.calls["extract_images"] == 0, "a page of a pack that lost an answer was sent again"
    assert got["scan-004.jpg"][0] == "failed" and got["scan-004.jpg"][2:] == (2 * PRICE_PER_PDF_PAGE, 100)
    assert set(read_table(out).query("status == 'failed'").error) == {"failed_in_pack"}
    assert first.credits_charged == 12 * PRICE_PER_PDF_PAGE

    again = run(fake, out, refs, packing="pdf", retry_packed_failures=True)
    got = rows(out)
    assert fake.calls["extract_images"] == 1 and fake.calls["extract_documents"] == 2
    assert got["scan-004.jpg"][0] == "processed" and got["scan-004.jpg"][1]
    assert got["scan-004.jpg"][2:] == (2 * PRICE_PER_PDF_PAGE + PRICE_PER_PAGE, 100)
    assert again.credits_charged == PRICE_PER_PAGE
    assert sum(v[2] for v in got.values()) == 12 * PRICE_PER_PDF_PAGE + PRICE_PER_PAGE


def test_collecting_an_unreadable_pack_counts_only_this_runs_spending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An earlier run's answer_lost row (400) is carried by the page's new row; the collecting
    run's manifest counts the packs it collected and its own sends, not that 400."""
    refs = archive(tmp_path / "scans", 12)
    out = str(tmp_path / "out")
    four = tmp_path / "scans" / "scan-004.jpg"
    with OutputStore(out, **FAST) as store:
        sha = hashlib.sha256(four.read_bytes()).hexdigest()
        old = PageRow(
            str(four), sha, 1, RowStatus.FAILED, error="answer_lost", engine="danlin", language="fa"
        )
        old.credits_charged = 400
        store.append("old", [old])
    fake, out, first = parked(tmp_path, refs)
    unreadable_contents(monkeypatch, fake, set(first.waiting_extracts))
    summary = run(fake, out, refs, packing="pdf")
    got = rows(out)
    assert len(got) == 12 and sum(v[2] for v in got.values()) == 400 + 24 * PRICE_PER_PDF_PAGE
    assert summary.credits_charged == 24 * PRICE_PER_PDF_PAGE


@pytest.mark.parametrize("answer", ["failed_in_pack", "unreadable"])
def test_a_pack_collected_twice_is_charged_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: str
) -> None:
    """The first collector wrote the pack's rows, then neither dropped nor marked its record
    (as if it died in between: `_drop` is stubbed to do nothing) and did not send its
    unsettled pages again; the next one collects the same pack again. Its retryable rows are
    not written twice, and its charge is not carried onto itself."""
    refs = archive(tmp_path / "scans", 12)
    (tmp_path / "scans" / "scan-009.jpg").write_bytes(jpeg(9, comment="PACKFAIL"))
    fake, out, first = parked(tmp_path, refs)
    options: dict[str, Any] = {"packing": "pdf"}
    listed = refs
    if answer == "failed_in_pack":
        options["retry_packed_failures"] = True
        listed = [r for r in refs if not r.source.endswith("scan-009.jpg")]
    else:
        unreadable_contents(monkeypatch, fake, set(first.waiting_extracts))
        listed = refs[:1]
    with monkeypatch.context() as patch:
        patch.setattr(adopt, "_drop", lambda client, store, record: False)  # records stay as they are
        run(fake, out, listed, **options)
    monkeypatch.undo()
    run(fake, out, refs, **options)
    got = rows(out)
    assert len(got) == 12
    frame = read_table(out)
    charged = (
        PRICE_PER_PDF_PAGE * (fake.calls["extract_documents"] * 6)
        + PRICE_PER_PAGE * fake.calls["extract_images"]
    )
    assert int(frame.credits_charged.sum()) == charged
    assert int(frame.credits_refunded.sum()) == PRICE_PER_PDF_PAGE  # scan-009 failed in its pack
    assert fake.stored == {}


def test_a_refused_packs_lost_send_is_on_record_when_its_images_are_never_sent(tmp_path: Path) -> None:
    """The lost send of a refused pack is held on its images' answer_lost rows; the other pack
    runs out of credits, and the table still says what Delix may have charged."""
    import time

    from airflow_provider_delix.api.errors import DelixInsufficientCreditsError
    from airflow_provider_delix.api.models import ErrorCode

    class LostThenRefusedThenBroke(FakeDelix):
        sends = 0

        def extract_documents(self, files: Any, engine: Any, language: Any) -> Any:
            with self.lock:
                self.sends += 1
                first = self.sends == 1
            if first:
                time.sleep(0.3)  # the other pack runs out of credits meanwhile
                refused = DelixApiError("422", error="EXCEEDING_FILE_PAGE")
                refused.lost_attempts = 1
                raise refused
            raise DelixInsufficientCreditsError("no credits", error=ErrorCode.NO_SUFFICIENT_CREDITS)

    refs = archive(tmp_path / "scans", 12)
    out = str(tmp_path / "out")
    with pytest.raises(Exception, match="NO_SUFFICIENT_CREDITS") as raised:
        run(LostThenRefusedThenBroke(), out, refs, packing="pdf")
    summary = raised.value.summary  # type: ignore[attr-defined]
    frame = read_table(out)
    assert len(frame) == 6 and set(frame["error"]) == {"answer_lost"}
    assert int(frame.credits_charged.sum()) == summary.credits_charged == summary.credits_at_risk == 600
    assert summary.pages_left == 6 and summary.rows["failed"] == 6, "the other pack's are left"


def test_a_collected_pack_whose_files_cannot_be_deleted_is_not_collected_twice(tmp_path: Path) -> None:
    """The collector wrote the pack's rows and could not delete its file: the record then names
    only what is left to delete, and the next attempt deletes it without reading the pack again."""
    from airflow_provider_delix.api.errors import DelixTransientError

    refs = archive(tmp_path / "scans", 12)
    (tmp_path / "scans" / "scan-009.jpg").write_bytes(jpeg(9, comment="PACKFAIL"))
    fake, out, _first = parked(tmp_path, refs)
    real_delete = fake.delete_file

    def down(uuid: str) -> bool:
        raise DelixTransientError("503", status_code=503)

    fake.delete_file = down  # type: ignore[method-assign]
    listed = [r for r in refs if not r.source.endswith("scan-009.jpg")]
    run(fake, out, listed, packing="pdf", retry_packed_failures=True)  # rows in, deletes failed
    fake.delete_file = real_delete  # type: ignore[method-assign]
    reads = fake.calls["iter_extract_pages"]
    summary = run(fake, out, refs, packing="pdf", retry_packed_failures=True)
    assert fake.calls["iter_extract_pages"] == reads, "not read again"
    got = rows(out)
    assert len(got) == 12 and got["scan-009.jpg"][0] == "processed"
    assert sum(v[2] for v in got.values()) == 12 * PRICE_PER_PDF_PAGE + PRICE_PER_PAGE
    assert summary.credits_charged == PRICE_PER_PAGE and fake.stored == {}
