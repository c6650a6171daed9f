"""The hook's lean path (hooks/_transport.py) sends what the session would and fails the same way.

Each comparison runs the same call twice, once on the lean path and once with it switched off
(``hook._lean = None``: the session's ``request``), and checks the outcome is the same: result,
exception class and message, ``maybe_applied``, status, attempts counted by the emulator.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
import requests
import urllib3
from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    DecodeError,
    InvalidHeader,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from airflow_provider_delix.api.errors import DelixError
from airflow_provider_delix.api.retry import RetryPolicy
from airflow_provider_delix.emulator.scans import make_png
from airflow_provider_delix.hooks.delix import DelixHook

SECRET = "sk-live-lean-0123456789-SECRET"
NO_RETRY = RetryPolicy(max_retries=0)


def _outcome(hook: DelixHook, call: Callable[[DelixHook], Any], *, lean: bool) -> tuple[Any, ...]:
    hook.get_conn()
    if not lean:
        hook._lean = None
    try:
        return ("ok", call(hook))
    except DelixError as error:
        applied = getattr(error, "maybe_applied", None)
        return (type(error).__name__, str(error), applied, error.status_code, error.lost_attempts)


def _same_on_both_paths(
    make_hook: Callable[[], DelixHook], call: Callable[[DelixHook], Any], reset: Callable[[], None]
) -> tuple[Any, ...]:
    reset()
    lean_hook = make_hook()
    lean = _outcome(lean_hook, call, lean=True)
    assert lean_hook._lean is not None, "the lean path must have been used"
    reset()
    plain = _outcome(make_hook(), call, lean=False)
    assert lean == plain
    return lean


def test_the_lean_path_serves_every_request(hook: DelixHook, monkeypatch: Any) -> None:
    session = hook.get_conn()
    sent: list[str] = []
    real = session.request
    monkeypatch.setattr(
        session, "request", lambda method, url, **kw: sent.append(method) or real(method, url, **kw)
    )
    (stored,) = hook.upload_files([("a.png", make_png(text="lean"))])
    extract = hook.extract_images([stored.uuid])
    assert hook.get_extract(extract.uuid).uuid == extract.uuid
    assert [f.uuid for f in hook.list_files()] == [stored.uuid]
    assert hook.delete_file(stored.uuid) is True
    assert hook.delete_file(stored.uuid) is False  # 404: gone
    assert sent == [] and hook._lean is not None and hook._lean.enabled
    assert extract.files[0].pages is not None and "lean" in str(extract.files[0].pages[0].text)
    assert "test-key" not in repr(hook._lean)


def test_the_lean_request_is_the_one_requests_prepares(hook: DelixHook, monkeypatch: Any) -> None:
    """Headers (the key included), body and path of a JSON POST, an upload and a DELETE."""
    session, lean = hook.get_conn(), hook._lean
    assert lean is not None
    captured: list[dict[str, Any]] = []

    def capture(pool: Any, method: str, url: str, body: Any = None, headers: Any = None, **kw: Any) -> Any:
        captured.append({"method": method, "url": url, "body": body, "headers": dict(headers)})
        raise ReadTimeoutError(None, url, "stop here")  # type: ignore[arg-type]

    def boundary_free(request: dict[str, Any]) -> dict[str, Any]:
        kind = request["headers"].get("Content-Type", "")
        if "boundary=" in kind:
            boundary = kind.split("boundary=")[1]
            request["body"] = request["body"].replace(boundary.encode(), b"B")
            request["headers"]["Content-Type"] = kind.replace(boundary, "B")
        return request

    monkeypatch.setattr(urllib3.HTTPConnectionPool, "urlopen", capture)
    files = [("a.png", b"\x89PNG one"), ("b.jpg", b"\xff\xd8 two")]
    multipart = [("file[]", (name, data, "application/octet-stream")) for name, data in files]
    cases = [
        ("POST", "image-extraction", {"json": {"engine": {"name": "danlin"}, "files": [{"uuid": "u"}]}}, {}),
        ("POST", "files", {"files": multipart}, {"files": files}),
        ("DELETE", "files/0000-aaaa", {}, {}),
        ("GET", "extracts/e/files/f/contents", {"params": {"page": 2}}, {}),
    ]
    for method, endpoint, by_session, by_lean in cases:
        for send in (
            lambda: session.request(method, f"{hook.base_url}/{endpoint}", timeout=(1, 1), **by_session),
            lambda: lean.send(method, endpoint, timeout=(1, 1), **(by_lean or by_session)),
        ):
            with pytest.raises(requests.ReadTimeout):
                send()
        plain, lean_sent = (boundary_free(r) for r in captured[-2:])
        assert lean_sent == plain
        assert plain["headers"]["Authorization"] == "Bearer test-key"


@pytest.mark.parametrize(
    ("config", "call"),
    [
        pytest.param(
            {}, lambda h: h.delete_file("00000000-0000-0000-0000-000000000000", missing_ok=False), id="404"
        ),
        pytest.param({"rate_429": 1.0, "retry_after": 3}, lambda h: h.list_files(), id="429"),
        pytest.param(
            {"rate_500": 1.0}, lambda h: h.get_extract("00000000-0000-0000-0000-000000000000"), id="500"
        ),
        pytest.param({"rate_drop": 1.0}, lambda h: h.list_files(), id="dropped"),
        pytest.param({"latency_other": 0.6}, lambda h: h.list_files(), id="read-timeout"),
        pytest.param({"latency_delete": 0.6}, lambda h: h.delete_file("x-1"), id="delete-timeout"),
    ],
)
def test_failures_are_classified_alike(
    emulator_factory: Callable[..., Any], connect: Callable[..., str], sleeps: Any, config: Any, call: Any
) -> None:
    emulator = emulator_factory(api_key=SECRET)
    conn_id = connect(emulator, timeout=0.3)

    def make() -> DelixHook:
        return DelixHook(conn_id, sleep=sleeps, retry_policy=RetryPolicy(max_retries=1))

    outcome = _same_on_both_paths(make, call, lambda: (emulator.reset(), emulator.configure(**config)))
    assert outcome[0] != "ok" and SECRET not in outcome[1]


def test_paid_lost_answers_and_wrong_keys_alike(
    emulator_factory: Callable[..., Any], connect: Callable[..., str], sleeps: Any
) -> None:
    emulator = emulator_factory(api_key=SECRET)

    def extract_lost(hook: DelixHook) -> Any:
        (stored,) = hook.upload_files([("a.png", make_png(text="x"))])
        emulator.configure(
            rate_lost_after_apply=1.0, lost_after_apply_kinds="502", lost_after_apply_on="extraction"
        )
        return hook.extract_images([stored.uuid])

    conn_id = connect(emulator)
    paid = _same_on_both_paths(lambda: DelixHook(conn_id, sleep=sleeps), extract_lost, emulator.reset)
    assert paid[0] == "DelixTransientError" and paid[2] is True and paid[4] == 2  # sent twice, then raised
    wrong = connect(emulator, api_key="wrong-key-xyz")
    refused = _same_on_both_paths(
        lambda: DelixHook(wrong, sleep=sleeps), lambda h: h.list_files(), emulator.reset
    )
    assert refused[0] == "DelixAuthError" and refused[3] == 401


def test_unreachable_host_never_reached_alike(connect: Callable[..., str], sleeps: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: connections are refused
    conn_id = connect(SimpleNamespace(base_url=f"http://127.0.0.1:{port}/v1", api_key=SECRET))
    outcome = _same_on_both_paths(
        lambda: DelixHook(conn_id, sleep=sleeps, retry_policy=NO_RETRY),
        lambda h: h.list_files(),
        lambda: None,
    )
    assert outcome[0] == "DelixTransientError" and outcome[2] is False and SECRET not in outcome[1]


URLLIB3_FAILURES = [
    NewConnectionError(None, "refused"),  # type: ignore[arg-type]
    MaxRetryError(None, "/", NewConnectionError(None, "refused")),  # type: ignore[arg-type]
    MaxRetryError(None, "/", ConnectTimeoutError("connect")),  # type: ignore[arg-type]
    MaxRetryError(None, "/", SSLError("tls")),  # type: ignore[arg-type]
    MaxRetryError(None, "/", ProtocolError("reset")),  # type: ignore[arg-type]
    ReadTimeoutError(None, "/", "read"),  # type: ignore[arg-type]
    ProtocolError("Connection aborted.", ConnectionResetError()),
    SSLError("tls"),
    ClosedPoolError(None, "closed"),  # type: ignore[arg-type]
    InvalidHeader("bad"),
    ConnectionResetError(),
]
BODY_FAILURES = [ProtocolError("cut"), ReadTimeoutError(None, "/", "read"), DecodeError("gzip")]  # type: ignore[arg-type]


def _raised_by_both(hook: DelixHook) -> tuple[BaseException, BaseException]:
    """The same GET through requests' session and through the lean path: what each raised."""
    session, lean = hook.get_conn(), hook._lean
    assert lean is not None
    with pytest.raises(Exception) as by_session:
        session.request("GET", f"{hook.base_url}/files", timeout=(1, 1))
    with pytest.raises(Exception) as by_lean:
        lean.send("GET", "files", timeout=(1, 1))
    return by_session.value, by_lean.value


