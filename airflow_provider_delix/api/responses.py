"""Turn a Delix HTTP answer into parsed JSON or the right exception.

Kept apart from the hook so the mapping is plain Python, unit-testable, and the single place
where a response body is read for an error. Only the API's own ``message``/``error``/``errors``
fields ever reach an exception text, truncated: a raw body is never logged or raised, and the
request's headers (which carry the key) are never touched here.
"""

from __future__ import annotations

import email.utils
import json
import socket
import time
from collections.abc import Mapping
from typing import Any, Protocol

import requests
import urllib3
import urllib3.connection

from airflow_provider_delix.api.errors import (
    DelixApiError,
    DelixAuthError,
    DelixError,
    DelixInsufficientCreditsError,
    DelixNotFoundError,
    DelixRequestError,
    DelixResponseError,
    DelixStorageFullError,
    DelixTransientError,
    DelixValidationError,
    about_engine,
)
from airflow_provider_delix.api.models import ErrorCode

_MESSAGE_LIMIT = 300
# Statuses a gateway or proxy answers when it gave up waiting for Delix, or lost its answer:
# 502/504, Cloudflare's 520-524 (524: "a timeout occurred") and the 598/599 some proxies use
# for a network read timeout. The request may have reached Delix and been applied.
GATEWAY_LOST = (502, 504, 520, 521, 522, 523, 524, 598, 599)
# The 5xx that say the request was not applied: 500 (a project decision: Delix's own failure,
# before it charged), 501 (not implemented) and 503 (unavailable: refused, may say Retry-After).
# Every other 5xx is read as GATEWAY_LOST is: an extraction re-sent after an applied one is
# paid twice, while treating a refused one as maybe applied only costs one retry less.
NOT_APPLIED_5XX = (500, 501, 503)

_ADVICE = {
    ErrorCode.STORAGE_COUNT_EXCEEDED: "the account already stores 30 files; delete some or wait for "
    "other uploaders sharing this key to finish",
    ErrorCode.STORAGE_SIZE_EXCEEDED: "the account's 100 MB of storage is full; delete files or wait",
    ErrorCode.NO_SUFFICIENT_CREDITS: "the account has run out of credits; top it up on the Delix "
    "dashboard, then re-run",
    ErrorCode.UNKNOWN_FIELD: "the request carried a field the API does not know (a client bug: "
    "please report it)",
    ErrorCode.WRONG_FILE_TYPE: "this endpoint does not take that file type (PDFs go to document "
    "extraction, images to image extraction)",
    ErrorCode.DUPLICATED_FILE: "the same file was named twice in one request",
    ErrorCode.FILE_UNDER_PROCESSING: "the file is used by a running extraction; delete it once "
    "the extraction has finished",
    ErrorCode.INVALID_FILE_PAGE: "the page selection does not fit the file",
    ErrorCode.EXCEEDING_FILE_PAGE: "more pages were requested than this mode allows",
    ErrorCode.GENERAL_EXCEPTION: "an unexpected failure on Delix's side refused the request, and "
    "nothing was applied (stored or charged); it may be sent again, its files one by one if "
    "it named several",
}


class HttpAnswer(Protocol):
    """What is read of an answer: ``requests.Response`` and the hook's lean answer both have it."""

    @property
    def status_code(self) -> int: ...

    @property
    def content(self) -> bytes: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(when.timestamp() - current, 0.0)


def _clip(text: Any) -> str | None:
    if text is None:
        return None
    clipped: str = str(text)
    return clipped if len(clipped) <= _MESSAGE_LIMIT else clipped[:_MESSAGE_LIMIT] + "…"


def _not_json(status: int, *, conn_id: str, what: str) -> DelixResponseError:
    return DelixResponseError(
        f"Delix answered {what} with HTTP {status} but a body that is not JSON "
        f"(connection '{conn_id}'). Is the connection's host really the Delix API?",
        conn_id=conn_id,
        status_code=status,
    )


def read_json(response: HttpAnswer, *, conn_id: str, what: str) -> Any:
    """The parsed body of a successful answer; a body that is not JSON is a DelixResponseError."""
    return read_json_bytes(response.content, response.status_code, conn_id=conn_id, what=what)


