"""DelixAsyncHook against the emulator: parsing, typed errors, what is retried and how long it waits."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from loopback_servers import RawServer, answer_json, self_signed, server_context
from trigger_support import SECRET_KEY, queue_extract

from airflow_provider_delix.api.errors import (
    DelixAuthError,
    DelixNotFoundError,
    DelixResponseError,
    DelixTransientError,
)
from airflow_provider_delix.api.models import Extract
from airflow_provider_delix.hooks.delix_async import DelixAsyncHook


class AsyncSleepRecorder:
    """Stands in for ``asyncio.sleep`` in the retry loop: records the waits, spends none."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def test_get_extract_while_processing_and_once_processed(emulator: Any, connect: Any) -> None:
    conn_id = connect(emulator)
    emulator.configure(queue_delay=0.3)
    uuid = queue_extract(conn_id)

    async def poll() -> tuple[Extract, Extract]:
        async with DelixAsyncHook(conn_id) as hook:
            first = await hook.get_extract(uuid)
            while not (last := await hook.get_extract(uuid)).is_processed:
                await asyncio.sleep(0.02)
            assert hook.request_counts["GET /extracts"] >= 2
            return first, last

    first, last = asyncio.run(poll())
    assert first.uuid == uuid and first.status == "processing" and first.files == ()
    assert last.is_processed and last.failed_pages == 0 and last.total_processing_pages == 8
    assert last.files[0].pages is None and last.files[0].pages_url is not None


def test_without_async_with_each_call_has_its_own_session(emulator: Any, connect: Any) -> None:
    conn_id = connect(emulator)
    uuid = queue_extract(conn_id)
    hook = DelixAsyncHook(conn_id)
    assert asyncio.run(hook.get_extract(uuid)).uuid == uuid
    assert hook._session is None


def test_missing_extract_is_not_found_and_not_retried(emulator: Any, connect: Any) -> None:
    hook = DelixAsyncHook(connect(emulator))
    with pytest.raises(DelixNotFoundError, match="extract nope"):
        asyncio.run(hook.get_extract("nope"))
    assert hook.request_counts["GET /extracts"] == 1


def test_refused_key_is_never_retried_and_never_shown(emulator_factory: Any, connect: Any) -> None:
    emulator = emulator_factory(api_key=SECRET_KEY)
    wrong = "wrong-" + SECRET_KEY
    hook = DelixAsyncHook(connect(emulator, api_key=wrong))
    with pytest.raises(DelixAuthError) as caught:
        asyncio.run(hook.get_extract("any"))
    assert hook.request_counts["GET /extracts"] == 1
    assert "delix_trigger_test" in str(caught.value) and wrong not in str(caught.value)
    settings = asyncio.run(hook.settings())
    assert settings.api_key == wrong and wrong not in repr(settings) and wrong not in repr(hook)


def test_a_pasted_key_is_stripped_and_a_broken_one_refused_by_name(
    emulator_factory: Any, connect: Any
) -> None:
    emulator = emulator_factory(api_key=SECRET_KEY)
    with pytest.raises(DelixNotFoundError):  # not 401: the key went out without its newline
        asyncio.run(DelixAsyncHook(connect(emulator, api_key=SECRET_KEY + "\n")).get_extract("nope"))
    head, tail = SECRET_KEY[:8], SECRET_KEY[8:]
    hook = DelixAsyncHook(connect(emulator, api_key=f"{head}\n{tail}"))
    with pytest.raises(
        DelixAuthError, match="key of connection 'delix_trigger_test' contains a control"
    ) as caught:
        asyncio.run(hook.get_extract("nope"))
    assert head not in str(caught.value) and tail not in str(caught.value)
    assert hook.request_counts["GET /extracts"] == 0


def test_a_connection_without_a_key_is_refused_before_any_request(emulator: Any, connect: Any) -> None:
    hook = DelixAsyncHook(connect(emulator, api_key=""))
    with pytest.raises(DelixAuthError, match="has no API key"):
        asyncio.run(hook.get_extract("any"))
    assert emulator.stats()["calls"] == {}