@pytest.mark.parametrize("failure", URLLIB3_FAILURES, ids=lambda e: type(e).__name__)
def test_urllib3_errors_are_wrapped_as_requests_wraps_them(
    hook: DelixHook, monkeypatch: pytest.MonkeyPatch, failure: Exception
) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise failure

    monkeypatch.setattr(urllib3.HTTPConnectionPool, "urlopen", fail)
    by_session, by_lean = _raised_by_both(hook)
    assert type(by_lean) is type(by_session)
    assert isinstance(by_lean, requests.RequestException) or by_lean is failure


@pytest.mark.parametrize("failure", BODY_FAILURES, ids=lambda e: type(e).__name__)
def test_errors_reading_the_body_are_wrapped_alike(
    hook: DelixHook, monkeypatch: pytest.MonkeyPatch, failure: Exception
) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise failure

    monkeypatch.setattr(urllib3.HTTPResponse, "read", fail)
    monkeypatch.setattr(urllib3.HTTPResponse, "stream", lambda self, *a, **k: iter([fail()]))
    by_session, by_lean = _raised_by_both(hook)
    assert type(by_lean) is type(by_session)


@pytest.mark.parametrize(
    "extra",
    [
        {"proxies": {"http": "http://proxy.invalid:3128"}},
        {"trust_env": True},
    ],
    ids=["proxy-extra", "trust_env-extra"],
)
def test_proxies_and_per_request_environment_keep_the_session_path(
    emulator: Any, connect: Callable[..., str], extra: dict[str, Any]
) -> None:
    hook = DelixHook(connect(emulator, **extra))
    hook.get_conn()
    assert hook._lean is None