def json_or_none(content: bytes) -> Any:
    """``content`` parsed as JSON, or None when it is empty or not JSON (for any HTTP client)."""
    try:
        return json.loads(content) if content.strip() else None
    except (ValueError, UnicodeDecodeError):
        return None


def error_json(content: bytes) -> Any:
    """The parsed body of an error answer, or None when it is empty or not JSON.

    Unlike a success body (whose text must never be silently altered), an error body that is
    not valid UTF-8 -- a server or gateway answering in a legacy encoding such as cp1256 -- is
    decoded with its bad bytes replaced: the ErrorEnum values are ASCII, so the ``error`` code
    survives and decides what the caller does, and the message is shown mangled, not dropped.
    """
    payload = json_or_none(content)
    if payload is None and content.strip():
        try:
            payload = json.loads(content.decode("utf-8", errors="replace").lstrip("\ufeff"))
        except ValueError:
            return None
    return payload


def read_json_bytes(content: bytes, status: int, *, conn_id: str, what: str) -> Any:
    """The parsed body of a successful answer from its bytes (any HTTP client); ``{}`` when empty."""
    payload = json_or_none(content)
    if payload is None and content.strip():
        raise _not_json(status, conn_id=conn_id, what=what)
    return {} if payload is None else payload


def timeout_error(
    what: str, seconds: float, *, conn_id: str, maybe_applied: bool = True
) -> DelixTransientError:
    """No answer within the read timeout: the request was sent, so Delix may have applied it."""
    return DelixTransientError(
        f"Delix did not answer {what} within {seconds:.0f} s (connection '{conn_id}').",
        conn_id=conn_id,
        maybe_applied=maybe_applied,
    )


def unreachable_error(
    base_url: str, what: str, error: BaseException, *, conn_id: str, maybe_applied: bool = False
) -> DelixTransientError:
    """The connection failed (refused, reset, DNS); only the error's type is shown, never its text.

    ``maybe_applied``: the connection broke after the request was sent (see :func:`never_reached`).
    """
    if maybe_applied:
        return DelixTransientError(
            f"The connection to Delix at {base_url} broke after {what} was sent, before its answer "
            f"(connection '{conn_id}'): {type(error).__name__}. Delix may have applied it.",
            conn_id=conn_id,
            maybe_applied=True,
        )
    return DelixTransientError(
        f"Could not reach Delix at {base_url} for {what} (connection '{conn_id}'): "
        f"{type(error).__name__}. Check the host and the network.",
        conn_id=conn_id,
    )


# Failures that happen before a byte of the request can reach the server, whatever their cause.
# Not TLS errors as such: the same SSLError wraps a refused handshake and a TLS stream that
# broke while the answer was read, after the whole request was sent (see _raised_connecting).
_NEVER_SENT: tuple[type[BaseException], ...] = (
    requests.ConnectTimeout,
    urllib3.exceptions.NewConnectionError,  # refused, unreachable, DNS (NameResolutionError)
    urllib3.exceptions.ConnectTimeoutError,
    ConnectionRefusedError,
    socket.gaierror,
)
# urllib3 opens a connection (TCP, a proxy tunnel, the TLS handshake) in these methods, before
# it writes the request; nothing in them sends a byte of it.
_CONNECTING = frozenset(
    {urllib3.connection.HTTPConnection.connect.__code__, urllib3.connection.HTTPSConnection.connect.__code__}
)


def _raised_connecting(error: BaseException) -> bool:
    """Whether ``error`` was raised inside urllib3's ``connect`` (its traceback passes there)."""
    frame = error.__traceback__
    while frame is not None:
        if frame.tb_frame.f_code in _CONNECTING:
            return True
        frame = frame.tb_next
    return False


def never_reached(error: BaseException) -> bool:
    """Whether a ``requests`` error happened before the request was sent.

    requests wraps urllib3's errors (``ConnectionError(MaxRetryError(reason=...))``), so the
    error, its arguments, ``reason`` and causes are searched for a connect-phase failure: one
    of :data:`_NEVER_SENT`, or any error raised while urllib3 was connecting (a TLS handshake
    refused or timed out). Any other failure (a reset, ``RemoteDisconnected``, a proxy dropping
    the line, a TLS error while the answer was read) may have come after the server received
    the request, and so may one whose origin cannot be told (no traceback): the safe reading
    for a paid request.
    """
    seen: set[int] = set()
    todo: list[BaseException] = [error]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, _NEVER_SENT) or _raised_connecting(current):
            return True
        linked = [*current.args, getattr(current, "reason", None), current.__cause__, current.__context__]
        todo.extend(e for e in linked if isinstance(e, BaseException))
    return False


