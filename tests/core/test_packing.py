"""Image packing (``packing="pdf"``): images in queued PDFs, rows as if they were sent alone.

The fake account reads a PDF page that embeds one JPEG as that JPEG (``fakes.text_of``), so a
packed run must store exactly the texts an unpacked run stores, row for row.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import fsspec
import pypdf
import pytest
from fakes import PRICE_PER_PAGE, PRICE_PER_PDF_PAGE, FakeDelix, text_of
from PIL import Image

from airflow_provider_delix.core.inputs import InputRef
from airflow_provider_delix.core.jobs import ImageJob
from airflow_provider_delix.core.options import PipelineTuning, RunOptions
from airflow_provider_delix.core.packing import MIN_PACK_PAGES, PAGE_DPI, Packer, PackLimits, pack_pdf
from airflow_provider_delix.core.pipeline import ExtractionPipeline
from airflow_provider_delix.core.planning import ChunkFile, PageTarget, SourceLike
from airflow_provider_delix.core.resume import ResumeIndex
from airflow_provider_delix.core.store import OutputStore
from airflow_provider_delix.core.summary import PipelineSummary
from airflow_provider_delix.core.table import read_table

pytestmark = pytest.mark.timeout(120)
FAST: dict[str, Any] = {"heartbeat_seconds": 0.05, "stale_after_seconds": 0.3}


def jpeg(i: int, *, fail: bool = False, width: int = 64, comment: str | None = None) -> bytes:
    buf = io.BytesIO()
    comment = comment or ("delix:fail=1" if fail else f"delix:text=scan {i}")
    Image.new("L", (width, 48), color=(i * 37) % 256).save(buf, "JPEG", comment=comment.encode())
    return buf.getvalue()


def member(i: int, data: bytes | None = None) -> ChunkFile:
    data = data if data is not None else jpeg(i)
    target = PageTarget(f"s{i}.jpg", f"sha{i}", 1, None)
    return ChunkFile(hashlib.sha256(data).hexdigest(), f"s{i}.jpg", data, targets=[target])


# ---------------------------------------------------------------------- sizing and packing


def test_pack_size_spreads_the_archive_over_the_budget() -> None:
    limits = PackLimits(max_stored_files=30, max_stored_bytes=100_000_000)
    assert limits.pages(3000) == 100  # 30 packs of 100: the whole budget at once
    assert limits.pages(100_000) == 150  # never past the API's 150 pages
    assert limits.pages(12) == MIN_PACK_PAGES  # smaller would be answered synchronously
    assert limits.pages(None) == 150  # still counting: the largest pack
    assert limits.bytes == 3_333_333  # every file of the budget can hold a pack at once
    assert PackLimits(10, 100_000_000).bytes == 8_000_000  # never past the API's 8 MB
    assert PackLimits(7, 100_000_000).pages(700) == 100


def test_pages_are_the_original_images_at_300_dpi() -> None:
    images = [jpeg(1, width=600), jpeg(2, width=300)]
    reader = pypdf.PdfReader(io.BytesIO(pack_pdf(images)))
    assert len(reader.pages) == 2
    for page, data in zip(reader.pages, images, strict=True):
        (xobject,) = [x.get_object() for x in page["/Resources"]["/XObject"].values()]
        assert xobject.get_data() == data  # embedded as is: nothing re-encoded
        width_px = Image.open(io.BytesIO(data)).width
        assert float(page.mediabox.width) == pytest.approx(width_px * 72 / PAGE_DPI)


def test_packer_emits_full_packs_and_the_rest_at_the_end() -> None:
    packer = Packer(PackLimits(30, 100_000_000), "danlin", lambda: 30 * 7)  # 7 per pack
    packs, plain = packer.add([member(i) for i in range(16)])
    assert [len(p.members) for p in packs] == [7, 7] and plain == []
    assert [n for n, _ in packs[0].page_map or ()] == list(range(1, 8))
    assert packs[0].queued and packs[0].engine == "danlin"
    packs, plain = packer.flush()
    assert [len(p.members) for p in packs] == [2] and not packs[0].queued  # 2 pages: answered at once
    assert packer.flush() == ([], [])


def test_a_lone_leftover_goes_as_an_image_and_the_byte_cap_holds() -> None:
    packer = Packer(PackLimits(30, 100_000_000), "danlin")
    one = member(1)
    assert packer.add([one]) == ([], [])
    assert packer.flush() == ([], [one])  # a pack of one is an image with extra steps
    big = [member(i, jpeg(i, width=1500) + b"\0" * 400_000) for i in range(20)]
    packs, plain = Packer(PackLimits(30, 100_000_000), "danlin").add(big)
    assert packs and all(p.size <= 3_333_333 for p in packs) and not plain


# ---------------------------------------------------------------------- through the pipeline


def archive(
    root: Path, n: int, *, failing: int | None = None, duplicate_of: dict[int, int] | None = None
) -> list[InputRef]:
    root.mkdir(parents=True, exist_ok=True)
    refs = []
    for i in range(n):
        data = jpeg(duplicate_of[i]) if duplicate_of and i in duplicate_of else jpeg(i, fail=i == failing)
        path = root / f"scan-{i:03d}.jpg"
        path.write_bytes(data)
        refs.append(InputRef(source=str(path), fs=fsspec.filesystem("file"), path=str(path)))
    return refs


def run(fake: FakeDelix, out: str, refs: list[InputRef], **kwargs: Any) -> PipelineSummary:
    options = RunOptions(kind="images", **kwargs)
    job = ImageJob(options)

    def sources(resume: ResumeIndex) -> Iterable[SourceLike]:
        return (job.prepare(ref, resume) for ref in refs)

    store = OutputStore(out, **FAST)
    pipeline = ExtractionPipeline(
        fake,
        store,
        options,
        job=job,
        tuning=PipelineTuning(),
        run_id="r",
        sleep=lambda _s: None,
        archive_size=lambda: len(refs),
    )
    return pipeline.run(sources)


def parked(tmp_path: Path, refs: list[InputRef]) -> tuple[FakeDelix, str, PipelineSummary]:
    """A deferrable packed run that parked its packs (Delix kept them queued); Delix then
    finishes them, for the next attempt to collect."""
    fake = FakeDelix(queue_polls=10**6)
    out = str(tmp_path / "out")
    summary = run(fake, out, refs, packing="pdf", deferrable=True)
    fake.queue_polls = 0
    return fake, out, summary


def unreadable_contents(monkeypatch: pytest.MonkeyPatch, fake: FakeDelix, extracts: set[str]) -> None:
    """The contents of these extracts cannot be read (not JSON); other extracts read as usual."""
    from airflow_provider_delix.api.errors import DelixResponseError

    readable = fake.iter_extract_pages

    def unreadable(extract_uuid: str, file_uuid: str) -> Any:
        if extract_uuid in extracts:
            raise DelixResponseError("a contents page that is not JSON")
        return readable(extract_uuid, file_uuid)

    monkeypatch.setattr(fake, "iter_extract_pages", unreadable)


def rows(out: str) -> dict[str, tuple[str, str | None, int, int]]:
    frame = read_table(out)
    assert not frame.duplicated(["source", "page_number"]).any(), "an image got two rows"
    return {
        Path(s).name: (st, t, int(c), int(r))
        for s, st, t, c, r in zip(
            frame.source, frame.status, frame.text, frame.credits_charged, frame.credits_refunded, strict=True
        )
    }


def test_a_packed_run_stores_what_an_unpacked_run_stores(tmp_path: Path) -> None:
    refs = archive(tmp_path / "scans", 40, failing=7, duplicate_of={30: 3, 31: 3})
    plain_fake, packed_fake = FakeDelix(), FakeDelix()
    run(plain_fake, str(tmp_path / "plain"), refs)
    summary = run(packed_fake, str(tmp_path / "packed"), refs, packing="pdf")
    plain, packed = rows(str(tmp_path / "plain")), rows(str(tmp_path / "packed"))
    assert len(packed) == 40
    assert {k: v[:2] for k, v in packed.items()} == {k: v[:2] for k, v in plain.items()}
    assert packed["scan-005.jpg"][1] == text_of(jpeg(5))
    assert packed["scan-007.jpg"][0] == "failed"
    # 38 distinct contents, 6 pages per pack (40 images over 30 files, at least 6): 7 packs.
    assert packed_fake.calls["extract_documents"] == 7 and packed_fake.calls["extract_images"] == 0
    assert packed_fake.calls["upload_files"] == 7
    assert packed_fake.stored == {}  # every pack deleted
    assert summary.credits_charged == 38 * PRICE_PER_PDF_PAGE == sum(v[2] for v in packed.values())
    assert summary.credits_refunded == PRICE_PER_PDF_PAGE == sum(v[3] for v in packed.values())
    assert sum(v[2] for v in plain.values()) == 38 * PRICE_PER_PAGE


def test_a_packed_rerun_sends_nothing(tmp_path: Path) -> None:
    refs = archive(tmp_path / "scans", 12)
    fake = FakeDelix()
    out = str(tmp_path / "out")
    run(fake, out, refs, packing="pdf")
    again = run(fake, out, refs, packing="pdf")
    assert again.pages_resumed == 12 and sum(again.rows.values()) == 0
    assert fake.calls["upload_files"] == 2  # the first run's two packs of 6
    assert len(rows(out)) == 12


def test_pages_that_fail_in_a_pack_go_again_as_images_only_when_asked(tmp_path: Path) -> None:
    refs = archive(tmp_path / "scans", 12, failing=4)
    (tmp_path / "scans" / "scan-009.jpg").write_bytes(jpeg(9, comment="PACKFAIL"))
    kept, retried = FakeDelix(), FakeDelix()
    run(kept, str(tmp_path / "kept"), refs, packing="pdf")
    assert kept.calls["extract_images"] == 0
    assert rows(str(tmp_path / "kept"))["scan-009.jpg"][0] == "failed"

    summary = run(retried, str(tmp_path / "retried"), refs, packing="pdf", retry_packed_failures=True)
    got = rows(str(tmp_path / "retried"))
    # Both failures go again as images: in one request, or two when their packs finish apart.
    assert len(got) == 12 and 1 <= retried.calls["extract_images"] <= 2
    assert got["scan-009.jpg"] == ("processed", text_of(jpeg(9, comment="PACKFAIL")), 100 + 200, 100)
    assert got["scan-004.jpg"][0] == "failed" and got["scan-004.jpg"][2:] == (300, 300)
    assert summary.credits_charged == 12 * PRICE_PER_PDF_PAGE + 2 * PRICE_PER_PAGE
    assert summary.credits_refunded == 2 * PRICE_PER_PDF_PAGE + PRICE_PER_PAGE
    assert retried.stored == {}
    with pytest.raises(ValueError, match="packing='pdf'"):
        RunOptions(retry_packed_failures=True)


def test_a_page_retried_from_a_pack_keeps_the_packs_lost_send(tmp_path: Path) -> None:
    """The pack's first send was charged and its answer lost (the re-send found the file gone):
    its images get answer_lost rows holding that send, not a new request in the run (it could
    be re-sent too: a third send). The next run's pack carries it on every page, the one
    retried as an image too."""
    from airflow_provider_delix.api.errors import DelixNotFoundError

    class LostThenGone(FakeDelix):
        lost = False

        def extract_documents(self, files: Any, engine: Any, language: Any) -> Any:
            if not self.lost:
                self.lost = True
                with self.lock:
                    for uuid, _ in files:
                        self.extracted[f"lost-{uuid}"] += 6  # the lost send: 6 pages, charged
                        del self.stored[str(uuid)]  # ... then the file vanished
                error = DelixNotFoundError("404", status_code=404)
                error.lost_attempts = 1
                raise error
            return super().extract_documents(files, engine, language)

    refs = archive(tmp_path / "scans", 6)
    (tmp_path / "scans" / "scan-004.jpg").write_bytes(jpeg(4, comment="PACKFAIL"))
    fake = LostThenGone()
    out = str(tmp_path / "out")
    first = run(fake, out, refs, packing="pdf", retry_packed_failures=True)
    assert {v[:1] + v[2:] for v in rows(out).values()} == {("failed", PRICE_PER_PDF_PAGE, 0)}
    # the refused request is the override's own (not counted): no other extraction, no re-upload
    assert set(read_table(out).error) == {"answer_lost"}
    assert fake.calls == {"upload_files": 1, "delete_file": 1}
    assert first.credits_charged == first.credits_at_risk == 6 * PRICE_PER_PDF_PAGE

    summary = run(fake, out, refs, packing="pdf", retry_packed_failures=True)
    got = rows(out)
    assert got["scan-004.jpg"] == ("processed", text_of(jpeg(4, comment="PACKFAIL")), 100 + 100 + 200, 100)
    assert {v[2] for k, v in got.items() if k != "scan-004.jpg"} == {200}
    assert sum(v[2] for v in got.values()) == 12 * PRICE_PER_PDF_PAGE + PRICE_PER_PAGE
    assert summary.credits_charged == 6 * PRICE_PER_PDF_PAGE + PRICE_PER_PAGE and summary.credits_at_risk == 0


def test_a_page_whose_image_retry_is_never_answered_keeps_the_packs_credits(tmp_path: Path) -> None:
    """The credits run out with the two packs: the page that failed in one is not answered as
    an image. Its failed_in_pack row holds the pack's share, and the next run sends it alone."""
    refs = archive(tmp_path / "scans", 12)
    (tmp_path / "scans" / "scan-009.jpg").write_bytes(jpeg(9, comment="PACKFAIL"))
    fake = FakeDelix(credits=12 * PRICE_PER_PDF_PAGE)  # the two packs; the failed page is refunded
    out = str(tmp_path / "out")
    with pytest.raises(Exception, match="NO_SUFFICIENT_CREDITS"):
        run(fake, out, refs, packing="pdf", retry_packed_failures=True)
    got = rows(out)
    assert len(got) == 12 and got["scan-009.jpg"][0] == "failed" and got["scan-009.jpg"][2:] == (100, 100)
    assert sum(v[2] for v in got.values()) == 12 * PRICE_PER_PDF_PAGE
    errors = read_table(out).set_index("source")["error"]
    assert errors[str(tmp_path / "scans" / "scan-009.jpg")] == "failed_in_pack"

    fake.credits = 10 * PRICE_PER_PAGE
    later = run(fake, out, refs, packing="pdf", retry_packed_failures=True)
    assert later.pages_resumed == 11 and fake.calls["extract_documents"] == 2, "alone, not in a pack"
    assert rows(out)["scan-009.jpg"] == ("processed", text_of(jpeg(9, comment="PACKFAIL")), 100 + 200, 100)
    assert sum(v[2] - v[3] for v in rows(out).values()) == 11 * PRICE_PER_PDF_PAGE + PRICE_PER_PAGE


