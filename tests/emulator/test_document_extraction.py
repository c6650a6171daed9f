"""POST /document-extraction: sync vs async, page selection, pagination, callbacks, FILE_UNDER_PROCESSING."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from airflow_provider_delix.emulator.testing import InProcessEmulator

from .samples import ENGINE_FA, PROBE, Api, pdf, png

ENGINE_EN = {"name": "danlin", "options": {"language": "en"}}


def test_sync_with_page_selection_and_probe(api: Api, emulator: InProcessEmulator) -> None:
    a, b = api.store(pdf(["one", "two", "three"]), pdf(["alpha", "beta", "gamma", "delta"]))
    body = {"engine": PROBE, "files": [{"uuid": a, "page": "1,3"}, {"uuid": b, "page": "2-4"}]}
    answer = api.documents(body)
    assert answer.status_code == 201
    data = answer.json()["data"]
    assert data["status"] == "processed" and data["file_type"] == "documents"
    assert data["engine"] == "probe" and data["language"] is None
    assert (data["total_files"], data["total_file_pages"], data["total_processing_pages"]) == (2, 7, 5)
    assert data["initial_cost"] == 500 and data["failed_pages"] == 0 and data["returned_credits"] == 0
    texts = {f["uuid"]: [(p["number"], p["text"].strip()) for p in f["pages"]] for f in data["files"]}
    assert texts == {a: [(1, "one"), (3, "three")], b: [(2, "beta"), (3, "gamma"), (4, "delta")]}
    charges = emulator.stats()["charges"]
    assert len(charges) == 5 and set(charges.values()) == {1}
    assert api.contents(data["uuid"], a).status_code == 404  # contents are for async extracts only


def test_groundtruth_ocr_reads_the_text_layer_or_falls_back(api: Api) -> None:
    (uuid,) = api.store(pdf(["written", ""]))
    data = api.documents({"engine": ENGINE_FA, "files": [{"uuid": uuid, "page": ""}]}).json()["data"]
    first, second = data["files"][0]["pages"]
    assert first["text"].strip() == "written" and len(second["text"].encode()) == 64


@pytest.mark.parametrize("page", ["0", "4", "3-2", "a", "1,,2", "1,1", "1-3,2", "2-", "-1", 1.5, ["1"]])
def test_invalid_page_selections(api: Api, emulator: InProcessEmulator, page: Any) -> None:
    (uuid,) = api.store(pdf(["a", "b", "c"]))
    answer = api.documents({"engine": PROBE, "files": [{"uuid": uuid, "page": page}]})
    assert answer.status_code == 422 and answer.json()["error"] == "INVALID_FILE_PAGE"
    assert emulator.stats()["credits"]["charged"] == 0


def test_refusals_specific_to_documents(api: Api, emulator: InProcessEmulator) -> None:
    image, document = api.store(png("x"), pdf(["a"]))
    wrong = api.documents({"engine": PROBE, "files": [{"uuid": document}, {"uuid": image}]})
    assert wrong.status_code == 422 and wrong.json()["error"] == "WRONG_FILE_TYPE"
    bad_callback = api.documents({"engine": PROBE, "files": [{"uuid": document}], "callback_url": "ftp://x"})
    assert bad_callback.status_code == 422 and list(bad_callback.json()["errors"]) == ["callback_url"]
    unknown = api.documents({"engine": PROBE, "files": [{"uuid": document}], "callbackUrl": "http://x/"})
    assert unknown.json()["error"] == "UNKNOWN_FIELD"
    assert api.documents({"engine": PROBE, "files": [{"uuid": "gone"}]}).status_code == 404
    assert emulator.stats()["extracts"]["total"] == 0


def test_async_extract_polls_and_paginates(api: Api, emulator: InProcessEmulator) -> None:
    emulator.configure(per_page=4)
    texts = [f"page {n}" for n in range(1, 12)]
    big, small = api.store(pdf(texts), pdf(["x", "y"]))
    answer = api.documents({"engine": ENGINE_EN, "files": [{"uuid": big}, {"uuid": small, "page": "2"}]})
    assert answer.status_code == 201
    queued = answer.json()["data"]
    assert queued["status"] == "processing" and queued["initial_cost"] == 1200
    assert not {"files", "failed_pages", "returned_credits"} & set(queued)
    done = api.wait_processed(queued["uuid"])
    assert done["failed_pages"] == 0 and done["returned_credits"] == 0
    urls = {f["uuid"]: f["pages"] for f in done["files"]}
    host = api.url.split("/")[2]
    assert urls[big] == f"http://{host}/v1/extracts/{queued['uuid']}/files/{big}/contents"
    first = api.session.get(urls[big], timeout=10).json()
    assert first["meta"] == {
        "current_page": 1,
        "from": 1,
        "last_page": 3,
        "path": urls[big],
        "per_page": 4,
        "to": 4,
        "total": 11,
    }
    assert first["links"] == {
        "first": f"{urls[big]}?page=1",
        "last": f"{urls[big]}?page=3",
        "prev": None,
        "next": f"{urls[big]}?page=2",
    }
    collected, url = [], urls[big]
    while url:
        page = api.session.get(url, timeout=10).json()
        collected += page["data"]
        url = page["links"]["next"]
    assert [(p["number"], p["text"].strip()) for p in collected] == [(n, f"page {n}") for n in range(1, 12)]
    last = api.contents(queued["uuid"], big, 3).json()
    assert (last["meta"]["from"], last["meta"]["to"], last["links"]["prev"]) == (9, 11, f"{urls[big]}?page=2")
    beyond = api.contents(queued["uuid"], big, 9).json()
    assert beyond["data"] == [] and beyond["meta"]["from"] is None
    assert api.contents(queued["uuid"], small).json()["data"][0]["number"] == 2
    assert api.contents(queued["uuid"], "other-file").status_code == 404
    assert api.contents("no-such-extract", big).status_code == 404


def test_default_per_page_is_15(api: Api) -> None:
    (uuid,) = api.store(pdf([f"p{n}" for n in range(20)]))
    done = api.wait_processed(
        api.documents({"engine": PROBE, "files": [{"uuid": uuid}]}).json()["data"]["uuid"]
    )
    page = api.session.get(done["files"][0]["pages"], timeout=10).json()
    assert page["meta"]["per_page"] == 15 and len(page["data"]) == 15 and page["meta"]["last_page"] == 2


def test_forced_modes(emulator_factory: Any) -> None:
    sync = Api(emulator_factory(document_mode="sync"))
    (uuid,) = sync.store(pdf(["a"] * 6))
    too_many = sync.documents({"engine": PROBE, "files": [{"uuid": uuid}]})
    assert too_many.status_code == 422 and too_many.json()["error"] == "EXCEEDING_FILE_PAGE"
    assert (
        sync.documents({"engine": PROBE, "files": [{"uuid": uuid, "page": "1-5"}]}).json()["data"]["status"]
        == "processed"
    )
    forced_async = Api(emulator_factory(document_mode="async"))
    (uuid,) = forced_async.store(pdf(["a"]))
    queued = forced_async.documents({"engine": PROBE, "files": [{"uuid": uuid}]}).json()["data"]
    assert queued["status"] == "processing"
    assert isinstance(forced_async.wait_processed(queued["uuid"])["files"][0]["pages"], str)


@pytest.fixture
def listener() -> Iterator[tuple[str, list[Any]]]:
    received: list[Any] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


def test_callback_is_posted_when_an_async_extract_finishes(
    api: Api, emulator: InProcessEmulator, listener: tuple[str, list[Any]]
) -> None:
    url, received = listener
    (uuid,) = api.store(pdf(["a"] * 6))
    queued = api.documents({"engine": PROBE, "files": [{"uuid": uuid}], "callback_url": url}).json()["data"]
    deadline = time.monotonic() + 10
    while not received and time.monotonic() < deadline:
        time.sleep(0.02)
    assert received == [{"uuid": queued["uuid"], "status": "processed"}]
    assert emulator.stats()["callbacks"] == {"sent": 1, "failed": 0}


def test_unreachable_callback_is_harmless(api: Api, emulator: InProcessEmulator) -> None:
    (uuid,) = api.store(pdf(["a"] * 6))
    body = {"engine": PROBE, "files": [{"uuid": uuid}], "callback_url": "http://127.0.0.1:9/nothing"}
    done = api.wait_processed(api.documents(body).json()["data"]["uuid"])
    assert done["status"] == "processed"
    deadline = time.monotonic() + 10
    while emulator.stats()["callbacks"]["failed"] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert emulator.stats()["callbacks"]["failed"] == 1


def test_a_file_under_processing_cannot_be_deleted(api: Api, emulator: InProcessEmulator) -> None:
    emulator.configure(latency_extract_page=0.1)  # 0.8 s: the checks below run while it works
    used, free = api.store(pdf(["a"] * 8), png("free"))
    queued = api.documents({"engine": PROBE, "files": [{"uuid": used}]}).json()["data"]
    refused = api.delete(used)
    assert refused.status_code == 422 and refused.json()["error"] == "FILE_UNDER_PROCESSING"
    assert api.contents(queued["uuid"], used).status_code == 404  # not finished yet
    assert api.extract(queued["uuid"]).json()["data"]["status"] == "processing"
    assert api.delete(free).status_code == 200
    api.wait_processed(queued["uuid"])
    assert api.delete(used).status_code == 200


def test_a_file_stays_busy_until_every_extract_using_it_is_processed(
    api: Api, emulator: InProcessEmulator
) -> None:
    emulator.configure(latency_extract_page=0.1, async_workers=1)  # 0.8 s each
    (used,) = api.store(pdf(["a"] * 8))
    first = api.documents({"engine": PROBE, "files": [{"uuid": used}]}).json()["data"]["uuid"]
    second = api.documents({"engine": PROBE, "files": [{"uuid": used}]}).json()["data"]["uuid"]
    api.wait_processed(first)
    assert api.extract(second).json()["data"]["status"] == "processing"  # one worker: still queued
    refused = api.delete(used)
    assert refused.status_code == 422 and refused.json()["error"] == "FILE_UNDER_PROCESSING"
    api.wait_processed(second)
    assert api.delete(used).status_code == 200