def test_429_waits_exactly_retry_after_then_gives_up(emulator: Any, connect: Any) -> None:
    conn_id = connect(emulator, max_retries=2)
    emulator.configure(rate_429=1.0, retry_after=3)
    sleeps = AsyncSleepRecorder()
    hook = DelixAsyncHook(conn_id, sleep=sleeps)
    with pytest.raises(DelixTransientError, match="throttling") as caught:
        asyncio.run(hook.get_extract("any"))
    assert caught.value.status_code == 429 and caught.value.retry_after == 3.0
    assert sleeps.waits == [3.0, 3.0] and hook.request_counts["GET /extracts"] == 3


def test_server_errors_and_drops_are_retried_with_backoff(emulator: Any, connect: Any) -> None:
    conn_id = connect(emulator, max_retries=30, retry_wait_initial=0.5, retry_wait_max=4)
    uuid = queue_extract(conn_id)
    emulator.configure(rate_500=0.3, rate_503=0.2, rate_drop=0.2, seed=51)  # 500, 503, drop, then OK
    sleeps = AsyncSleepRecorder()
    hook = DelixAsyncHook(conn_id, sleep=sleeps)
    assert asyncio.run(hook.get_extract(uuid)).uuid == uuid
    # aiohttp itself re-sends an idempotent GET once when a kept-alive connection was dropped,
    # so the drop may cost no attempt of the policy's.
    assert hook.request_counts["GET /extracts"] in (3, 4)
    assert len(sleeps.waits) == hook.request_counts["GET /extracts"] - 1
    assert emulator.stats()["calls_by_status"]["GET /extracts/{uuid}"] == {
        "500": 1,
        "503": 1,
        "dropped": 1,
        "200": 1,
    }
    assert all(0.5 <= wait <= 4 + 1 for wait in sleeps.waits)  # backoff with up to 1 s of jitter


def test_timeout_extra_bounds_each_request(emulator: Any, connect: Any) -> None:
    conn_id = connect(emulator, timeout=0.2, max_retries=1)
    emulator.configure(latency_other=1.0)
    hook = DelixAsyncHook(conn_id, sleep=AsyncSleepRecorder())
    with pytest.raises(DelixTransientError, match="did not answer"):
        asyncio.run(hook.get_extract("any"))
    assert hook.request_counts["GET /extracts"] == 2


def test_settings_read_the_connection_like_the_sync_hook(emulator: Any, connect: Any) -> None:
    conn_id = connect(emulator, timeout=7, max_retries=3, **{"X-Trace": "abc", "verify": False})
    settings = asyncio.run(DelixAsyncHook(conn_id).settings())
    assert settings.base_url == emulator.base_url and settings.timeout == 7.0
    assert settings.retry_policy.max_retries == 3 and settings.verify is False
    assert dict(settings.headers) == {"X-Trace": "abc"}  # own extras and request options are no headers


def _processing(sock: socket.socket, request_line: str) -> None:
    answer_json(sock, 200, {"data": {"uuid": "e1", "status": "processing"}})


@pytest.mark.parametrize("where", ["file", "directory"])
def test_a_ca_path_in_the_verify_extra_is_trusted(connect: Any, tmp_path: Path, where: str) -> None:
    cert, key = self_signed(tmp_path)
    if where == "directory":  # OpenSSL looks a CA up in a directory by its subject hash
        (tmp_path / "hashed").mkdir()
        (tmp_path / "hashed" / f"{_subject_hash(cert)}.0").write_bytes(cert.read_bytes())
    ca_path = str(cert) if where == "file" else str(tmp_path / "hashed")
    with RawServer(_processing, tls=server_context(cert, key)) as server:
        trusted = connect(
            SimpleNamespace(base_url=server.base_url, api_key="k"), verify=ca_path, max_retries=0
        )
        assert asyncio.run(DelixAsyncHook(trusted).get_extract("e1")).uuid == "e1"
        untrusted = connect(SimpleNamespace(base_url=server.base_url, api_key="k"), max_retries=0)
        with pytest.raises(DelixTransientError, match="Could not reach"):
            asyncio.run(DelixAsyncHook(untrusted).get_extract("e1"))  # the system's CAs do not know it
        assert server.received == ["GET /v1/extracts/e1 HTTP/1.1"]