def test_a_collected_pack_that_cannot_be_read_is_sent_again_and_keeps_its_first_cost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The earlier attempt's packs were paid; their answers cannot be read. The collecting run
    sends the images again, and each row carries both packs' shares: the table is the bill."""
    refs = archive(tmp_path / "scans", 12)
    fake, out, first_run = parked(tmp_path, refs)
    assert len(first_run.waiting_extracts) == 2
    unreadable_contents(monkeypatch, fake, set(first_run.waiting_extracts))
    summary = run(fake, out, refs, packing="pdf")
    got = rows(out)
    assert len(got) == 12 and {v[0] for v in got.values()} == {"processed"}
    assert {v[2] for v in got.values()} == {2 * PRICE_PER_PDF_PAGE}
    assert summary.credits_charged == 24 * PRICE_PER_PDF_PAGE and sum(summary.rows.values()) == 12
    assert fake.calls["extract_documents"] == 4 and fake.stored == {}


def test_a_parked_pack_delix_no_longer_has_is_sent_again_and_its_first_charge_stays(tmp_path: Path) -> None:
    refs = archive(tmp_path / "scans", 12)
    fake, out, first_run = parked(tmp_path, refs)
    for uuid in first_run.waiting_extracts:
        fake.forget_extract(uuid)  # Delix lost them (a restart): 404 on the next poll
    summary = run(fake, out, refs, packing="pdf")
    got = rows(out)
    assert len(got) == 12 and {v[0] for v in got.values()} == {"processed"}
    assert {v[2] for v in got.values()} == {2 * PRICE_PER_PDF_PAGE}, "the lost packs' assumed charge, carried"
    assert summary.extracts_lost == 2 and summary.credits_at_risk == 12 * PRICE_PER_PDF_PAGE
    assert summary.credits_charged == 24 * PRICE_PER_PDF_PAGE and sum(summary.rows.values()) == 12
    assert fake.stored == {}


