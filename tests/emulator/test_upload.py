"""POST /files, GET /files, DELETE /files/{uuid}: types by content, size and storage limits, expiry."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_delix.emulator.testing import InProcessEmulator

from .samples import ENGINE_FA, Api, image_bytes, jpeg, mpo, pdf, pdf_of_size, png, png_of_size


def _entries(answer: Any) -> list[dict[str, Any]]:
    assert answer.status_code == 207, answer.text
    data: list[dict[str, Any]] = answer.json()["data"]
    return data


@pytest.mark.parametrize("field", ["file", "file[]", "file[0]"])
def test_upload_accepts_png_jpeg_pdf_with_both_field_names(api: Api, field: str) -> None:
    entries = _entries(api.upload(png("a"), jpeg("b"), pdf(["1", "2", "3"]), field=field))
    assert [(e["status"], e["extension"], e["page_count"]) for e in entries] == [
        ("stored", "png", 1),
        ("stored", "jpeg", 1),
        ("stored", "pdf", 3),
    ]
    listed = api.files().json()["data"]
    assert [f["uuid"] for f in listed] == [e["uuid"] for e in entries]
    assert all(set(f) == {"uuid", "status", "extension", "page_count"} for f in listed)


def test_a_jpeg_with_a_multi_picture_segment_is_a_jpeg_read_by_its_first_picture(api: Api) -> None:
    # Phone cameras write MPF; Pillow calls such a file "MPO", Delix takes it as the JPEG it is.
    (entry,) = _entries(api.upload(mpo("عکس گوشی")))
    assert (entry["status"], entry.get("extension"), entry.get("page_count")) == ("stored", "jpeg", 1)
    answer = api.images({"engine": ENGINE_FA, "files": [{"uuid": entry["uuid"]}]})
    assert answer.status_code == 201, answer.text
    (page,) = answer.json()["data"]["files"][0]["pages"]
    assert (page["status"], page["text"]) == ("processed", "عکس گوشی")


def test_results_keep_request_order_and_rejections_have_no_uuid(api: Api) -> None:
    entries = _entries(api.upload(b"plain text", png("ok"), b"", jpeg("ok")))
    assert [e["status"] for e in entries] == ["rejected", "stored", "rejected", "stored"]
    assert entries[0] == {"status": "rejected", "reason": "MALFORMED_FILE"}
    assert "uuid" not in entries[2]


def test_type_is_decided_by_content_not_name(api: Api) -> None:
    parts = [
        ("file[]", ("scan.pdf", png("really a png"))),
        ("file[]", ("scan.png", b"%!PS-Adobe not an image")),
    ]
    entries = _entries(api.session.post(f"{api.url}/files", files=parts, timeout=10))
    assert entries[0]["extension"] == "png"
    assert entries[1] == {"status": "rejected", "reason": "MALFORMED_FILE"}


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(image_bytes("TIFF"), id="tiff"),
        pytest.param(image_bytes("BMP"), id="bmp"),
        pytest.param(image_bytes("GIF"), id="gif"),
        pytest.param(image_bytes("WEBP"), id="webp"),
        pytest.param(b"hello, I am text", id="text"),
        pytest.param(b"", id="empty"),
        pytest.param(png("x")[:40], id="truncated-png"),
        pytest.param(jpeg("x")[:30], id="truncated-jpeg"),
        pytest.param(b"%PDF-1.4\nthis is not really a pdf\n%%EOF", id="broken-pdf"),
        pytest.param(pdf([]), id="pdf-without-pages"),
    ],
)
def test_unsupported_or_damaged_files_are_malformed(api: Api, data: bytes) -> None:
    assert _entries(api.upload(data)) == [{"status": "rejected", "reason": "MALFORMED_FILE"}]
    assert api.files().json()["data"] == []


def test_size_limits_are_decimal_megabytes(api: Api) -> None:
    entries = _entries(
        api.upload(png_of_size(2_000_000), png_of_size(2_000_001), pdf_of_size(["a"], 8_000_000))
    )
    assert [e["status"] for e in entries] == ["stored", "rejected", "stored"]
    assert entries[1]["reason"] == "BAD_INPUT"
    assert _entries(api.upload(pdf_of_size(["a"], 8_000_001))) == [
        {"status": "rejected", "reason": "BAD_INPUT"}
    ]


def test_pdf_page_limit(api: Api) -> None:
    entries = _entries(api.upload(pdf([""] * 150), pdf([""] * 151)))
    assert entries[0]["page_count"] == 150
    assert entries[1] == {"status": "rejected", "reason": "PAGE_COUNT_LIMIT_EXCEEDED"}


def test_more_than_five_files_or_none_is_a_validation_error(api: Api, emulator: InProcessEmulator) -> None:
    six = api.upload(*[png(str(i)) for i in range(6)])
    assert six.status_code == 422 and list(six.json()["errors"]) == ["file"] and six.json()["message"]
    none = api.session.post(f"{api.url}/files", data={}, timeout=10)
    assert none.status_code == 422 and "file" in none.json()["errors"]
    assert emulator.stats()["files"]["count"] == 0


def test_unknown_form_field_is_unknown_field(api: Api) -> None:
    answer = api.session.post(
        f"{api.url}/files", files=[("file[]", ("a.png", png("a")))], data={"x": "1"}, timeout=10
    )
    assert answer.status_code == 422 and answer.json()["error"] == "UNKNOWN_FIELD"
    assert api.files().json()["data"] == []


def test_storage_count_limit_refuses_the_whole_request(api: Api, emulator: InProcessEmulator) -> None:
    for batch in range(5):
        api.store(*[png(f"{batch}-{i}") for i in range(5)])
    api.store(*[png(f"5-{i}") for i in range(4)])
    answer = api.upload(png("30th"), png("31st"))
    assert answer.status_code == 422
    assert answer.json()["error"] == "STORAGE_COUNT_EXCEEDED" and answer.json()["message"]
    assert len(api.files().json()["data"]) == 29
    # rejected files do not count: one good file and four bad ones fit in the last slot
    entries = _entries(api.upload(png("30th"), b"bad", b"bad", b"bad", b"bad"))
    assert [e["status"] for e in entries] == ["stored"] + ["rejected"] * 4
    assert api.upload(png("31st")).json()["error"] == "STORAGE_COUNT_EXCEEDED"
    files = emulator.stats()["files"]
    assert files["count"] == 30 and files["max_count"] == 30


def test_storage_size_limit_and_high_water_mark(api: Api, emulator: InProcessEmulator) -> None:
    big = [pdf_of_size([f"big {i}"], 8_000_000) for i in range(13)]
    uuids = api.store(*big[:5]) + api.store(*big[5:10]) + api.store(*big[10:12])
    assert emulator.stats()["files"]["bytes"] == 96_000_000
    answer = api.upload(big[12])
    assert answer.status_code == 422 and answer.json()["error"] == "STORAGE_SIZE_EXCEEDED"
    api.store(pdf_of_size(["fits"], 4_000_000))  # exactly 100 MB is allowed
    for uuid in uuids:
        assert api.delete(uuid).status_code == 200
    files = emulator.stats()["files"]
    assert files == {**files, "count": 1, "bytes": 4_000_000, "max_count": 13, "max_bytes": 100_000_000}


def test_delete_then_404(api: Api) -> None:
    (uuid,) = api.store(png("x"))
    first = api.delete(uuid)
    assert first.status_code == 200 and first.json() == {}
    again = api.delete(uuid)
    assert again.status_code == 404 and again.json() == {}
    assert api.delete("never-existed").status_code == 404


def test_files_expire_24_hours_after_upload(api: Api, emulator: InProcessEmulator) -> None:
    (old,) = api.store(png("old"))
    emulator.advance_clock(23 * 3600)
    (young,) = api.store(png("young"))
    emulator.advance_clock(3600 - 1)
    assert {f["uuid"] for f in api.files().json()["data"]} == {old, young}
    emulator.advance_clock(1)
    assert [f["uuid"] for f in api.files().json()["data"]] == [young]
    assert api.delete(old).status_code == 404
    assert api.images({"engine": ENGINE_FA, "files": [{"uuid": old}]}).status_code == 404
    stats = emulator.stats()["files"]
    assert stats["count"] == 1 and stats["expired"] == 1
