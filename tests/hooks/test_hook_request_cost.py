"""What the hook saves per request keeps the behaviour: the reused ``Retrying``, ``trust_env``."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_delix.api.errors import DelixTransientError
from airflow_provider_delix.api.retry import RetryPolicy
from airflow_provider_delix.emulator.scans import make_png
from airflow_provider_delix.hooks.delix import DelixHook

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def test_each_call_gets_the_whole_retry_budget_from_the_reused_retrying(
    emulator: Any, connect: Callable[..., str], sleeps: Any
) -> None:
    emulator.configure(rate_429=1.0, retry_after=2)
    hook = DelixHook(connect(emulator), sleep=sleeps, retry_policy=RetryPolicy(max_retries=2))
    for _ in range(3):
        with pytest.raises(DelixTransientError):
            hook.list_files()
    assert hook.request_counts["GET /files"] == 9  # 3 calls x (1 + 2 retries), not 3 in all
    assert sleeps.waits == [2] * 6


def test_one_retrying_per_thread_and_the_retry_log_names_each_call(
    emulator: Any, connect: Callable[..., str], sleeps: Any, caplog: pytest.LogCaptureFixture
) -> None:
    hook = DelixHook(connect(emulator, max_retries=30, retry_wait_max=0.1), sleep=sleeps)
    (stored,) = hook.upload_files([("a.png", make_png(text="a"))])
    emulator.configure(rate_500=0.5, seed=5)
    caplog.set_level(logging.WARNING)
    for _ in range(6):
        hook.list_files()
    first = hook._retrying()[0]
    hook.delete_file(stored.uuid)
    assert hook._retrying()[0] is first
    other: list[object] = []
    worker = threading.Thread(target=lambda: other.append(hook._retrying()[0]))
    worker.start()
    worker.join()
    assert other[0] is not first
    # Only the retry policy's own lines (Airflow 2.11 also logs "Retrieving connection ...").
    messages = [r.getMessage() for r in caplog.records if r.name == "airflow_provider_delix.api.retry"]
    assert messages, ("with half the requests failing, some must have been retried", hook.request_counts)
    for message in messages:
        assert message.startswith(("Delix the file list failed", f"Delix the deletion of file {stored.uuid}"))
    listed, deleted = hook.request_counts["GET /files"], hook.request_counts["DELETE /files"]
    assert len(messages) == listed - 6 + deleted - 1


def _session(emulator: Any, connect: Callable[..., str], *, call: bool = True, **extra: Any) -> Any:
    hook = DelixHook(connect(emulator, **extra))
    try:
        session = hook.get_conn()
        if call:
            assert hook.list_files() == []  # the emulator is reached either way
        return session
    finally:
        hook.close()


def test_trust_env_is_off_only_when_the_environment_is_read_once_for_the_same_effect(
    emulator: Any, connect: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (*PROXY_VARIABLES, "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    assert _session(emulator, connect).trust_env is False
    assert _session(emulator, connect, trust_env=True).trust_env is True
    proxied = _session(emulator, connect, call=False, proxies={"http": "http://proxy.invalid:3128"})
    assert proxied.trust_env is True
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    pinned = _session(emulator, connect)  # the bundle requests would have used, pinned
    assert (pinned.trust_env, pinned.verify) == (False, "/etc/ssl/certs/ca-certificates.crt")
    unverified = _session(emulator, connect, verify=False)  # sent with each request: the bundle is moot
    assert (unverified.trust_env, unverified.verify) == (False, False)
    monkeypatch.delenv("CURL_CA_BUNDLE")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")  # the emulator is still reached directly
    assert _session(emulator, connect).trust_env is True