# An answer that began (its status line arrived, so the request was sent) and then broke off
# (IncompleteRead, a bad chunk, the connection dropped) or could not be decoded (Content-Encoding).
BROKEN_ANSWER: tuple[type[requests.RequestException], ...] = (
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
# What requests raises for a request that got no whole answer: transport_error classifies it.
NO_ANSWER: tuple[type[requests.RequestException], ...] = (
    requests.Timeout,
    requests.ConnectionError,
    *BROKEN_ANSWER,
)


def transport_error(
    error: requests.RequestException, base_url: str, what: str, read_timeout: float, *, conn_id: str
) -> DelixTransientError:
    """A request that got no whole HTTP answer (one of :data:`NO_ANSWER`), classified: never
    reached the server, or maybe applied (a timeout, a drop after sending, a broken answer)."""
    if isinstance(error, BROKEN_ANSWER):
        return DelixTransientError(
            f"The answer of Delix at {base_url} to {what} broke off or could not be decoded "
            f"(connection '{conn_id}'): {type(error).__name__}. Delix may have applied the request.",
            conn_id=conn_id,
            maybe_applied=True,
        )
    reached = not never_reached(error)
    if isinstance(error, requests.Timeout) and reached:
        return timeout_error(what, read_timeout, conn_id=conn_id)
    return unreachable_error(base_url, what, error, conn_id=conn_id, maybe_applied=reached)


_REQUEST_ADVICE: tuple[tuple[type[requests.RequestException], str], ...] = (
    (requests.TooManyRedirects, "the host redirects in a loop: check the connection's host and schema"),
    (requests.exceptions.InvalidJSONError, "the request body cannot be encoded as JSON (a client bug)"),
    (requests.exceptions.InvalidHeader, "a header is not valid (every unknown extra is sent as a header)"),
    (requests.exceptions.InvalidProxyURL, "the proxy URL is not valid: check the proxy settings"),
    (requests.exceptions.InvalidURL, "the connection's host, schema and port do not make a valid URL"),
    (requests.exceptions.MissingSchema, "the connection's host, schema and port do not make a valid URL"),
    (requests.exceptions.InvalidSchema, "the connection's URL scheme must be http or https"),
)


def request_error(error: requests.RequestException, base_url: str, what: str, *, conn_id: str) -> DelixError:
    """Any other ``requests`` failure (not one of :data:`NO_ANSWER`), as the provider's error.

    A redirect loop, an invalid URL, header or body is a configuration error: final, sending
    again fails the same way. A ``RetryError`` (a caller's adapter retried error answers until
    it gave up) had answers, so the request may have been applied: transient, maybe applied.
    Only the error's class is shown: a library's text may quote a header, key included.
    """
    name = type(error).__name__
    if isinstance(error, requests.exceptions.RetryError):
        return DelixTransientError(
            f"Delix at {base_url} kept answering {what} with errors until the adapter's own retries "
            f"gave up (connection '{conn_id}'): {name}. Delix may have applied the request.",
            conn_id=conn_id,
            maybe_applied=True,
        )
    advice = next((text for cls, text in _REQUEST_ADVICE if isinstance(error, cls)), "not retried")
    return DelixRequestError(
        f"Could not send {what} to Delix at {base_url} (connection '{conn_id}'): {name}; {advice}.",
        conn_id=conn_id,
    )


def error_text(error: BaseException) -> str:
    """What may be shown of an unexpected error: its text when this provider raised it (its
    messages never quote the key), else only its class: a library's text may quote what it was
    given, as ``http.client`` quotes a header it refuses, ``Bearer <key>`` included."""
    frame = error.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    module = frame.tb_frame.f_globals.get("__name__", "") if frame is not None else ""
    own = module.startswith("airflow_provider_delix.")
    return f"{type(error).__name__}: {error}" if own else type(error).__name__


def raise_for_status(response: HttpAnswer, *, conn_id: str, what: str) -> None:
    """Raise the exception class that tells a DAG author what to do; return on 2xx."""
    if 200 <= response.status_code < 300:
        return
    raise_for_answer(
        response.status_code,
        error_json(response.content),
        response.headers.get("Retry-After"),
        conn_id=conn_id,
        what=what,
    )


def raise_for_answer(
    status: int, body: Any, retry_after_header: str | None, *, conn_id: str, what: str
) -> None:
    """:func:`raise_for_status` from the parts of an answer: status, parsed JSON body (or None)
    and the ``Retry-After`` header, so every HTTP client maps errors the same way. Parse the
    body with :func:`error_json`, which keeps the ``error`` code of a body that is not UTF-8."""
    if 200 <= status < 300:
        return
    fields = body if isinstance(body, Mapping) else {}
    api_message = _clip(fields.get("message"))
    suffix = f" Delix said: {api_message}" if api_message else ""
    if api_message and "\ufffd" in api_message:  # error_json replaced bytes that were not UTF-8
        suffix += " (the message was not valid UTF-8: its unreadable characters are shown as \ufffd)"
    common: dict[str, Any] = {"conn_id": conn_id, "status_code": status, "api_message": api_message}

    if status in (401, 403):
        raise DelixAuthError(
            f"Delix refused the API key of connection '{conn_id}' (HTTP {status}) for {what}. "
            "Put a valid key from the Delix dashboard in the connection's password field.",
            **common,
        )
    if status == 404:
        raise DelixNotFoundError(
            f"Delix found nothing for {what} (HTTP 404, connection '{conn_id}'): the file or extract "
            "does not exist, has expired (files live 24 h), or was deleted.",
            **common,
        )
    if status == 422:
        error = fields.get("error")
        if error:
            code = str(error)
            advice = _ADVICE.get(code, "see the troubleshooting page of the provider's docs")  # type: ignore[call-overload]
            text = f"Delix rejected {what} with {code} (connection '{conn_id}'): {advice}.{suffix}"
            cls: type[DelixApiError] = DelixApiError
            if code in (ErrorCode.STORAGE_COUNT_EXCEEDED, ErrorCode.STORAGE_SIZE_EXCEEDED):
                cls = DelixStorageFullError
            elif code == ErrorCode.NO_SUFFICIENT_CREDITS:
                cls = DelixInsufficientCreditsError
            raise cls(text, error=code, **common)
        errors = fields.get("errors")
        clean: dict[str, list[str]] = {}
        if isinstance(errors, Mapping):
            clean = {
                str(k): [str(_clip(m)) for m in (v if isinstance(v, list) else [v])]
                for k, v in errors.items()
            }
        detail = "; ".join(f"{k}: {', '.join(v)}" for k, v in clean.items()) or "no details"
        if about_engine(clean):
            detail += (
                ". Check the engine and language sent (danlin or tiho with fa, en, ar or tr; probe "
                "without a language, for PDFs only)"
            )
        raise DelixValidationError(
            f"Delix rejected {what} as invalid (HTTP 422, connection '{conn_id}'): {detail}.{suffix}",
            errors=clean,
            **common,
        )
    if status >= 500 and status not in NOT_APPLIED_5XX:
        # A gateway gave up waiting for Delix, or a 5xx that does not say the request was
        # refused: Delix may have applied it (the retry policy re-sends a paid one at most once).
        who = "A gateway in front of Delix" if status in GATEWAY_LOST else "Delix or a gateway in front of it"
        raise DelixTransientError(
            f"{who} answered HTTP {status} to {what} (connection '{conn_id}'): "
            "the answer is lost and Delix may have applied the request.",
            retry_after=parse_retry_after(retry_after_header),
            maybe_applied=True,
            **common,
        )
    if status == 429 or status >= 500:
        retry_after = parse_retry_after(retry_after_header)
        kind = "is throttling requests" if status == 429 else "had a server error"
        raise DelixTransientError(
            f"Delix {kind} (HTTP {status}) on {what}, connection '{conn_id}'.",
            retry_after=retry_after,
            **common,
        )
    raise DelixError(
        f"Delix answered {what} with unexpected HTTP {status} (connection '{conn_id}').{suffix}",
        **common,
    )
