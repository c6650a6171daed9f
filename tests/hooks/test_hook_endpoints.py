"""Every public method of DelixHook against the emulator over real HTTP on loopback."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from pdfs import make_pdf

from airflow_provider_delix.api.errors import DelixNotFoundError
from airflow_provider_delix.api.models import (
    Engine,
    ExtractStatus,
    FileIdentifier,
    PageStatus,
    RejectedFile,
    StoredFile,
)
from airflow_provider_delix.emulator.scans import make_png
from airflow_provider_delix.hooks.delix import DelixHook


def test_upload_paths_and_pairs_in_order_with_rejections(hook: DelixHook, tmp_path: Path) -> None:
    path = tmp_path / "scan.png"
    path.write_bytes(make_png("from a path"))
    results = hook.upload_files([path, ("notes.txt", b"just text"), ("pair.png", make_png("a pair"))])
    assert [type(r) for r in results] == [StoredFile, RejectedFile, StoredFile]
    assert isinstance(results[1], RejectedFile) and results[1].reason == "MALFORMED_FILE"
    assert results[0].status == "stored" and results[1].status == "rejected"
    stored = {f.uuid for f in hook.list_files()}
    assert stored == {r.uuid for r in results if isinstance(r, StoredFile)}


@pytest.mark.parametrize("count", [0, 6])
def test_upload_refuses_wrong_counts_before_any_call(hook: DelixHook, emulator: Any, count: int) -> None:
    with pytest.raises(ValueError, match="1 to 5"):
        hook.upload_files([(f"{i}.png", b"x") for i in range(count)])
    assert sum(emulator.stats()["calls"].values()) == 0 if "calls" in emulator.stats() else True


def test_delete_file_is_true_then_false_when_gone(hook: DelixHook) -> None:
    (stored,) = hook.upload_files([("a.png", make_png("delete me"))])
    assert isinstance(stored, StoredFile)
    assert hook.delete_file(stored.uuid) is True
    assert hook.delete_file(stored.uuid) is False
    with pytest.raises(DelixNotFoundError, match="HTTP 404"):
        hook.delete_file(stored.uuid, missing_ok=False)
    assert hook.list_files() == []


def test_extract_images_returns_text_per_page_and_failed_pages(hook: DelixHook) -> None:
    results = hook.upload_files(
        [
            ("a.png", make_png("سلام دنیا")),
            ("b.png", make_png("hello world")),
            ("c.png", make_png("x", fail=True)),
        ]
    )
    uuids = [r.uuid for r in results if isinstance(r, StoredFile)]
    extract = hook.extract_images(uuids, Engine.DANLIN, "fa")
    assert extract.status == ExtractStatus.PROCESSED and extract.file_type == "images"
    pages = {f.uuid: f.pages for f in extract.files}
    assert [p.text for p in pages[uuids[0]] or ()] == ["سلام دنیا"]
    assert [p.text for p in pages[uuids[1]] or ()] == ["hello world"]
    (failed,) = pages[uuids[2]] or ()
    assert failed.status == PageStatus.FAILED
    assert extract.initial_cost == 600 and extract.failed_pages == 1 and extract.returned_credits == 200


def test_extract_images_refuses_duplicates_and_bad_languages_locally(hook: DelixHook) -> None:
    with pytest.raises(ValueError, match="twice"):
        hook.extract_images(["u1", "u1"])
    with pytest.raises(ValueError, match="fa, en, ar, tr"):
        hook.extract_images(["u1"], "danlin", "de")


def test_extract_documents_synchronous_with_page_selection(hook: DelixHook) -> None:
    (pdf,) = hook.upload_files([("doc.pdf", make_pdf(["page one", "page two", "page three"]))])
    assert isinstance(pdf, StoredFile) and pdf.page_count == 3
    extract = hook.extract_documents([FileIdentifier(pdf.uuid, page="1,3")], Engine.PROBE)
    assert extract.status == ExtractStatus.PROCESSED and extract.language is None
    (file,) = extract.files
    assert [(p.number, (p.text or "").strip()) for p in file.pages or ()] == [
        (1, "page one"),
        (3, "page three"),
    ]


def test_extract_documents_async_poll_and_paginate(hook: DelixHook, emulator: Any) -> None:
    emulator.configure(per_page=4)
    texts = [f"page {n}" for n in range(1, 12)]
    (pdf,) = hook.upload_files([("long.pdf", make_pdf(texts))])
    assert isinstance(pdf, StoredFile)
    queued = hook.extract_documents([(pdf.uuid, None)], "danlin", "en")
    assert queued.status == ExtractStatus.PROCESSING and queued.files == ()
    done = hook.wait_for_extract(queued.uuid, poll_interval=0.05, timeout=60)
    (file,) = done.files
    assert file.pages is None and file.pages_url
    pages = list(hook.iter_extract_pages(done.uuid, file.uuid))
    assert [p.number for p in pages] == list(range(1, 12))
    assert [(p.text or "").strip() for p in pages] == texts
    assert emulator.stats()["calls"].get("GET /extracts/{uuid}/files/{uuid}/contents", 3) >= 3


def test_get_extract_unknown_is_not_found(hook: DelixHook) -> None:
    with pytest.raises(DelixNotFoundError, match="extract nope"):
        hook.get_extract("nope")


def test_one_session_shared_safely_by_threads(hook: DelixHook) -> None:
    sessions: set[int] = set()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                sessions.add(id(hook.get_conn()))
                hook.list_files()
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(sessions) == 1
    assert hook.request_counts["GET /files"] == 40