@pytest.mark.parametrize("where", ["extraction", "upload"])
def test_a_pack_delix_refuses_is_sent_again_as_images(tmp_path: Path, where: str) -> None:
    """A refusal of the pack is about our PDF, not about the images in it: they go again alone
    (a refusal costs nothing), instead of each getting the pack's error as its final row."""
    from airflow_provider_delix.api.errors import DelixApiError
    from airflow_provider_delix.api.models import ErrorCode, RejectedFile

    class RefusesPacks(FakeDelix):
        def extract_documents(self, files: Any, engine: Any, language: Any) -> Any:
            if where == "extraction":
                raise DelixApiError("bad input", error=ErrorCode.BAD_INPUT, status_code=422)
            return super().extract_documents(files, engine, language)

        def upload_files(self, files: Any) -> Any:
            if where == "upload" and any(bytes(data).startswith(b"%PDF") for _name, data in files):
                return [RejectedFile(reason=ErrorCode.MALFORMED_FILE) for _ in files]
            return super().upload_files(files)

    refs = archive(tmp_path / "scans", 12, failing=4)
    fake = RefusesPacks()
    out = str(tmp_path / "out")
    summary = run(fake, out, refs, packing="pdf")  # without retry_packed_failures
    got = rows(out)
    assert len(got) == 12 and got["scan-004.jpg"][0] == "failed"
    assert {v[0] for k, v in got.items() if k != "scan-004.jpg"} == {"processed"}
    assert fake.calls["extract_images"] >= 3 and summary.credits_charged == 12 * PRICE_PER_PAGE
    assert fake.stored == {}


