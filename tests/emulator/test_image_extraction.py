"""POST /image-extraction: sync Extract, groundtruth texts, every body rejection, no charge on refusal."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_delix.emulator.groundtruth import fallback_text
from airflow_provider_delix.emulator.testing import InProcessEmulator

from .samples import ENGINE_FA, PROBE, Api, jpeg, pdf, png


def test_sync_extract_with_texts_failures_and_credits(api: Api, emulator: InProcessEmulator) -> None:
    uuids = api.store(
        png("سلام دنیا"), png("tEXt chunk", itxt=False), jpeg("از جی‌پگ"), png("x", fail=True), png()
    )
    answer = api.images(
        {"engine": {"name": "tiho", "options": {"language": "en"}}, "files": [{"uuid": u} for u in uuids]}
    )
    assert answer.status_code == 201
    data = answer.json()["data"]
    assert {k: data[k] for k in data if k not in ("uuid", "files")} == {
        "status": "processed",
        "file_type": "images",
        "engine": "tiho",
        "language": "en",
        "total_files": 5,
        "total_file_pages": 5,
        "total_processing_pages": 5,
        "initial_cost": 1000,
        "failed_pages": 1,
        "returned_credits": 200,
    }
    assert [f["uuid"] for f in data["files"]] == uuids
    pages = [f["pages"] for f in data["files"]]
    assert pages[0] == [{"number": 1, "status": "processed", "text": "سلام دنیا"}]
    assert pages[1][0]["text"] == "tEXt chunk" and pages[2][0]["text"] == "از جی‌پگ"
    assert pages[3] == [{"number": 1, "status": "failed"}]
    fallback = pages[4][0]["text"]
    assert (
        len(fallback.encode()) == 64
        and fallback
        == api.images({"engine": ENGINE_FA, "files": [{"uuid": uuids[4]}]}).json()["data"]["files"][0][
            "pages"
        ][0]["text"]
    )
    again = api.extract(data["uuid"]).json()["data"]
    assert again == data
    credits = emulator.stats()["credits"]
    assert credits["charged"] == 1200 and credits["refunded"] == 200


def test_fallback_text_size_is_configurable(emulator_factory: Any) -> None:
    api = Api(emulator_factory(fallback_text_bytes=2000))
    (uuid,) = api.store(png())
    text = api.images({"engine": ENGINE_FA, "files": [{"uuid": uuid}]}).json()["data"]["files"][0]["pages"][
        0
    ]["text"]
    assert len(text.encode()) == 2000
    assert fallback_text("abc", 1, 2001) == fallback_text("abc", 1, 2001) != fallback_text("abc", 2, 2001)
    assert len(fallback_text("abc", 1, 2001).encode()) == 2001


def test_page_is_known_and_ignored_for_images(api: Api) -> None:
    (uuid,) = api.store(png("x"))
    answer = api.images({"engine": ENGINE_FA, "files": [{"uuid": uuid, "page": "1-9"}]})
    assert answer.status_code == 201


def _refused(api: Api, emulator: InProcessEmulator, body: Any, status: int = 422) -> dict[str, Any]:
    answer = api.images(body)
    assert answer.status_code == status, answer.text
    stats = emulator.stats()
    assert stats["credits"]["charged"] == 0 and stats["extracts"]["total"] == 0 and stats["charges"] == {}
    result: dict[str, Any] = answer.json()
    return result


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda b: b | {"extra": 1}, id="top-level"),
        pytest.param(lambda b: b | {"callback_url": "http://x/"}, id="callback-on-images"),
        pytest.param(lambda b: b | {"engine": {**ENGINE_FA, "mode": "fast"}}, id="engine-key"),
        pytest.param(
            lambda b: b | {"engine": {"name": "danlin", "options": {"language": "fa", "dpi": 3}}},
            id="option-key",
        ),
        pytest.param(lambda b: b | {"files": [{**b["files"][0], "name": "a.png"}]}, id="file-key"),
    ],
)
def test_unknown_fields(api: Api, emulator: InProcessEmulator, mutate: Any) -> None:
    (uuid,) = api.store(png("x"))
    body = mutate({"engine": ENGINE_FA, "files": [{"uuid": uuid}]})
    assert _refused(api, emulator, body)["error"] == "UNKNOWN_FIELD"


@pytest.mark.parametrize(
    "engine",
    [
        pytest.param(None, id="missing"),
        pytest.param("danlin", id="not-an-object"),
        pytest.param({"name": "tesseract", "options": {"language": "fa"}}, id="unknown-name"),
        pytest.param({"options": {"language": "fa"}}, id="no-name"),
        pytest.param({"name": "danlin"}, id="no-options"),
        pytest.param({"name": "tiho", "options": {}}, id="no-language"),
        pytest.param({"name": "danlin", "options": {"language": "de"}}, id="bad-language"),
        pytest.param({"name": "probe", "options": {"language": "fa"}}, id="probe-with-options"),
        pytest.param({"name": "probe", "options": {}}, id="probe-with-empty-options"),
    ],
)
def test_bad_engines_are_errors_engine(api: Api, emulator: InProcessEmulator, engine: Any) -> None:
    (uuid,) = api.store(png("x"))
    body: dict[str, Any] = {"files": [{"uuid": uuid}]}
    if engine is not None:
        body["engine"] = engine
    result = _refused(api, emulator, body)
    assert list(result["errors"]) == ["engine"] and result["message"]


@pytest.mark.parametrize(
    "files",
    [None, [], "abc", [{"uuid": f"u{i}"} for i in range(6)], [{"page": "1"}], [{"uuid": 5}], ["uuid"]],
    ids=["missing", "empty", "string", "six", "no-uuid", "int-uuid", "not-object"],
)
def test_bad_file_lists_are_errors_files(api: Api, emulator: InProcessEmulator, files: Any) -> None:
    body: dict[str, Any] = {"engine": ENGINE_FA}
    if files is not None:
        body["files"] = files
    assert list(_refused(api, emulator, body)["errors"]) == ["files"]


def test_non_json_body_is_a_validation_error(api: Api, emulator: InProcessEmulator) -> None:
    answer = api.session.post(f"{api.url}/image-extraction", data="engine=danlin", timeout=10)
    assert answer.status_code == 422 and set(answer.json()["errors"]) == {"engine", "files"}


def test_duplicated_unknown_and_wrong_type(api: Api, emulator: InProcessEmulator) -> None:
    image, document = api.store(png("x"), pdf(["p"]))
    duplicated = {"engine": ENGINE_FA, "files": [{"uuid": image}, {"uuid": image}]}
    assert _refused(api, emulator, duplicated)["error"] == "DUPLICATED_FILE"
    assert (
        _refused(api, emulator, {"engine": ENGINE_FA, "files": [{"uuid": image}, {"uuid": "nope"}]}, 404)
        == {}
    )
    wrong = {"engine": ENGINE_FA, "files": [{"uuid": image}, {"uuid": document}]}
    assert _refused(api, emulator, wrong)["error"] == "WRONG_FILE_TYPE"
    assert (
        _refused(api, emulator, {"engine": PROBE, "files": [{"uuid": image}]})["error"] == "WRONG_FILE_TYPE"
    )
