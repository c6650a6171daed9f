"""Rows that say something about the run, not about the page's content, are checked again.

A ``not_found`` or ``unreadable`` row says where a file was looked for, ``over_budget`` what
the task's budget was: the next run looks again, writes nothing while the finding stands, and
the page's new row replaces the old one once it changes. ``pdf_not_supported`` and
``not_a_pdf`` say which operator should read the file: done for the operator that wrote them,
replaced by the rows of the one they name. One row per page throughout.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from core_pdfs import document, image_pdf
from fakes import FakeDelix

from airflow_provider_delix.core.options import RunOptions
from airflow_provider_delix.core.run import run_extraction
from airflow_provider_delix.core.summary import PipelineSummary
from airflow_provider_delix.core.table import read_table
from airflow_provider_delix.emulator.scans import make_png

pytestmark = pytest.mark.timeout(60)
IMAGES = RunOptions(max_failed_ratio=None)
DOCUMENTS = RunOptions(kind="documents", max_failed_ratio=None, poll_interval=0.01)


def run(fake: FakeDelix, inputs: object, out: str, options: RunOptions) -> PipelineSummary:
    return run_extraction(inputs, out, fake, options, run_id=f"r-{uuid.uuid4().hex[:6]}")


def rows(out: str) -> dict[tuple[str, int], tuple[str, str | None]]:
    frame = read_table(out)
    assert not frame.duplicated(["source", "page_number"]).any(), "a page has two rows"
    return {
        (Path(s).name, int(p)): (st, e if isinstance(e, str) else None)
        for s, p, st, e in zip(frame.source, frame.page_number, frame.status, frame.error, strict=True)
    }


def _count_supersede_passes(monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """How often a closing store reads every part to supersede rows (costly on a big table)."""
    from airflow_provider_delix.core import store as store_module

    calls: list[object] = []
    real = store_module.drop_stale_rows

    def counting(*args: Any, **kwargs: Any) -> int:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(store_module, "drop_stale_rows", counting)
    return lambda: len(calls)


def test_a_missing_file_is_looked_for_again_and_its_row_replaced_once_found(
    out: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "p8.png").write_bytes(make_png("page eight"))
    inputs = [str(tmp_path / "p7.png"), str(tmp_path / "p8.png")]
    fake = FakeDelix()
    run(fake, inputs, out, IMAGES)
    assert rows(out) == {("p7.png", 1): ("invalid", "not_found"), ("p8.png", 1): ("processed", None)}
    watched = _count_supersede_passes(monkeypatch)
    again = run(fake, inputs, out, IMAGES)  # still missing: looked for again, the row stands
    assert rows(out)["p7.png", 1] == ("invalid", "not_found") and sum(again.rows.values()) == 0
    assert again.pages_resumed == 2 and watched() == 0, "nothing changed: no part is rewritten"
    (tmp_path / "p7.png").write_bytes(make_png("page seven"))
    found = run(fake, inputs, out, IMAGES)
    assert rows(out) == {("p7.png", 1): ("processed", None), ("p8.png", 1): ("processed", None)}
    assert found.rows["processed"] == 1 and found.pages_resumed == 1
    assert sum(fake.extracted.values()) == 2, "each page paid once"


def test_pdfs_the_image_operator_left_are_read_by_the_document_operator(out: str, tmp_path: Path) -> None:
    """The image operator's ``pdf_not_supported`` rows tell the user to use the document
    operator; doing so on the same output reads the PDF, and its rows replace them. The same
    the other way round for ``not_a_pdf``. Re-running either then sends and writes nothing."""
    folder = tmp_path / "archive"
    folder.mkdir()
    (folder / "scan.png").write_bytes(make_png("a scanned page"))
    (folder / "notes.pdf").write_bytes(document("notes", 2))
    fake = FakeDelix()
    run(fake, str(folder), out, IMAGES)
    assert rows(out) == {
        ("scan.png", 1): ("processed", None),
        ("notes.pdf", 1): ("invalid", "pdf_not_supported"),
        ("notes.pdf", 2): ("invalid", "pdf_not_supported"),
    }
    run(fake, str(folder), out, DOCUMENTS)
    assert rows(out) == {
        ("scan.png", 1): ("processed", None),
        ("notes.pdf", 1): ("processed", None),
        ("notes.pdf", 2): ("processed", None),
    }
    calls = dict(fake.calls)
    for options in (IMAGES, DOCUMENTS):
        again = run(fake, str(folder), out, options)
        assert sum(again.rows.values()) == 0 and again.pages_resumed == 3
    assert dict(fake.calls) == calls and len(read_table(out)) == 3


def test_images_the_document_operator_left_are_read_by_the_image_operator(out: str, tmp_path: Path) -> None:
    folder = tmp_path / "archive"
    folder.mkdir()
    (folder / "scan.png").write_bytes(make_png("a scanned page"))
    fake = FakeDelix()
    run(fake, str(folder), out, DOCUMENTS)
    assert rows(out) == {("scan.png", 1): ("invalid", "not_a_pdf")}
    run(fake, str(folder), out, IMAGES)
    assert rows(out) == {("scan.png", 1): ("processed", None)}
    shutil.rmtree(folder)


def test_a_page_over_the_task_budget_is_read_once_the_budget_is_raised(out: str, tmp_path: Path) -> None:
    from core_pdfs import page_text, text_pdf

    folder = tmp_path / "archive"
    folder.mkdir()
    texts = [page_text("budget", n) for n in range(1, 4)]
    (folder / "budget.pdf").write_bytes(text_pdf(texts, page_pad=[0, 0, 2_500_000]))
    fake = FakeDelix()
    run(
        fake,
        str(folder),
        out,
        RunOptions(kind="documents", max_failed_ratio=None, max_stored_bytes=2_000_000),
    )
    assert rows(out) == {
        ("budget.pdf", 1): ("processed", None),
        ("budget.pdf", 2): ("processed", None),
        ("budget.pdf", 3): ("invalid", "over_budget"),
    }
    run(fake, str(folder), out, DOCUMENTS)
    assert set(rows(out).values()) == {("processed", None)} and len(rows(out)) == 3
    assert len(fake.charged_pages) == 3 and set(fake.charged_pages.values()) == {1}, "each page paid once"


def test_a_copy_listed_by_a_later_run_gets_its_own_row_without_a_request(out: str, tmp_path: Path) -> None:
    """Within one run a copy of a page (same bytes, another name) gets its own row, reused; a
    later run must give it one too, copied from the stored row: the table's rows must not
    depend on how the archive was split into runs. Nothing is sent or paid again."""
    day1, day2 = tmp_path / "day1", tmp_path / "day2"
    day1.mkdir()
    day2.mkdir()
    letter = make_png("a letter")
    (day1 / "letter.png").write_bytes(letter)
    (day2 / "letter-copy.png").write_bytes(letter)
    (day2 / "new.png").write_bytes(make_png("a new page"))
    (day1 / "notes.pdf").write_bytes(document("notes", 2))
    (day2 / "notes-copy.pdf").write_bytes(document("notes", 2))
    fake = FakeDelix()
    images, documents = replace(IMAGES, mixed_archive=True), replace(DOCUMENTS, mixed_archive=True)
    run(fake, str(day1), out, images)
    run(fake, str(day1), out, documents)
    paid = sum(fake.extracted.values()), dict(fake.charged_pages)
    second = run(fake, str(day2), out, images)
    run(fake, str(day2), out, documents)
    frame = read_table(out).set_index("source")
    copy, original = frame.loc[str(day2 / "letter-copy.png")], frame.loc[str(day1 / "letter.png")]
    assert (copy.status, copy.text, copy.credits_charged) == ("processed", original.text, 0)
    assert copy.run_id != original.run_id and copy.file_uuid == original.file_uuid
    assert second.pages_reused == 1 and second.pages_resumed == 0 and second.rows["processed"] == 2
    pdf = read_table(out)
    pdf = pdf[pdf.source == str(day2 / "notes-copy.pdf")].sort_values("page_number")
    assert list(pdf.page_number) == [1, 2] and list(pdf.credits_charged) == [0, 0]
    assert (sum(fake.extracted.values()) - 1, dict(fake.charged_pages)) == paid, "only new.png was paid"
    assert not read_table(out).duplicated(["source", "page_number"]).any()
    again = run(fake, str(day2), out, images)  # the copy has its row now: nothing more
    assert sum(again.rows.values()) == 0 and again.pages_resumed == 2


def test_a_file_missing_for_one_run_and_back_keeps_one_row(out: str, tmp_path: Path) -> None:
    """A mount hiccup: the page had its row, the file was missing for a run, then came back
    unchanged. Its content is done under the same source, so nothing is written; the
    ``not_found`` row of the hiccup must still go."""
    scan = tmp_path / "x.png"
    scan.write_bytes(make_png("a page"))
    fake = FakeDelix()
    run(fake, [str(scan)], out, IMAGES)
    data = scan.read_bytes()
    scan.unlink()
    run(fake, [str(scan)], out, IMAGES)
    assert len(read_table(out)) == 2  # the processed row and the hiccup's not_found row
    scan.write_bytes(data)
    back = run(fake, [str(scan)], out, IMAGES)
    assert rows(out) == {("x.png", 1): ("processed", None)} and sum(back.rows.values()) == 0
    assert sum(fake.extracted.values()) == 1


def test_the_image_and_document_operators_settle_on_one_row_per_pdf_page(out: str, tmp_path: Path) -> None:
    """The image operator (danlin) over a folder with a text PDF, then the document operator
    (``engine="auto"``: probe reads it), then each again: the image operator must not write its
    ``pdf_not_supported`` rows again beside the probe rows, and nothing is paid twice."""
    folder = tmp_path / "archive"
    folder.mkdir()
    (folder / "notes.pdf").write_bytes(document("notes", 2))
    fake = FakeDelix()
    auto = replace(DOCUMENTS, engine="auto")
    run(fake, str(folder), out, IMAGES)
    run(fake, str(folder), out, auto)
    paid = dict(fake.charged_pages)
    for options in (IMAGES, auto, IMAGES):
        again = run(fake, str(folder), out, options)
        assert sum(again.rows.values()) == 0 and again.pages_resumed == 2, options.kind
        assert rows(out) == {("notes.pdf", 1): ("processed", None), ("notes.pdf", 2): ("processed", None)}
    assert set(read_table(out).engine) == {"probe"} and dict(fake.charged_pages) == paid


@pytest.mark.parametrize(
    ("image_engine", "document_engine"), [("danlin", "auto"), ("tiho", "auto"), ("danlin", "tiho")]
)
def test_operators_with_different_engines_settle_on_one_row_per_page(
    out: str, tmp_path: Path, image_engine: str, document_engine: str
) -> None:
    """The operators' defaults differ (images danlin, documents auto): a routing row written
    with one engine is replaced by the other operator's row whatever engine that ran, and
    neither operator writes its routing row again once the other answered the page."""
    folder = tmp_path / "archive"
    folder.mkdir()
    (folder / "scan.png").write_bytes(make_png("a scanned page"))
    (folder / "notes.pdf").write_bytes(document("notes", 2))
    images = replace(IMAGES, engine=image_engine)
    documents = replace(DOCUMENTS, engine=document_engine)
    fake = FakeDelix()
    for options in (documents, images, documents, images):
        run(fake, str(folder), out, options)
        frame = read_table(out)
        assert not frame.duplicated(["source", "page_number"]).any(), (options.kind, frame.to_dict("records"))
    assert set(rows(out).values()) == {("processed", None)} and len(rows(out)) == 3


def test_a_copy_of_a_page_over_the_budget_gets_its_own_row(out: str, tmp_path: Path) -> None:
    from core_pdfs import page_text, text_pdf

    data = text_pdf([page_text("big", 1)], page_pad=[2_500_000])
    (tmp_path / "big.pdf").write_bytes(data)
    small = RunOptions(kind="documents", max_failed_ratio=None, max_stored_bytes=2_000_000)
    fake = FakeDelix()
    run(fake, [str(tmp_path / "big.pdf")], out, small)
    (tmp_path / "big-copy.pdf").write_bytes(data)
    run(fake, [str(tmp_path / "big.pdf"), str(tmp_path / "big-copy.pdf")], out, small)
    assert rows(out) == {
        ("big.pdf", 1): ("invalid", "over_budget"),
        ("big-copy.pdf", 1): ("invalid", "over_budget"),
    }


def test_a_row_left_by_a_close_that_could_not_supersede_is_replaced_by_the_next_run(
    out: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core_pdfs import page_text, text_pdf

    from airflow_provider_delix.core import store as store_module

    (tmp_path / "big.pdf").write_bytes(text_pdf([page_text("big", 1)], page_pad=[2_500_000]))
    fake = FakeDelix()
    run(fake, [str(tmp_path / "big.pdf")], out, replace(DOCUMENTS, max_stored_bytes=2_000_000))
    real = store_module.drop_stale_rows

    def failing(*args: object, **kwargs: object) -> int:
        raise OSError("the object store refused the rewrite")

    monkeypatch.setattr(store_module, "drop_stale_rows", failing)
    run(fake, [str(tmp_path / "big.pdf")], out, DOCUMENTS)  # the budget raised: read, not superseded
    assert len(read_table(out)) == 2
    monkeypatch.setattr(store_module, "drop_stale_rows", real)
    run(fake, [str(tmp_path / "big.pdf")], out, DOCUMENTS)
    assert rows(out) == {("big.pdf", 1): ("processed", None)}


def test_routing_rows_are_about_their_own_source(out: str, tmp_path: Path) -> None:
    """A copy read by the document operator does not remove the routing row of a source it
    never listed; a copy of an answered PDF listed to the image operator gets its own routing
    row, which the document operator's copied row then replaces."""
    scan = image_pdf(1)
    (tmp_path / "a.pdf").write_bytes(scan)
    (tmp_path / "b.pdf").write_bytes(scan)
    fake = FakeDelix()
    tiho = replace(DOCUMENTS, engine="tiho")
    run(fake, [str(tmp_path / "a.pdf")], out, IMAGES)
    run(fake, [str(tmp_path / "b.pdf")], out, tiho)
    assert rows(out) == {("a.pdf", 1): ("invalid", "pdf_not_supported"), ("b.pdf", 1): ("processed", None)}
    (tmp_path / "c.pdf").write_bytes(scan)
    run(fake, [str(tmp_path / "c.pdf")], out, IMAGES)  # danlin: the page was read with tiho only
    assert rows(out)["c.pdf", 1] == ("invalid", "pdf_not_supported")
    run(fake, [str(tmp_path / p) for p in ("a.pdf", "b.pdf", "c.pdf")], out, tiho)
    assert set(rows(out).values()) == {("processed", None)} and len(rows(out)) == 3
    assert len(fake.charged_pages) == 1, "the content was paid once"