@pytest.mark.parametrize("archive_has_them", [True, False])
def test_a_collected_pack_sends_its_failed_pages_again_as_images_when_asked(
    tmp_path: Path, archive_has_them: bool
) -> None:
    """The packs are paid for by an earlier attempt (parked here by a deferrable run; a killed
    attempt, or one that held its packs, leaves the same records) and collected by the next one.
    With ``retry_packed_failures`` the collector gives the pages that failed in them a
    ``failed_in_pack`` row and sends them again as images, as if it had sent the packs itself;
    a page its archive does not bring keeps that row until a run that brings it."""
    refs = archive(tmp_path / "scans", 12, failing=4)
    (tmp_path / "scans" / "scan-009.jpg").write_bytes(jpeg(9, comment="PACKFAIL"))
    fake, out, first_run = parked(tmp_path, refs)
    assert len(first_run.waiting_extracts) == 2 and sum(first_run.rows.values()) == 0
    listed = refs if archive_has_them else [r for r in refs if not r.source.endswith("scan-009.jpg")]
    summary = run(fake, out, listed, packing="pdf", retry_packed_failures=True)
    assert summary.extracts_adopted == 2 and fake.calls["extract_documents"] == 2, "no pack sent again"
    got = rows(out)
    assert len(got) == 12
    assert got["scan-004.jpg"][0] == "failed" and got["scan-004.jpg"][2:] == (300, 300)
    assert summary.credits_charged - summary.credits_refunded == sum(v[2] - v[3] for v in got.values())
    nine = ("processed", text_of(jpeg(9, comment="PACKFAIL")), 100 + 200, 100)
    if archive_has_them:
        assert 1 <= fake.calls["extract_images"] <= 2
        assert got["scan-009.jpg"] == nine
        assert summary.credits_charged == 12 * PRICE_PER_PDF_PAGE + 2 * PRICE_PER_PAGE
        assert sum(summary.rows.values()) == 12, "one row per page in the run's figures"
    else:
        assert fake.calls["extract_images"] == 1
        assert got["scan-009.jpg"][0] == "failed" and got["scan-009.jpg"][2:] == (100, 100)
        errors = read_table(out).set_index("source")["error"]
        assert errors[str(tmp_path / "scans" / "scan-009.jpg")] == "failed_in_pack"
        assert summary.credits_charged == 12 * PRICE_PER_PDF_PAGE + PRICE_PER_PAGE
        later = run(fake, out, refs, packing="pdf")  # the next run sends it alone, packing or not
        assert later.pages_resumed == 11 and fake.calls["extract_documents"] == 2
        assert rows(out)["scan-009.jpg"] == nine
    assert sum(v[2] for v in rows(out).values()) == PRICE_PER_PDF_PAGE * 12 + PRICE_PER_PAGE * 2
    assert fake.stored == {}