def test_a_proxy_in_the_environment_keeps_the_session_path(
    emulator: Any, connect: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    hook = DelixHook(connect(emulator))
    assert hook.list_files() == [] and hook._lean is None


class _Answering(BaseHTTPRequestHandler):
    """``/v1/files``: a redirect to ``/v1/stored`` (``redirect``), else a list that sets a cookie."""

    redirect = True
    seen: ClassVar[list[tuple[str, str | None, str | None]]] = []

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization"), self.headers.get("Cookie")))
        if self.path == "/v1/files" and self.redirect:
            self.send_response(307)
            self.send_header("Location", "/v1/stored")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps({"data": []}).encode()
        self.send_response(200)
        if not self.redirect:
            self.send_header("Set-Cookie", "session=abc; Path=/")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def answering(connect: Callable[..., str]) -> Iterator[DelixHook]:
    _Answering.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answering)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    hook = DelixHook(connect(SimpleNamespace(base_url=base_url, api_key=SECRET)), retry_policy=NO_RETRY)
    yield hook
    hook.close()
    server.shutdown()
    server.server_close()


BEARER = f"Bearer {SECRET}"


def test_a_redirect_is_sent_again_through_the_session_which_follows_it(answering: DelixHook) -> None:
    _Answering.redirect = True
    assert answering.list_files() == []  # lean: 307; then the session sends it again and follows
    assert answering._lean is not None and not answering._lean.enabled
    assert answering.list_files() == []  # the session's path from now on
    assert _Answering.seen == [
        ("/v1/files", BEARER, None),
        ("/v1/files", BEARER, None),
        ("/v1/stored", BEARER, None),
        ("/v1/files", BEARER, None),
        ("/v1/stored", BEARER, None),
    ]


def test_a_cookie_the_server_sets_is_kept_and_sent_back_by_the_session(answering: DelixHook) -> None:
    _Answering.redirect = False
    assert answering.list_files() == []
    assert answering._lean is not None and not answering._lean.enabled
    assert answering.list_files() == []
    assert _Answering.seen == [("/v1/files", BEARER, None), ("/v1/files", BEARER, "session=abc")]