def test_an_operator_does_not_repeat_another_engines_finding(out: str, tmp_path: Path) -> None:
    """Images with danlin then with tiho over a PDF, or both operators over a missing file:
    one row says it; and a page the other operator answered is not counted as unprocessed."""
    (tmp_path / "scan.pdf").write_bytes(image_pdf(1))
    gone = str(tmp_path / "gone.png")
    fake = FakeDelix()
    run(fake, [str(tmp_path / "scan.pdf"), gone], out, IMAGES)
    run(fake, [str(tmp_path / "scan.pdf"), gone], out, replace(IMAGES, engine="tiho"))
    run(fake, [gone], out, replace(DOCUMENTS, engine="auto"))
    assert rows(out) == {
        ("scan.pdf", 1): ("invalid", "pdf_not_supported"),
        ("gone.png", 1): ("invalid", "not_found"),
    }
    run(fake, [str(tmp_path / "scan.pdf")], out, replace(DOCUMENTS, engine="tiho"))
    again = run(fake, [str(tmp_path / "scan.pdf")], out, replace(IMAGES, engine="tiho", max_failed_ratio=0.0))
    assert again.pages_resumed == 1 and again.pages_resumed_not_processed == 0


def test_a_routing_row_is_not_copied_onto_a_source_the_other_operator_answered(
    out: str, tmp_path: Path
) -> None:
    picture = make_png("a scanned page")
    (tmp_path / "b").mkdir()
    (tmp_path / "a").mkdir()
    (tmp_path / "b" / "cscan.png").write_bytes(picture)
    (tmp_path / "a" / "scan.png").write_bytes(picture)
    tiho = replace(DOCUMENTS, engine="tiho")
    fake = FakeDelix()
    run(fake, str(tmp_path / "b"), out, tiho)  # cscan.png: not_a_pdf (tiho)
    run(fake, str(tmp_path / "a"), out, replace(IMAGES, mixed_archive=True))  # scan.png: processed
    for _ in range(2):
        again = run(fake, str(tmp_path / "a"), out, tiho)
        assert sum(again.rows.values()) == 0, "a not_a_pdf row beside scan.png's answer"
    assert rows(out)["scan.png", 1] == ("processed", None)


