"""TLS against a server on loopback whose certificate no system bundle trusts.

The connection's ``verify`` extra (False, or the path of a CA file) must decide, on the lean
path and on the session's path alike, even with ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE``
set, which requests would otherwise put first. A TLS failure is classified by when it
happened: a refused handshake never sent the request (retried freely); a TLS stream that
breaks once the request was sent may have been applied (a paid request is re-sent once).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from loopback_servers import RawServer, answer_json, break_tls, self_signed, server_context

from airflow_provider_delix.api.errors import DelixTransientError
from airflow_provider_delix.api.retry import RetryPolicy
from airflow_provider_delix.hooks.delix import DelixHook

SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
PATHS = ["lean", "session"]  # the session's path: a trust_env extra keeps requests' own rules


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


def _file_list(sock: socket.socket, request_line: str) -> None:
    answer_json(sock, 200, {"data": []})


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[RawServer]:
    with RawServer(_file_list, tls=server_context(*certificate)) as server:
        yield server


def _hook(connect: Callable[..., str], server: RawServer, **extra: Any) -> DelixHook:
    conn_id = connect(SimpleNamespace(base_url=server.base_url, api_key="k-tls"), **extra)
    return DelixHook(conn_id, retry_policy=RetryPolicy(max_retries=0))


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
@pytest.mark.parametrize("path", ["lean", "session"])
@pytest.mark.parametrize("bundle_variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_the_verify_extra_wins_over_a_ca_bundle_variable(
    tls_server: RawServer,
    certificate: tuple[Path, Path],
    connect: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    bundle_variable: str,
) -> None:
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(bundle_variable, SYSTEM_BUNDLE)  # does not trust the test's certificate
    session_only = {"trust_env": True} if path == "session" else {}
    for verify in (False, str(certificate[0]), "false"):
        hook = _hook(connect, tls_server, verify=verify, **session_only)
        assert hook.list_files() == [], verify
        assert (hook._lean is not None) is (path == "lean")
        hook.close()
    assert len(tls_server.received) == 3


@pytest.mark.parametrize("path", ["lean", "session"])
def test_without_a_verify_extra_the_bundle_variable_still_decides(
    tls_server: RawServer,
    certificate: tuple[Path, Path],
    connect: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    path: str,
) -> None:
    session_only = {"trust_env": True} if path == "session" else {}
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate[0]))
    assert _hook(connect, tls_server, **session_only).list_files() == []
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", SYSTEM_BUNDLE)
    with pytest.raises(DelixTransientError, match="Could not reach") as info:
        _hook(connect, tls_server, **session_only).list_files()
    assert not info.value.maybe_applied
    assert len(tls_server.received) == 1, "a refused certificate: the request was never sent"


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
@pytest.mark.parametrize("path", PATHS)
def test_a_tls_stream_broken_after_sending_is_a_lost_answer(
    certificate: tuple[Path, Path], connect: Callable[..., str], sleeps: Any, path: str
) -> None:
    """The server read the whole extraction (applied, charged), then its TLS record is garbage."""
    session_only = {"trust_env": True} if path == "session" else {}
    with RawServer(lambda sock, line: break_tls(sock), tls=server_context(*certificate)) as server:
        conn_id = connect(
            SimpleNamespace(base_url=server.base_url, api_key="k-tls"), verify=False, **session_only
        )
        hook = DelixHook(conn_id, retry_policy=RetryPolicy(max_retries=5), sleep=sleeps)
        with pytest.raises(DelixTransientError) as info:
            hook.extract_images(["u1"])
        assert (hook._lean is not None) is (path == "lean")
        assert len(server.received) == 2, "a paid request whose answer was lost is re-sent once, not 6 times"
        error = info.value
        assert error.maybe_applied and error.paid and error.lost_attempts == 2
        assert "Could not reach" not in str(error) and "may have applied" in str(error)
        assert "connection 'delix_test'" in str(error)
        with pytest.raises(DelixTransientError) as info:
            hook.list_files()  # free: the ordinary policy, every retry used
        assert len(server.received) == 2 + 6 and info.value.maybe_applied


@pytest.mark.parametrize("path", PATHS)
def test_a_refused_handshake_never_sent_the_paid_request(
    tls_server: RawServer, connect: Callable[..., str], sleeps: Any, path: str
) -> None:
    session_only = {"trust_env": True} if path == "session" else {}
    conn_id = connect(SimpleNamespace(base_url=tls_server.base_url, api_key="k-tls"), **session_only)
    hook = DelixHook(conn_id, retry_policy=RetryPolicy(max_retries=3), sleep=sleeps)
    with pytest.raises(DelixTransientError, match="Could not reach") as info:
        hook.extract_images(["u1"])  # the system's CAs do not know the server's certificate
    assert not info.value.maybe_applied and info.value.lost_attempts == 0
    assert hook.request_counts["POST /image-extraction"] == 4, "never sent: every retry is used"
    assert tls_server.received == []
