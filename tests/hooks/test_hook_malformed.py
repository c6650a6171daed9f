"""Malformed answers to applied requests (emulator ``malformed_rate``): the hook says which
request, which connection, and hands back the uuids an upload answer did name."""

from __future__ import annotations

import socket
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from loopback_servers import RawServer, answer_json

from airflow_provider_delix.api.errors import DelixResponseError
from airflow_provider_delix.api.models import PageStatus
from airflow_provider_delix.emulator.scans import make_png
from airflow_provider_delix.hooks.delix import DelixHook


def spoiling(emulator_factory: Callable[..., Any], kind: str) -> Any:
    return emulator_factory(malformed_rate=1.0, malformed_kinds=kind)


def test_an_upload_answer_short_of_an_entry_names_the_stored_uuids(
    emulator_factory: Callable[..., Any], connect: Callable[..., str]
) -> None:
    emulator = spoiling(emulator_factory, "upload_missing_entry")
    hook = DelixHook(connect(emulator))
    with pytest.raises(DelixResponseError) as info:
        hook.upload_files([("a.png", make_png("a")), ("b.png", make_png("b")), ("c.png", make_png("c"))])
    message = str(info.value)
    assert "2 upload entries for 3 files" in message
    assert "the upload of 3 file(s)" in message and "connection 'delix_test'" in message
    stored = {f.uuid for f in DelixHook(connect(emulator)).list_files()}
    assert len(stored) == 3 and set(info.value.uuids) < stored and len(info.value.uuids) == 2
    assert emulator.stats()["faults"] == {"upload_missing_entry": 1}


def test_an_extraction_answer_that_is_not_json_names_the_request(
    emulator_factory: Callable[..., Any], connect: Callable[..., str]
) -> None:
    emulator = spoiling(emulator_factory, "extract_not_json")
    hook = DelixHook(connect(emulator))
    (stored,) = hook.upload_files([("a.png", make_png("a"))])
    with pytest.raises(DelixResponseError, match=r"image extraction of 1 file.*connection 'delix_test'"):
        hook.extract_images([stored.uuid])  # type: ignore[union-attr]
    assert emulator.stats()["credits"]["charged"] == 200, "the request was applied and paid"


@pytest.mark.parametrize(
    ("kind", "number", "status"),
    [("page_without_status", 1, ""), ("page_number_out_of_range", 7, PageStatus.PROCESSED)],
)
def test_odd_pages_are_parsed_not_fatal(
    emulator_factory: Callable[..., Any], connect: Callable[..., str], kind: str, number: int, status: str
) -> None:
    emulator = spoiling(emulator_factory, kind)
    hook = DelixHook(connect(emulator))
    (stored,) = hook.upload_files([("a.png", make_png("a"))])
    extract = hook.extract_images([stored.uuid])  # type: ignore[union-attr]
    (page,) = extract.files[0].pages or ()
    assert (page.number, page.status) == (number, status)


def test_an_image_extract_answered_as_processing_is_finished_on_the_next_poll(
    emulator_factory: Callable[..., Any], connect: Callable[..., str]
) -> None:
    emulator = spoiling(emulator_factory, "image_processing")
    hook = DelixHook(connect(emulator))
    (stored,) = hook.upload_files([("a.png", make_png("a"))])
    extract = hook.extract_images([stored.uuid])  # type: ignore[union-attr]
    assert not extract.is_processed and extract.files == ()
    again = hook.get_extract(extract.uuid)
    assert again.is_processed and again.files[0].pages and again.files[0].pages[0].text == "a"


STORED = {"uuid": "A", "status": "stored", "extension": "png", "page_count": 1}
# What a server that is not quite Delix (a new API version, a buggy gateway) might answer.
ODD_ANSWERS: dict[str, tuple[int, Any]] = {
    "POST /v1/files": (207, {"data": [STORED, {"uuid": "B", "status": "stored", "page_count": "one"}]}),
    "POST /v1/image-extraction": (
        201,
        {"data": {"uuid": "E", "status": "processed", "initial_cost": "free"}},
    ),
    "GET /v1/extracts/E": (200, {"data": {"uuid": "E", "status": "processed", "files": 5}}),
    "GET /v1/files": (200, {"data": [STORED, {"uuid": "B", "status": "stored", "page_count": "two"}]}),
    "GET /v1/extracts/E/files/F/contents?page=1": (200, {"data": [], "meta": {"last_page": "many"}}),
}


def _odd(sock: socket.socket, request_line: str) -> None:
    method, target, _ = request_line.split(" ")
    answer_json(sock, *ODD_ANSWERS[f"{method} {target}"])


@pytest.mark.parametrize(
    ("call", "what"),
    [
        (lambda h: h.upload_files([("a.png", b"a"), ("b.png", b"b")]), "the upload of 2 file(s)"),
        (lambda h: h.extract_images(["A"]), "the image extraction of 1 file(s)"),
        (lambda h: h.get_extract("E"), "extract E"),
        (lambda h: h.list_files(), "the file list"),
        (lambda h: list(h.iter_extract_pages("E", "F")), "page 1 of the contents of file F in extract E"),
    ],
    ids=["upload", "extraction", "extract", "file-list", "contents"],
)
def test_answers_that_do_not_fit_are_response_errors_naming_the_connection(
    connect: Callable[..., str], call: Callable[[DelixHook], Any], what: str
) -> None:
    """A null or non-numeric count, ``files`` that is no list: not a bare TypeError or ValueError."""
    with RawServer(_odd) as server:
        hook = DelixHook(connect(SimpleNamespace(base_url=server.base_url, api_key="k-1"), max_retries=0))
        with pytest.raises(DelixResponseError) as info:
            call(hook)
        assert f"{what}, connection 'delix_test'" in str(info.value) and info.value.conn_id == "delix_test"
        assert len(server.received) == 1, "an answer is not retried"
        if what.startswith("the upload"):
            assert info.value.uuids == ("A", "B"), "both files are stored: the caller deletes them"