def test_an_unreadable_ca_path_names_the_connection(connect: Any, tmp_path: Path) -> None:
    conn_id = connect(
        SimpleNamespace(base_url="https://127.0.0.1:9/v1", api_key="k"), verify=str(tmp_path / "no")
    )
    with pytest.raises(ValueError, match=f"Connection '{conn_id}'.*CA bundle"):
        asyncio.run(DelixAsyncHook(conn_id).settings())


def _subject_hash(cert: Path) -> str:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command names a CA directory's files")
    return subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", str(cert)], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.mark.parametrize(
    "extract",
    [{"status": "processing"}, {"uuid": "e1", "status": "processed", "files": 5}],
    ids=["no-uuid", "files"],
)
def test_an_unreadable_extract_names_the_request_and_the_connection(connect: Any, extract: Any) -> None:
    with RawServer(lambda sock, line: answer_json(sock, 200, {"data": extract})) as server:
        conn_id = connect(SimpleNamespace(base_url=server.base_url, api_key="k"), max_retries=0)
        with pytest.raises(DelixResponseError) as caught:
            asyncio.run(DelixAsyncHook(conn_id).get_extract("e1"))
    assert "(answer to extract e1, connection 'delix_trigger_test')" in str(caught.value)
    assert caught.value.conn_id == "delix_trigger_test"


def test_the_environment_reaches_the_triggerer_as_it_reaches_the_worker(
    connect: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests (the sync hook) trusts REQUESTS_CA_BUNDLE and takes HTTPS_PROXY unless the
    connection says ``trust_env: false``; the async hook must too, or behind a corporate CA or
    proxy the worker reaches Delix and the triggerer does not."""
    cert, key = self_signed(tmp_path)
    with RawServer(_processing, tls=server_context(cert, key)) as server:
        target = SimpleNamespace(base_url=server.base_url, api_key="k")
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
        assert asyncio.run(DelixAsyncHook(connect(target, max_retries=0)).get_extract("e1")).uuid == "e1"
        ignoring = connect(target, max_retries=0, trust_env=False)
        with pytest.raises(DelixTransientError, match="Could not reach"):
            asyncio.run(DelixAsyncHook(ignoring).get_extract("e1"))
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "")
    remote = SimpleNamespace(base_url="https://api.delix.ir/v1", api_key="k")
    assert asyncio.run(DelixAsyncHook(connect(remote)).settings()).proxy == "http://proxy.example:3128"
    assert asyncio.run(DelixAsyncHook(connect(remote, trust_env=False)).settings()).proxy is None
    monkeypatch.setenv("NO_PROXY", "api.delix.ir")
    assert asyncio.run(DelixAsyncHook(connect(remote)).settings()).proxy is None


def test_the_cert_extra_is_presented_as_the_client_certificate(connect: Any, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    demanding = server_context(cert, key)
    demanding.verify_mode = ssl.CERT_REQUIRED  # mutual TLS: the client must show a certificate
    demanding.load_verify_locations(cert)
    with RawServer(_processing, tls=demanding) as server:
        target = SimpleNamespace(base_url=server.base_url, api_key="k")
        with_cert = connect(target, verify=str(cert), cert=[str(cert), str(key)], max_retries=0)
        assert asyncio.run(DelixAsyncHook(with_cert).get_extract("e1")).uuid == "e1"
        without = connect(target, verify=str(cert), max_retries=0)
        with pytest.raises(DelixTransientError):
            asyncio.run(DelixAsyncHook(without).get_extract("e1"))
