"""Pages PDFium cannot load, and emulator bugs during OCR: failed pages, refunded, never a stuck extract.

A charged extract that raised used to stay ``processing`` for ever: its files could never be
deleted (``FILE_UNDER_PROCESSING``) and a sync request was answered 500 after its charge.
"""

from __future__ import annotations

import io
from typing import Any

import img2pdf
import pikepdf
import pytest

from airflow_provider_delix.emulator.config import EmulatorConfig
from airflow_provider_delix.emulator.ocr import PageJob

from .samples import Api, jpeg, pdf, png

ENGINE_EN = {"name": "danlin", "options": {"language": "en"}}


def count_lie(data: bytes, count: int) -> bytes:
    """``data`` with its page tree's /Count set to ``count``: PDFium believes it, pypdf does not."""
    with pikepdf.open(io.BytesIO(data)) as document:
        real = len(document.pages)
        out = io.BytesIO()
        document.save(out, linearize=False, object_stream_mode=pikepdf.ObjectStreamMode.disable)
    lied = out.getvalue().replace(b"/Count %d" % real, b"/Count %d" % count)
    assert len(lied) == len(out.getvalue()) and lied != out.getvalue()
    return lied


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_page_pdfium_cannot_load_fails_refunded(emulator_factory: Any, mode: str) -> None:
    emulator = emulator_factory(document_mode=mode, credits=10_000)
    api = Api(emulator)
    (uuid,) = api.store(count_lie(pdf(["one", "two", "three"]), 5))
    answer = api.documents({"engine": ENGINE_EN, "files": [{"uuid": uuid}]})
    assert answer.status_code == 201, answer.text
    done = api.wait_processed(answer.json()["data"]["uuid"])
    assert done["failed_pages"] == 2 and done["returned_credits"] == 200
    pages = done["files"][0]["pages"]
    if mode == "async":
        pages = api.session.get(pages, timeout=10).json()["data"]
    assert [(p["number"], p.get("text", "").strip(), p["status"]) for p in pages] == [
        (1, "one", "processed"),
        (2, "two", "processed"),
        (3, "three", "processed"),
        (4, "", "failed"),
        (5, "", "failed"),
    ]
    stats = emulator.stats()
    assert stats["credits"] == {"balance": 9_700, "charged": 500, "refunded": 200}
    assert stats["internal_errors"] == 0 and stats["extracts"]["processing"] == 0
    assert api.delete(uuid).status_code == 200


def test_tesseract_backend_fails_a_page_pdfium_cannot_load(emulator_factory: Any) -> None:
    """Pages 4-5 only: PDFium fails before Tesseract runs, so the binary is not needed."""
    api = Api(emulator_factory(ocr="tesseract", credits=1_000))
    (uuid,) = api.store(count_lie(pdf(["one", "two", "three"]), 5))
    answer = api.documents({"engine": ENGINE_EN, "files": [{"uuid": uuid, "page": "4-5"}]})
    assert answer.status_code == 201, answer.text
    data = answer.json()["data"]
    assert data["status"] == "processed" and data["failed_pages"] == 2 and data["returned_credits"] == 200
    assert api.delete(uuid).status_code == 200


def test_packed_scans_of_a_document_with_an_unloadable_page_still_read_as_scans(api: Api) -> None:
    """The groundtruth backend reads a packed JPEG's text even when another page cannot load."""
    pack = count_lie(img2pdf.convert([jpeg("first scan"), jpeg("second scan")]), 3)
    (uuid,) = api.store(pack)
    data = api.documents({"engine": ENGINE_EN, "files": [{"uuid": uuid}]}).json()["data"]
    pages = [(p["number"], p.get("text")) for p in data["files"][0]["pages"]]
    assert pages == [(1, "first scan"), (2, "second scan"), (3, None)]


class _BrokenBackend:
    """An OCR backend with a bug: every read raises."""

    name = "broken"
    parallel = False

    def read(self, job: PageJob, engine: str, language: str | None, config: EmulatorConfig) -> str | None:
        raise RuntimeError("a bug in the backend")


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_internal_error_fails_every_page_of_the_extract(emulator_factory: Any, mode: str) -> None:
    emulator = emulator_factory(document_mode=mode, credits=1_000, backend=_BrokenBackend())
    api = Api(emulator)
    (uuid,) = api.store(pdf(["a", "b"]))
    answer = api.documents({"engine": ENGINE_EN, "files": [{"uuid": uuid}]})
    assert answer.status_code == 201, answer.text
    done = api.wait_processed(answer.json()["data"]["uuid"])
    assert done["failed_pages"] == 2 and done["returned_credits"] == 200
    stats = emulator.stats()
    assert stats["credits"] == {"balance": 1_000, "charged": 200, "refunded": 200}
    assert stats["internal_errors"] == 1 and stats["extracts"]["processing"] == 0
    assert api.delete(uuid).status_code == 200


def test_image_extraction_internal_error_is_refunded(emulator_factory: Any) -> None:
    api = Api(emulator_factory(credits=1_000, backend=_BrokenBackend()))
    (uuid,) = api.store(png("never read"))
    answer = api.images({"engine": ENGINE_EN, "files": [{"uuid": uuid}]})
    assert answer.status_code == 201 and answer.json()["data"]["failed_pages"] == 1
    assert api.delete(uuid).status_code == 200
