"""Bearer auth on every /v1 endpoint, routing, and the admin endpoints' lack of auth."""

from __future__ import annotations

import pytest
import requests

from airflow_provider_delix.emulator.testing import InProcessEmulator

from .samples import Api, png

ENDPOINTS = [
    ("POST", "/files"),
    ("GET", "/files"),
    ("DELETE", "/files/some-uuid"),
    ("POST", "/image-extraction"),
    ("POST", "/document-extraction"),
    ("GET", "/extracts/some-uuid"),
    ("GET", "/extracts/e/files/f/contents?page=1"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize("header", [None, "Bearer wrong", "test-key", "Basic test-key", "Bearer "])
def test_every_endpoint_refuses_a_bad_or_missing_key(
    emulator: InProcessEmulator, method: str, path: str, header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    answer = requests.request(method, emulator.base_url + path, headers=headers, timeout=10)
    assert answer.status_code == 401
    assert answer.json() == {"message": "Unauthenticated."}
    assert emulator.stats()["files"]["count"] == 0


def test_a_refused_upload_stores_nothing(emulator: InProcessEmulator) -> None:
    answer = Api(emulator, key="nope").upload(png("x"))
    assert answer.status_code == 401
    assert emulator.stats()["files"]["count"] == 0


def test_the_right_key_is_accepted(api: Api) -> None:
    answer = api.files()
    assert answer.status_code == 200 and answer.json() == {"data": []}
    assert answer.headers["Content-Type"] == "application/json"


def test_unknown_path_and_wrong_method(api: Api) -> None:
    assert api.session.get(f"{api.url}/nothing-here", timeout=10).status_code == 404
    assert api.session.put(f"{api.url}/files", timeout=10).status_code == 405
    outside = requests.get(api.url.removesuffix("/v1") + "/files", timeout=10)
    assert outside.status_code == 404


def test_admin_endpoints_need_no_key(emulator: InProcessEmulator) -> None:
    root = emulator.base_url.removesuffix("/v1")
    assert requests.get(f"{root}/_emulator/stats", timeout=10).status_code == 200
    config = requests.get(f"{root}/_emulator/config", timeout=10).json()
    assert "api_key" not in config and config["ocr"] == "groundtruth"


def test_keep_alive_serves_many_requests_on_one_connection(api: Api, emulator: InProcessEmulator) -> None:
    for _ in range(200):
        assert api.files().status_code == 200
    assert emulator.stats()["calls"]["GET /files"] == 200
