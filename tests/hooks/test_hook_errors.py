"""Every error class of the hook, the retry policy, and the key's absence from logs and messages."""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from loopback_servers import RawServer, refused_connection
from pdfs import make_pdf

from airflow_provider_delix.api.errors import (
    DelixApiError,
    DelixAuthError,
    DelixError,
    DelixInsufficientCreditsError,
    DelixRequestError,
    DelixStorageFullError,
    DelixTransientError,
    DelixValidationError,
)
from airflow_provider_delix.api.models import StoredFile
from airflow_provider_delix.api.retry import RetryPolicy
from airflow_provider_delix.emulator.scans import make_png
from airflow_provider_delix.hooks.delix import DelixHook

SECRET = "sk-live-0123456789abcdef-SECRET"


def _calls(emulator: Any, endpoint: str) -> int:
    return int(emulator.stats()["calls"].get(endpoint, 0))


@pytest.fixture
def secret_emulator(emulator_factory: Callable[..., Any]) -> Any:
    return emulator_factory(api_key=SECRET)


def test_wrong_key_is_auth_error_and_never_retried(
    secret_emulator: Any, connect: Callable[..., str], sleeps: Any
) -> None:
    hook = DelixHook(connect(secret_emulator, api_key="wrong-key-xyz"), sleep=sleeps)
    with pytest.raises(DelixAuthError, match="refused the API key of connection 'delix_test'") as info:
        hook.list_files()
    assert info.value.status_code == 401
    assert sleeps.waits == [] and hook.request_counts["GET /files"] == 1


def test_missing_key_is_a_clear_error_before_any_call(
    emulator: Any, connect: Callable[..., str], sleeps: Any
) -> None:
    hook = DelixHook(connect(emulator, api_key=""), sleep=sleeps)
    with pytest.raises(DelixAuthError, match="no API key"):
        hook.list_files()


@pytest.mark.parametrize("pasted", [SECRET + "\n", f"  {SECRET}\r\n", f"\t{SECRET} "])
def test_a_key_pasted_with_surrounding_whitespace_is_sent_stripped(
    secret_emulator: Any, connect: Callable[..., str], sleeps: Any, pasted: str
) -> None:
    """A key read from a secret file ends with a newline: http.client refused the header with a
    ValueError that quoted it, key included."""
    clean = DelixHook(connect(secret_emulator), sleep=sleeps).key_registry().fingerprint
    hook = DelixHook(connect(secret_emulator, api_key=pasted), sleep=sleeps)  # the same connection id
    assert hook.list_files() == []
    assert hook.test_connection()[0]
    assert hook.key_registry().fingerprint == clean, "one account, one registry, however the key was pasted"


@pytest.mark.parametrize("inner", ["\n", "\r", "\x00", "\t", "\x7f", "\u200b"], ids=repr)
def test_a_key_with_a_control_character_inside_is_refused_by_name_never_shown(
    secret_emulator: Any, connect: Callable[..., str], sleeps: Any, inner: str
) -> None:
    head, tail = SECRET[:12], SECRET[12:]
    hook = DelixHook(connect(secret_emulator, api_key=f"{head}{inner}{tail}\n"), sleep=sleeps)
    with pytest.raises(DelixAuthError, match="key of connection 'delix_test' contains a control") as info:
        hook.list_files()
    ok, message = hook.test_connection()
    assert not ok and "key of connection 'delix_test' contains a control" in message
    with pytest.raises(DelixAuthError):
        hook.key_registry()
    for text in (str(info.value), repr(info.value), message):
        assert head not in text and tail not in text
    assert secret_emulator.stats()["calls"] == {}, "refused before any request"


