"""The sample archive's PDFs: what they are, and that real OCR reads the scanned ones.

``dags/sample_archive/`` mixes images and PDFs in its language folders (the example DAG plans
one OCR task per folder). The PDFs, written by ``scripts/make_sample_scans.py --archive``:

* ``fa/fa_notice_3_pages.pdf`` and ``en/en_minutes_12_pages.pdf``: scans, grey pages rendered
  like the image samples and embedded losslessly, no text layer;
* ``fa/fa_letters_register_160_pages.pdf``: a 160-page scan (bilevel CCITT G4 pages), over
  the API's 150-page limit on purpose, so the client has to split it;
* ``en/en_newsletter_text_2_pages.pdf``: born digital, a text layer and no images, for the
  ``probe`` engine.

Their expected texts are in ``_ground_truth.json``, one string per page in a list (like the
multi-page TIFF's). The structural tests need only pypdf; the OCR tests (marker
``tesseract``) upload to the in-process emulator running Tesseract and hold the pages to the
image CER test's limits (tests/test_sample_scans_cer.py), measured the same way.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pypdf
import pytest
import requests
from test_sample_scans_cer import CER_LIMIT, PAGE_CER_LIMIT, char_errors, load_sample_script

from airflow_provider_delix.emulator.testing import InProcessEmulator

ROOT = Path(__file__).resolve().parent.parent
ARCHIVE = ROOT / "dags" / "sample_archive"
TRUTH: dict[str, Any] = json.loads((ARCHIVE / "_ground_truth.json").read_text(encoding="utf-8"))

NOTICE = "fa/fa_notice_3_pages.pdf"
MINUTES = "en/en_minutes_12_pages.pdf"
REGISTER = "fa/fa_letters_register_160_pages.pdf"
NEWSLETTER = "en/en_newsletter_text_2_pages.pdf"
SCANNED = {NOTICE: 3, MINUTES: 12, REGISTER: 160}
TEXT_LAYER = {NEWSLETTER: 2}
PAGES = {**SCANNED, **TEXT_LAYER}

MAX_PDF_BYTES = 8_000_000  # the API's 8 MB, read as the stricter decimal megabytes
MAX_PDF_PAGES = 150
MAX_TOTAL_BYTES = 3 * 1024 * 1024  # what the PDFs may add to the repository together


def _reader(name: str) -> pypdf.PdfReader:
    return pypdf.PdfReader(ARCHIVE / name, strict=True)


# --- the files themselves (no OCR) -----------------------------------------------------------


def test_pdfs_sit_in_the_language_folders_and_match_the_script() -> None:
    on_disk = {p.relative_to(ARCHIVE).as_posix() for p in ARCHIVE.rglob("*.pdf")}
    assert on_disk == set(PAGES)
    for name in on_disk:
        folder, file_name = name.split("/")
        assert folder in {"fa", "en"} and file_name.startswith(f"{folder}_")
    pdf_truth = {name: pages for name, pages in TRUTH.items() if name.endswith(".pdf")}
    assert pdf_truth == load_sample_script().pdf_ground_truth()
    for name, count in PAGES.items():
        assert isinstance(TRUTH[name], list) and len(TRUTH[name]) == count
        assert all(isinstance(text, str) and text.strip() for text in TRUTH[name])
    assert len(set(TRUTH[REGISTER])) == 160  # every page of the register is a different card
    assert sum((ARCHIVE / name).stat().st_size for name in PAGES) < MAX_TOTAL_BYTES


@pytest.mark.parametrize("name", sorted(PAGES))
def test_page_count_and_size(name: str) -> None:
    size = (ARCHIVE / name).stat().st_size
    assert size < MAX_PDF_BYTES
    pages = len(_reader(name).pages)
    assert pages == PAGES[name]
    # Only the register is over the API's page limit, by design: the client must split it.
    assert (pages > MAX_PDF_PAGES) == (name == REGISTER)


@pytest.mark.parametrize("name", sorted(SCANNED))
def test_scans_are_one_lossless_image_per_page_and_no_text(name: str) -> None:
    for number, page in enumerate(_reader(name).pages, start=1):
        assert page.extract_text().strip() == "", f"page {number} has a text layer"
        resources = page["/Resources"]
        assert "/Font" not in resources
        images = list(resources["/XObject"].values())
        assert len(images) == 1
        image = images[0].get_object()
        raw_filter = image["/Filter"]  # a name or an array of names
        filters = [str(f) for f in raw_filter] if isinstance(raw_filter, list) else [str(raw_filter)]
        assert filters in (["/FlateDecode"], ["/CCITTFaxDecode"])  # never JPEG (lossy)
        if name == REGISTER:
            assert (filters, image["/BitsPerComponent"]) == (["/CCITTFaxDecode"], 1)
        # Drawn at 300 dpi: the page is exactly the image at that resolution.
        width_points = float(page.mediabox.width)
        assert abs(int(image["/Width"]) / (width_points / 72) - 300) < 1


def test_text_layer_pdf_is_born_digital() -> None:
    reader = _reader(NEWSLETTER)
    for page, expected in zip(reader.pages, TRUTH[NEWSLETTER], strict=True):
        assert "/XObject" not in page["/Resources"]
        assert page.extract_text() == expected


# --- through the emulator -----------------------------------------------------------------


def _upload(emu: InProcessEmulator, name: str, data: bytes) -> dict[str, Any]:
    answer = requests.post(
        f"{emu.base_url}/files",
        headers=emu.headers,
        files=[("file[]", (Path(name).name, data, "application/pdf"))],
        timeout=60,
    )
    assert answer.status_code == 207, answer.text
    stored: dict[str, Any] = answer.json()["data"][0]
    return stored


def _extract(
    emu: InProcessEmulator, uuid: str, engine: dict[str, Any], page: str = ""
) -> list[dict[str, Any]]:
    """All pages of one document extraction, synchronous or queued, sorted by page number."""
    file_id = {"uuid": uuid, **({"page": page} if page else {})}
    answer = requests.post(
        f"{emu.base_url}/document-extraction",
        headers=emu.headers,
        json={"engine": engine, "files": [file_id]},
        timeout=300,
    )
    assert answer.status_code == 201, answer.text
    extract = answer.json()["data"]
    deadline = time.monotonic() + 300
    while extract["status"] != "processed":
        assert time.monotonic() < deadline, "the extract did not finish"
        time.sleep(0.2)
        polled = requests.get(f"{emu.base_url}/extracts/{extract['uuid']}", headers=emu.headers, timeout=60)
        extract = polled.json()["data"]
    pages = extract["files"][0]["pages"]
    if isinstance(pages, str):  # queued: read the contents endpoint page by page, by number
        pages, number, last = [], 1, 1
        while number <= last:
            contents = requests.get(
                f"{emu.base_url}/extracts/{extract['uuid']}/files/{uuid}/contents",
                params={"page": number},
                headers=emu.headers,
                timeout=60,
            ).json()
            pages += contents["data"]
            last, number = contents["meta"]["last_page"], number + 1
    result: list[dict[str, Any]] = sorted(pages, key=lambda p: p["number"])
    return result


def _assert_cer(language: str, pairs: list[tuple[str, str]], label: str) -> None:
    """Each page within PAGE_CER_LIMIT and the set within the language's CER_LIMIT."""
    errors = length = 0
    for index, (reference, hypothesis) in enumerate(pairs):
        e, n = char_errors(reference, hypothesis)
        assert e / n <= PAGE_CER_LIMIT, f"{label} #{index + 1}: CER {e}/{n}; OCR said {hypothesis!r}"
        errors, length = errors + e, length + n
    print(f"{label}: {errors}/{length} = CER {errors / length:.2%} (limit {CER_LIMIT[language]:.0%})")
    assert errors / length <= CER_LIMIT[language]