def test_the_other_operators_not_found_row_goes_once_the_file_is_back(out: str, tmp_path: Path) -> None:
    gone = tmp_path / "gone.png"
    fake = FakeDelix()
    run(fake, [str(gone)], out, replace(DOCUMENTS, engine="tiho"))
    quiet = run(fake, [str(gone)], out, IMAGES)  # the same finding: nothing written
    assert sum(quiet.rows.values()) == 0 and rows(out) == {("gone.png", 1): ("invalid", "not_found")}
    gone.write_bytes(make_png("back again"))
    run(fake, [str(gone)], out, IMAGES)
    assert rows(out) == {("gone.png", 1): ("processed", None)}


def test_a_missing_pdfs_row_goes_once_found_whatever_pages_the_run_selects(out: str, tmp_path: Path) -> None:
    """A missing file's ``not_found`` row sits on page 1 (its pages are unknown); a run that
    selects other pages and finds the file must not leave it beside their rows."""
    selected = replace(DOCUMENTS, pages="2-3")
    pdf = tmp_path / "late.pdf"
    fake = FakeDelix()
    run(fake, [str(pdf)], out, selected)
    assert rows(out) == {("late.pdf", 1): ("invalid", "not_found")}
    pdf.write_bytes(document("late", 4))
    found = run(fake, [str(pdf)], out, selected)
    assert rows(out) == {("late.pdf", 2): ("processed", None), ("late.pdf", 3): ("processed", None)}
    assert found.rows["processed"] == 2
    quiet = run(fake, [str(pdf)], out, selected)
    assert sum(quiet.rows.values()) == 0 and len(rows(out)) == 2, "nothing written or sent again"


def test_a_missing_file_found_again_unchanged_under_a_page_selection_drops_its_row(
    out: str, tmp_path: Path
) -> None:
    """The same after a hiccup: pages 2-3 already had their rows, the file was missing for a
    run (``not_found`` on page 1), then came back unchanged: nothing is sent, the row goes."""
    selected = replace(DOCUMENTS, pages="2-3")
    pdf = tmp_path / "hiccup.pdf"
    pdf.write_bytes(document("hiccup", 4))
    fake = FakeDelix()
    run(fake, [str(pdf)], out, selected)
    data = pdf.read_bytes()
    pdf.unlink()
    run(fake, [str(pdf)], out, selected)
    assert rows(out)["hiccup.pdf", 1] == ("invalid", "not_found")
    pdf.write_bytes(data)
    back = run(fake, [str(pdf)], out, selected)
    assert rows(out) == {("hiccup.pdf", 2): ("processed", None), ("hiccup.pdf", 3): ("processed", None)}
    assert sum(back.rows.values()) == 0