def test_test_connection_never_echoes_an_unexpected_error_text(
    hook: DelixHook, emulator: Any, connect: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Library errors may quote what they were given: http.client quotes a refused header."""

    def refused_header(*args: Any, **kwargs: Any) -> None:
        raise ValueError(f"Invalid header value b'Bearer {SECRET}'")

    monkeypatch.setattr(hook, "_call", refused_header)
    ok, message = hook.test_connection()
    assert not ok and message == "Could not use connection 'delix_test': ValueError"
    monkeypatch.undo()
    ok, message = DelixHook(
        connect(emulator, max_retries="many")
    ).test_connection()  # the provider's own text
    assert not ok and "Connection extra 'max_retries' must be a number, got 'many'." in message


def test_validation_error_carries_fields_and_is_not_retried(hook: DelixHook, sleeps: Any) -> None:
    with pytest.raises(DelixValidationError) as info:
        hook._call("POST", "image-extraction", "a bad body", json={"engine": {"name": "danlin"}, "files": []})
    assert info.value.status_code == 422 and info.value.errors
    assert sleeps.waits == [] and hook.request_counts["POST /image-extraction"] == 1


def test_api_error_carries_the_error_value_and_is_not_retried(hook: DelixHook, sleeps: Any) -> None:
    (pdf,) = hook.upload_files([("doc.pdf", make_pdf(["text"]))])
    assert isinstance(pdf, StoredFile)
    with pytest.raises(DelixApiError, match="WRONG_FILE_TYPE") as info:
        hook.extract_images([pdf.uuid], "danlin", "fa")
    assert info.value.error == "WRONG_FILE_TYPE"
    assert sleeps.waits == [] and hook.request_counts["POST /image-extraction"] == 1


def test_probe_on_images_is_refused_before_any_call(hook: DelixHook) -> None:
    with pytest.raises(ValueError, match="image extraction refuses it"):
        hook.extract_images(["0" * 32], "probe", "fa")
    assert hook.request_counts["POST /image-extraction"] == 0


def test_storage_full_is_its_own_class(hook: DelixHook) -> None:
    for batch in range(6):
        hook.upload_files([(f"{batch}-{i}.png", make_png(f"file {batch} {i}")) for i in range(5)])
    with pytest.raises(DelixStorageFullError, match="STORAGE_COUNT_EXCEEDED") as info:
        hook.upload_files([("one-too-many.png", make_png("31st"))])
    assert info.value.error == "STORAGE_COUNT_EXCEEDED"


def test_insufficient_credits_is_its_own_class(hook: DelixHook, emulator: Any) -> None:
    emulator.configure(credits=100)
    (png,) = hook.upload_files([("a.png", make_png("costs 200"))])
    assert isinstance(png, StoredFile)
    with pytest.raises(DelixInsufficientCreditsError, match="top it up") as info:
        hook.extract_images([png.uuid])
    assert info.value.error == "NO_SUFFICIENT_CREDITS"


def test_429_honours_retry_after_then_gives_up(
    emulator: Any, connect: Callable[..., str], sleeps: Any
) -> None:
    emulator.configure(rate_429=1.0, retry_after=7)
    hook = DelixHook(connect(emulator), sleep=sleeps, retry_policy=RetryPolicy(max_retries=3))
    with pytest.raises(DelixTransientError, match="throttling") as info:
        hook.list_files()
    assert info.value.retry_after == 7
    assert sleeps.waits == [7, 7, 7]
    assert hook.request_counts["GET /files"] == 4


@pytest.mark.parametrize("fault", ["rate_500", "rate_503", "rate_drop"])
def test_transient_faults_are_retried_until_success(
    emulator: Any, connect: Callable[..., str], sleeps: Any, fault: str
) -> None:
    emulator.configure(**{fault: 0.5, "seed": 3})
    hook = DelixHook(connect(emulator, max_retries=30, retry_wait_max=0.5), sleep=sleeps)
    for _ in range(10):
        assert hook.list_files() == []
    assert hook.request_counts["GET /files"] > 10, "some requests must have failed and been retried"
    assert len(sleeps.waits) == hook.request_counts["GET /files"] - 10
    assert all(0 <= wait <= 1.5 for wait in sleeps.waits)


def test_timeout_is_transient(emulator: Any, connect: Callable[..., str], sleeps: Any) -> None:
    emulator.configure(latency_other=1.0)
    hook = DelixHook(connect(emulator, timeout=0.2, max_retries=1), sleep=sleeps)
    with pytest.raises(DelixTransientError, match="did not answer"):
        hook.list_files()
    assert hook.request_counts["GET /files"] == 2


def test_unreachable_host_is_transient_with_plain_words(monkeypatch: pytest.MonkeyPatch, sleeps: Any) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_DELIX_DOWN",
        '{"conn_type": "delix", "host": "http://127.0.0.1:9/v1", "password": "k-123456", '
        '"extra": {"max_retries": 2}}',
    )
    hook = DelixHook("delix_down", sleep=sleeps)
    with pytest.raises(
        DelixTransientError, match=re.escape("Could not reach Delix at http://127.0.0.1:9/v1")
    ):
        hook.list_files()
    assert len(sleeps.waits) == 2
    ok, message = hook.test_connection()
    assert not ok and "unreachable" in message


def test_test_connection_sends_one_request_and_never_waits_out_the_retry_policy(
    monkeypatch: pytest.MonkeyPatch, sleeps: Any
) -> None:
    """The UI's Test button blocked for the whole backoff (33 s against a refused port)."""
    port = refused_connection(monkeypatch, "delix_down", password=SECRET, max_retries=5, timeout=3)
    hook = DelixHook("delix_down", sleep=sleeps)
    ok, message = hook.test_connection()
    assert not ok and message.startswith(
        f"Delix is unreachable or failing: Could not reach Delix at http://127.0.0.1:{port}/v1"
    )
    assert "connection 'delix_down'" in message and SECRET not in message
    assert sleeps.waits == [] and hook.request_counts["GET /files"] == 1, "one attempt, no retry"


def test_test_connection_says_whether_the_key_works(
    secret_emulator: Any, connect: Callable[..., str], sleeps: Any
) -> None:
    ok, message = DelixHook(connect(secret_emulator), sleep=sleeps).test_connection()
    assert ok and "key works" in message
    ok, message = DelixHook(connect(secret_emulator, api_key="nope-nope"), sleep=sleeps).test_connection()
    assert not ok and "refused" in message


def test_our_extras_never_become_http_headers(
    emulator: Any, connect: Callable[..., str], sleeps: Any
) -> None:
    conn_id = connect(
        emulator,
        timeout=5,
        max_retries=1,
        retry_wait_max=2,
        retry_max_elapsed=9,
        max_connections=4,
        **{"X-Trace": "kept"},
    )
    hook = DelixHook(conn_id, sleep=sleeps)
    headers = {k.lower() for k in hook.get_conn().headers}
    assert "x-trace" in headers, "HttpHook's documented behaviour for unknown extras is kept"
    assert not headers & {"timeout", "max_retries", "retry_wait_max", "retry_max_elapsed", "max_connections"}
    assert (
        hook.timeout == 5 and hook.retry_policy.max_retries == 1 and hook.retry_policy.retry_max_elapsed == 9
    )
    assert "authorization" not in headers, "the key is added per request by the AuthBase"


def test_the_key_appears_in_no_log_line_and_no_exception_text(
    secret_emulator: Any,
    connect: Callable[..., str],
    sleeps: Any,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    good = DelixHook(connect(secret_emulator), sleep=sleeps, retry_policy=RetryPolicy(max_retries=2))
    texts += [repr(good), repr(good.get_conn().auth), str(good.get_conn().headers)]
    secret_emulator.configure(rate_429=1.0)
    for call in (good.list_files, lambda: good.extract_images(["x"]), lambda: good.get_extract("x")):
        with pytest.raises(DelixError) as info:
            call()
        texts += [str(info.value), repr(info.value), str(info.value.__cause__), str(info.value.__context__)]
    secret_emulator.configure(rate_429=0.0)
    for call in (lambda: good.get_extract("missing"), lambda: good.extract_images(["missing"])):
        with pytest.raises(DelixError) as info:
            call()
        texts.append(str(info.value))
    bad = DelixHook(connect(secret_emulator, api_key=SECRET + "-wrong"), sleep=sleeps)
    with pytest.raises(DelixAuthError) as info:
        bad.list_files()
    texts += [str(info.value), bad.test_connection()[1]]
    captured = capsys.readouterr()
    everything = "\n".join([*texts, caplog.text, captured.out, captured.err])
    assert SECRET not in everything
    assert caplog.records, "the retries must have logged something"


def test_general_exception_is_retried_for_free_requests_only(
    emulator: Any, connect: Callable[..., str], sleeps: Any
) -> None:
    # A 422 GENERAL_EXCEPTION refuses the request (nothing stored, charged or deleted): an
    # upload, a read or a delete is tried again; an extraction is not (its files go one by one).
    emulator.configure(rate_general_exception=0.5, seed=5)
    hook = DelixHook(connect(emulator, max_retries=30, retry_wait_max=0.5), sleep=sleeps)
    for n in range(6):
        (stored,) = hook.upload_files([(f"p{n}.png", make_png(f"page {n}", language="en"))])
        assert isinstance(stored, StoredFile) and stored.uuid in {f.uuid for f in hook.list_files()}
        assert hook.delete_file(stored.uuid)
    assert sleeps.waits, "some requests were refused and retried"
    emulator.configure(rate_general_exception=0.0)
    (stored,) = hook.upload_files([("x.png", make_png("x", language="en"))])
    emulator.configure(rate_general_exception=1.0)
    with pytest.raises(DelixApiError) as info:
        hook.extract_images([stored.uuid])
    assert info.value.error == "GENERAL_EXCEPTION" and hook.request_counts["POST /image-extraction"] == 1


def _redirect_to_itself(sock: socket.socket, line: str) -> None:
    path = line.split(" ")[1]
    head = f"HTTP/1.1 302 Found\r\nLocation: {path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    sock.sendall(head.encode())


@pytest.mark.parametrize("path", ["lean", "session"])  # the session's path: a trust_env extra
def test_every_other_requests_failure_is_a_final_delix_error_naming_the_connection(
    connect: Callable[..., str], sleeps: Any, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A redirect loop, an invalid URL or a body requests cannot encode escaped the hook raw."""
    session_only = {"trust_env": True} if path == "session" else {}
    with RawServer(_redirect_to_itself) as server:
        conn_id = connect(SimpleNamespace(base_url=server.base_url, api_key=SECRET), **session_only)
        hook = DelixHook(conn_id, sleep=sleeps)
        with pytest.raises(DelixRequestError, match="redirects in a loop") as loop:
            hook.list_files()
        assert hook.request_counts["GET /files"] == 1 and sleeps.waits == [], "a configuration error"
        with pytest.raises(DelixRequestError, match="cannot be encoded as JSON") as body:
            hook._call("POST", "image-extraction", "a NaN body", json={"x": float("nan")}, paid=True)
    monkeypatch.setenv(
        "AIRFLOW_CONN_DELIX_BADURL",
        f'{{"conn_type": "delix", "host": "http://exa mple.com/v1", "password": "{SECRET}"}}',
    )
    bad = DelixHook("delix_badurl", sleep=sleeps)
    with pytest.raises(DelixRequestError, match="do not make a valid URL") as url:
        bad.list_files()
    assert bad.request_counts["GET /files"] == 1
    for error in (loop.value, body.value, url.value):
        assert "connection 'delix_" in str(error) and SECRET not in str(error) and SECRET not in repr(error)
    assert "TooManyRedirects" in str(loop.value) and "InvalidJSONError" in str(body.value)
    assert "InvalidURL" in str(url.value)


def _cp1256_busy(sock: socket.socket, request_line: str) -> None:
    """A 422 whose Persian message is in cp1256, as a server on a legacy code page answers."""
    body = '{"message": "خطا", "error": "FILE_UNDER_PROCESSING"}'.encode("cp1256")
    head = f"HTTP/1.1 422 X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    sock.sendall(head.encode() + b"Connection: close\r\n\r\n" + body)


@pytest.mark.parametrize("path", ["lean", "session"])  # the session's path: a trust_env extra
def test_an_error_body_not_in_utf8_keeps_its_code_and_says_its_message_is_mangled(
    connect: Callable[..., str], sleeps: Any, path: str
) -> None:
    """The ErrorEnum value is ASCII: it must decide the error class whatever the body's encoding."""
    session_only = {"trust_env": True} if path == "session" else {}
    with RawServer(_cp1256_busy) as server:
        hook = DelixHook(connect(SimpleNamespace(base_url=server.base_url, api_key=SECRET), **session_only))
        with pytest.raises(DelixApiError) as info:
            hook.delete_file("u1")
    assert info.value.error == "FILE_UNDER_PROCESSING"
    assert "Delix said: " in str(info.value) and "not valid UTF-8" in str(info.value)
    assert info.value.api_message and "\ufffd" in info.value.api_message