def test_a_deferrable_packed_run_parks_its_queued_packs_and_the_next_run_unpacks_them(tmp_path: Path) -> None:
    refs = archive(tmp_path / "scans", 12)
    fake = FakeDelix(queue_polls=10**6)  # Delix keeps the packs queued until the "trigger" is done
    out = str(tmp_path / "out")
    parked = run(fake, out, refs, packing="pdf", deferrable=True)
    assert parked.stop_reason == "waiting for queued extracts" and len(parked.waiting_extracts) == 2
    assert parked.pages_waiting == 12 and sum(parked.rows.values()) == 0
    assert fake.calls["get_extract"] == 0, "a deferrable run parks at once instead of polling"
    fake.queue_polls = 0  # the triggerer saw both packs finish
    resumed = run(fake, out, refs, packing="pdf", deferrable=True)
    assert resumed.extracts_adopted == 2 and resumed.waiting_extracts == []
    assert fake.calls["upload_files"] == 2 and fake.calls["extract_documents"] == 2  # nothing paid again
    got = rows(out)
    assert len(got) == 12 and {v[0] for v in got.values()} == {"processed"}
    assert got["scan-005.jpg"][1] == text_of(jpeg(5)), "each image gets its own page's text back"
    assert sum(v[2] for v in got.values()) == 12 * PRICE_PER_PDF_PAGE
    assert fake.stored == {}


