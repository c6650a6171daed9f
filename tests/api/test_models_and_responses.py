"""Parsing what the spec says may vary, and mapping answers to exceptions (no network)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from airflow_provider_delix.api.errors import (
    DelixApiError,
    DelixError,
    DelixInsufficientCreditsError,
    DelixNotFoundError,
    DelixResponseError,
    DelixStorageFullError,
    DelixTransientError,
    DelixValidationError,
)
from airflow_provider_delix.api.models import (
    Engine,
    ErrorCode,
    Extract,
    FileIdentifier,
    PageStatus,
    RejectedFile,
    StoredFile,
    engine_body,
    parse_upload_response,
)
from airflow_provider_delix.api.responses import parse_retry_after, raise_for_status, read_json
from airflow_provider_delix.api.retry import RetryPolicy

STORED = {"uuid": "u1", "status": "stored", "extension": "png", "page_count": 1}
REJECTED = {"status": "rejected", "reason": "MALFORMED_FILE"}


@pytest.mark.parametrize("payload", [{"data": [STORED, REJECTED]}, [STORED, REJECTED]])
def test_upload_answer_with_or_without_data(payload: Any) -> None:
    assert parse_upload_response(payload, expected=2) == [
        StoredFile("u1", "png", 1),
        RejectedFile(ErrorCode.MALFORMED_FILE),
    ]


def test_upload_answer_with_wrong_length_or_status_is_a_response_error() -> None:
    with pytest.raises(DelixResponseError, match="2 upload entries for 3"):
        parse_upload_response({"data": [STORED, REJECTED]}, expected=3)
    with pytest.raises(DelixResponseError, match="unknown status"):
        parse_upload_response([{"status": "weird"}], expected=1)


OTHER = {"uuid": "u2", "status": "stored", "extension": "png", "page_count": 1}


@pytest.mark.parametrize(
    "bad",
    [
        {"status": "queued"},
        {"status": "stored"},  # no uuid: that file cannot be named
        {"uuid": "u3", "status": "stored", "extension": "png", "page_count": "two"},
        {"uuid": "u3", "status": "stored", "extension": "png", "page_count": [1]},
        "u3",
    ],
    ids=["unknown-status", "stored-without-uuid", "page-count-text", "page-count-list", "not-an-object"],
)
def test_an_upload_answer_with_one_unreadable_entry_names_every_stored_file(bad: Any) -> None:
    """The right number of entries: the readable stored ones are on the account all the same."""
    with pytest.raises(DelixResponseError) as info:
        parse_upload_response({"data": [STORED, bad, REJECTED, OTHER]}, expected=4)
    stored_anyway = ("u3",) if isinstance(bad, dict) and bad.get("uuid") else ()
    assert info.value.uuids == ("u1", *stored_anyway, "u2")


@pytest.mark.parametrize("entry", [{}, {"page_count": None}], ids=["absent", "null"])
def test_a_stored_file_without_a_page_count_has_none_not_one(entry: dict[str, Any]) -> None:
    """Read as 1, a PDF's missing count would look like a disagreement with ours (core/chunk_upload)."""
    (stored,) = parse_upload_response({"data": [{"uuid": "u9", "status": "stored", **entry}]}, expected=1)
    assert isinstance(stored, StoredFile) and stored.page_count is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("initial_cost", "free"),
        ("failed_pages", "x"),
        ("returned_credits", {}),
        ("initial_cost", float("inf")),
        ("files", 5),
        ("files", "f1"),
        ("files", {"uuid": "f1"}),
        ("uuid", None),
        ("status", None),
    ],
)
def test_an_extract_that_does_not_fit_is_a_response_error(field: str, value: Any) -> None:
    payload = {"uuid": "e1", "status": "processed", "initial_cost": 200, "files": [], field: value}
    with pytest.raises(DelixResponseError, match=field):
        Extract.from_api({"data": payload})


@pytest.mark.parametrize("drop", ["null", "missing"])
def test_an_extract_that_does_not_say_its_counts_is_kept_with_them_unknown(drop: str) -> None:
    """It answers a paid request: its text and uuid must not be thrown away, nor its cost read as 0."""
    counts = ("initial_cost", "total_files", "total_file_pages", "total_processing_pages")
    payload: dict[str, Any] = {"uuid": "e1", "status": "processed", "files": []}
    payload.update({key: None for key in counts} if drop == "null" else {})
    extract = Extract.from_api({"data": payload})
    assert [getattr(extract, key) for key in counts] == [None] * 4
    odd = Extract.from_api({"data": {**payload, "total_files": "many", "total_processing_pages": [2]}})
    assert (odd.total_files, odd.total_processing_pages) == (None, None), "informational: never fatal"


def test_a_parse_error_names_a_connection_whose_id_is_in_its_text() -> None:
    with pytest.raises(DelixResponseError) as info:
        Extract.from_api({"data": {"status": "processing"}})
    named = info.value.about("extract e1", "extract")  # "extract" is in "...a extract without..."
    assert named.conn_id == "extract" and str(named).endswith("(answer to extract e1, connection 'extract')")


def test_unknown_enum_values_are_kept_as_strings() -> None:
    (rejected,) = parse_upload_response([{"status": "rejected", "reason": "NEW_REASON"}], expected=1)
    assert rejected == RejectedFile("NEW_REASON")