def test_probe_reads_the_text_layer_exactly(emulator: InProcessEmulator) -> None:
    stored = _upload(emulator, NEWSLETTER, (ARCHIVE / NEWSLETTER).read_bytes())
    assert (stored["status"], stored["page_count"]) == ("stored", 2)
    pages = _extract(emulator, stored["uuid"], {"name": "probe"})
    assert [(p["number"], p["status"]) for p in pages] == [(1, "processed"), (2, "processed")]
    assert [p["text"] for p in pages] == TRUTH[NEWSLETTER]


@pytest.mark.tesseract
@pytest.mark.parametrize(("name", "language"), [(NOTICE, "fa"), (MINUTES, "en")])
def test_scanned_pdf_is_read_within_cer_limits(
    emulator_factory: Callable[..., InProcessEmulator], name: str, language: str
) -> None:
    """The 3-page Persian scan (answered synchronously) and the 12-page English one (queued),
    OCRed by the emulator's danlin engine: Tesseract --psm 3 on pages rendered at 300 dpi."""
    emu = emulator_factory(ocr="tesseract")
    stored = _upload(emu, name, (ARCHIVE / name).read_bytes())
    assert (stored["status"], stored["page_count"]) == ("stored", PAGES[name])
    pages = _extract(emu, stored["uuid"], {"name": "danlin", "options": {"language": language}})
    assert [p["number"] for p in pages] == list(range(1, PAGES[name] + 1))
    assert {p["status"] for p in pages} == {"processed"}
    _assert_cer(language, [(t, p["text"]) for t, p in zip(TRUTH[name], pages, strict=True)], name)


@pytest.mark.tesseract
def test_register_is_refused_whole_and_read_once_split(
    emulator_factory: Callable[..., InProcessEmulator],
) -> None:
    """160 pages are refused at upload; the last ten, split off with pypdf as the client
    splits, upload fine, and three of their pages read within the limits."""
    emu = emulator_factory(ocr="tesseract")
    refused = _upload(emu, REGISTER, (ARCHIVE / REGISTER).read_bytes())
    assert refused == {"status": "rejected", "reason": "PAGE_COUNT_LIMIT_EXCEEDED"}
    writer = pypdf.PdfWriter()
    for page in _reader(REGISTER).pages[MAX_PDF_PAGES:]:
        writer.add_page(page)
    part = io.BytesIO()
    writer.write(part)
    stored = _upload(emu, "part_2.pdf", part.getvalue())
    assert (stored["status"], stored["page_count"]) == ("stored", 10)
    pages = _extract(emu, stored["uuid"], {"name": "danlin", "options": {"language": "fa"}}, page="1,5,10")
    assert [(p["number"], p["status"]) for p in pages] == [(n, "processed") for n in (1, 5, 10)]
    expected = [TRUTH[REGISTER][MAX_PDF_PAGES + p["number"] - 1] for p in pages]
    _assert_cer("fa", [(t, p["text"]) for t, p in zip(expected, pages, strict=True)], f"{REGISTER} 151-160")