class LateCopy(list[InputRef]):
    """The archive's listing: its last input (a copy of the first image) is listed only once a
    pack's request was journalled and answered as queued."""

    def __init__(self, refs: list[InputRef], fake: FakeDelix) -> None:
        super().__init__(refs)
        self.fake = fake

    def __iter__(self) -> Iterator[InputRef]:
        *first, copy = list.__iter__(self)
        yield from first
        deadline = time.monotonic() + 30
        while not any(e.queued for e in self.fake.extracts.values()) and time.monotonic() < deadline:
            time.sleep(0.01)
        yield copy


def test_a_copy_that_joins_a_parked_pack_is_collected_with_it_not_paid_again(tmp_path: Path) -> None:
    """An image whose bytes equal a member of a parked pack, listed after the pack's request was
    journalled, attaches to that member; the pack's record is rewritten at the end of the run,
    so the attempt that collects it writes the copy's row too instead of sending it again."""
    refs = archive(tmp_path / "scans", 13, duplicate_of={12: 0})
    fake = FakeDelix(queue_polls=10**6)
    out = str(tmp_path / "out")
    parked = run(fake, out, LateCopy(refs, fake), packing="pdf", deferrable=True)
    assert len(parked.waiting_extracts) == 2 and sum(parked.rows.values()) == 0
    assert parked.pages_total == parked.pages_waiting == 13
    fake.queue_polls = 0
    resumed = run(fake, out, refs, packing="pdf", deferrable=True)
    assert resumed.extracts_adopted == 2
    assert fake.calls["upload_files"] == 2 and fake.calls["extract_documents"] == 2
    assert fake.calls["extract_images"] == 0, "the copy's content was paid again"
    got = rows(out)
    assert len(got) == 13 and got["scan-012.jpg"][1] == got["scan-000.jpg"][1] == text_of(jpeg(0))
    assert fake.stored == {}


def test_only_packed_images_can_defer_and_not_with_pack_retries() -> None:
    with pytest.raises(ValueError, match="only packed images"):
        RunOptions(kind="images", deferrable=True)
    with pytest.raises(ValueError, match="choose one of them"):
        RunOptions(kind="images", packing="pdf", deferrable=True, retry_packed_failures=True)
    assert RunOptions(kind="images", packing="pdf", deferrable=True).deferrable