def test_extract_sync_async_and_failed_page_without_text() -> None:
    extract = Extract.from_api(
        {
            "data": {
                "uuid": "e1",
                "status": "processed",
                "file_type": "images",
                "engine": "danlin",
                "language": "fa",
                "total_files": 2,
                "total_file_pages": 2,
                "total_processing_pages": 2,
                "initial_cost": 400,
                "failed_pages": 1,
                "returned_credits": 200,
                "files": [
                    {"uuid": "f1", "pages": [{"number": 1, "status": "processed", "text": "سلام"}]},
                    {"uuid": "f2", "pages": [{"number": 1, "status": "failed"}]},
                ],
            }
        }
    )
    assert extract.is_processed and extract.files[0].pages and extract.files[0].pages[0].text == "سلام"
    failed = extract.files[1].pages[0] if extract.files[1].pages else None
    assert failed is not None and failed.status == PageStatus.FAILED and failed.text is None
    queued = Extract.from_api({"uuid": "e2", "status": "processing", "file_type": "documents"})
    assert not queued.is_processed and queued.files == () and queued.failed_pages is None
    finished = Extract.from_api(
        {"uuid": "e2", "status": "processed", "files": [{"uuid": "f", "pages": "http://x/contents"}]}
    )
    assert finished.files[0].pages is None and finished.files[0].pages_url == "http://x/contents"


def test_engine_bodies_never_carry_unknown_fields() -> None:
    assert engine_body(Engine.PROBE, "fa") == {"name": "probe"}
    assert engine_body("tiho", "en") == {"name": "tiho", "options": {"language": "en"}}
    assert FileIdentifier("u").to_api() == {"uuid": "u"}
    assert FileIdentifier("u", "1-3").to_api() == {"uuid": "u", "page": "1-3"}
    with pytest.raises(ValueError, match="needs a language"):
        engine_body("danlin", None)


def _response(status: int, body: Any = None, headers: dict[str, str] | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = (
        b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    response.headers.update(headers or {})
    return response


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (404, {}, DelixNotFoundError),
        (422, {"message": "x", "errors": {"engine": ["bad"]}}, DelixValidationError),
        (422, {"message": "x", "error": "WRONG_FILE_TYPE"}, DelixApiError),
        (422, {"message": "x", "error": "STORAGE_SIZE_EXCEEDED"}, DelixStorageFullError),
        (422, {"message": "x", "error": "NO_SUFFICIENT_CREDITS"}, DelixInsufficientCreditsError),
        (429, {}, DelixTransientError),
        (502, b"<html>bad gateway</html>", DelixTransientError),
        (413, {}, DelixError),
    ],
)
def test_status_mapping(status: int, body: Any, cls: type[Exception]) -> None:
    with pytest.raises(cls) as info:
        raise_for_status(_response(status, body), conn_id="c", what="a call")
    assert "connection 'c'" in str(info.value)
    assert "<html>" not in str(info.value), "raw bodies never reach a message"


def test_a_validation_answer_says_what_it_is_about() -> None:
    def refusal(errors: Any) -> DelixValidationError:
        body = {"message": "اطلاعات نامعتبر"} if errors is None else {"message": "x", "errors": errors}
        with pytest.raises(DelixValidationError) as info:
            raise_for_status(_response(422, body), conn_id="c", what="a call")
        return info.value

    engine = refusal({"engine.options.language": ["The selected language is invalid."]})
    assert engine.about_engine and not engine.about_uuids
    assert "Check the engine and language" in str(engine)
    gone = refusal({"files.0.uuid": ["invalid"], "files.3.uuid": ["invalid"]})
    assert gone.about_uuids and not gone.about_engine and "files.3.uuid: invalid" in str(gone)
    assert not refusal({"files.0.uuid": ["x"], "files.0.page": ["y"]}).about_uuids
    bare = refusal(None)
    assert not bare.about_uuids and not bare.about_engine and "no details" in str(bare)


def test_non_json_success_is_a_response_error() -> None:
    with pytest.raises(DelixResponseError, match="not JSON"):
        read_json(_response(200, b"<html>"), conn_id="c", what="a call")
    assert read_json(_response(200, None), conn_id="c", what="a call") == {}


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:10 GMT", now=1767225600.0) == 10.0


def test_retry_policy_from_extras_and_overrides() -> None:
    policy = RetryPolicy.from_extras({"max_retries": "2", "extra__delix__retry_wait_max": 3})
    assert policy.max_retries == 2 and policy.retry_wait_max == 3.0
    assert RetryPolicy.from_extras({}, max_retries=9).max_retries == 9
    with pytest.raises(ValueError, match="must be a number"):
        RetryPolicy.from_extras({"max_retries": "many"})
    with pytest.raises(ValueError, match=">= 0"):
        RetryPolicy(max_retries=-1)


def test_every_documented_code_has_a_meaning_and_an_unknown_one_still_reads() -> None:
    from airflow_provider_delix.api.models import ERROR_MEANINGS, ErrorCode, rejection_message

    assert set(ERROR_MEANINGS) == set(ErrorCode)
    assert rejection_message(ErrorCode.PAGE_COUNT_LIMIT_EXCEEDED) == (
        "Delix rejected the file at upload (PAGE_COUNT_LIMIT_EXCEEDED: a PDF over 150 pages)."
    )
    assert rejection_message("NEW_CODE") == (
        "Delix rejected the file at upload (NEW_CODE, a code the API's documentation does not list)."
    )
