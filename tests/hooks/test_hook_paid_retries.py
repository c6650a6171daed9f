"""Paid requests are never re-sent blindly: the hook against the emulator over loopback.

A failure that Delix may have applied (the answer lost after sending: a dropped connection, a
gateway's 502/504, a read timeout) is re-sent at most once for an extraction, and the error
says how many sends may have been charged; the emulator's charge ledger proves what was paid.
An upload follows the same rule (each send may store files nobody is told of, on the 30 the
key's tasks share). Failures that never reached Delix, and reads and deletes, keep the
ordinary policy.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from loopback_servers import RawServer, answer_cut_off, refused_connection

from airflow_provider_delix.api.errors import DelixInsufficientCreditsError, DelixTransientError
from airflow_provider_delix.api.responses import never_reached, raise_for_answer, transport_error
from airflow_provider_delix.emulator.scans import make_png
from airflow_provider_delix.hooks.delix import DEFAULT_EXTRACTION_TIMEOUT, DelixHook

RETRIES = {"max_retries": 5}


def _stored(hook: DelixHook, count: int = 1) -> list[str]:
    results = hook.upload_files([(f"p{i}.png", make_png(f"page {i}")) for i in range(count)])
    return [r.uuid for r in results]  # type: ignore[union-attr]


def _calls(emulator: Any, endpoint: str) -> dict[str, int]:
    return dict(emulator.stats()["calls_by_status"].get(endpoint, {}))


@pytest.mark.parametrize("kind", ["drop", "502", "504", "524"])  # 524: Cloudflare's "a timeout occurred"
def test_an_extraction_lost_after_apply_is_sent_twice_then_raised(
    emulator: Any, connect: Callable[..., str], sleeps: Any, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    hook = DelixHook(connect(emulator, **RETRIES), sleep=sleeps)
    uuids = _stored(hook, 2)
    emulator.configure(
        rate_lost_after_apply=1.0, lost_after_apply_kinds=kind, lost_after_apply_on="extraction"
    )
    with caplog.at_level(logging.WARNING), pytest.raises(DelixTransientError) as info:
        hook.extract_images(uuids)
    error = info.value
    assert error.maybe_applied and error.paid and error.lost_attempts == 2
    stats = emulator.stats()
    assert stats["calls"]["POST /image-extraction"] == 2, "re-sent once, never a third time"
    assert set(stats["charges"].values()) == {2} and len(stats["charges"]) == 2, "both sends were charged"
    assert stats["credits"]["charged"] == 2 * 2 * 200
    assert len(sleeps.waits) == 1
    assert "re-sending once, the first may have been charged" in caplog.text
    assert "not re-sent" in caplog.text


def test_an_extraction_answered_on_the_resend_says_one_send_was_lost(
    emulator: Any, connect: Callable[..., str], sleeps: Any
) -> None:
    hook = DelixHook(connect(emulator, **RETRIES), sleep=sleeps)
    uuids = _stored(hook, 3)
    emulator.configure(rate_lost_after_apply=0.5, lost_after_apply_on="extraction", seed=5)
    extract = None
    for _ in range(20):  # seeded: deterministic; stops at the first call answered on its re-send
        try:
            extract = hook.extract_images(uuids)
        except DelixTransientError as error:
            assert error.lost_attempts == 2
            continue
        if extract.lost_attempts:
            break
    assert extract is not None and extract.lost_attempts == 1
    assert extract.initial_cost == 3 * 200
    sends = hook.request_counts["POST /image-extraction"]
    assert emulator.stats()["credits"]["charged"] == sends * 600, "every send was applied and charged"


def test_a_slow_extraction_times_out_and_is_still_charged(
    emulator: Any, connect: Callable[..., str], sleeps: Any
) -> None:
    hook = DelixHook(connect(emulator, extraction_timeout=0.3, **RETRIES), sleep=sleeps)
    uuids = _stored(hook)
    emulator.configure(latency_extract_answer=0.8)
    with pytest.raises(DelixTransientError, match="did not answer") as info:
        hook.extract_images(uuids)
    assert info.value.maybe_applied and info.value.lost_attempts == 2
    assert hook.request_counts["POST /image-extraction"] == 2
    emulator.configure(latency_extract_answer=0.0)
    for _ in range(50):  # the server is still working on the timed-out sends: wait for both charges
        if emulator.stats()["credits"]["charged"] >= 400:
            break
        time.sleep(0.1)
    assert emulator.stats()["credits"]["charged"] == 400, "a timed-out extraction is charged all the same"


def test_only_extractions_wait_the_extraction_timeout(emulator: Any, connect: Callable[..., str]) -> None:
    hook = DelixHook(connect(emulator, timeout=7))
    hook.get_conn()
    assert (hook.timeout, hook.extraction_timeout) == (7.0, DEFAULT_EXTRACTION_TIMEOUT)
    hook = DelixHook(connect(emulator, extraction_timeout="42"))
    hook.get_conn()
    assert hook.extraction_timeout == 42.0
    assert "extraction_timeout" not in hook.get_conn().headers, "an extra is never sent as a header"
    assert DelixHook(connect(emulator), extraction_timeout=3).get_conn() is not None


@pytest.mark.parametrize("kind", ["drop", "502", "504"])
def test_an_upload_lost_after_apply_is_sent_twice_then_raised(
    emulator: Any, connect: Callable[..., str], sleeps: Any, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Each applied send stores up to 5 files no answer names, on the 30 the key's tasks share."""
    hook = DelixHook(connect(emulator, **RETRIES), sleep=sleeps)
    emulator.configure(rate_lost_after_apply=1.0, lost_after_apply_kinds=kind, lost_after_apply_on="upload")
    with caplog.at_level(logging.WARNING), pytest.raises(DelixTransientError) as info:
        _stored(hook, 5)
    error = info.value
    assert error.maybe_applied and not error.paid and error.lost_attempts == 2
    assert hook.request_counts["POST /files"] == 2, "re-sent once, never a third time"
    assert emulator.stats()["files"]["count"] == 10, "at most two sends' files left for the orphan sweep"
    assert "re-sending once, the first may have been stored" in caplog.text
    assert "stored the files of both sends" in caplog.text
    emulator.configure(rate_lost_after_apply=0.0)
    assert len(_stored(hook, 5)) == 5, "the account still has room for the next upload"


def test_an_upload_answered_on_its_resend_says_one_send_was_lost(
    emulator: Any, connect: Callable[..., str], sleeps: Any
) -> None:
    hook = DelixHook(connect(emulator, **RETRIES), sleep=sleeps)
    emulator.lose_answers(every=2, on="upload")  # the 2nd send is stored and lost; its re-send answers
    first = hook.upload_files([("a.png", make_png("a"))])
    second = hook.upload_files([("b.png", make_png("b")), ("c.png", make_png("c"))])
    assert (first.lost_attempts, second.lost_attempts) == (0, 1)
    assert hook.request_counts["POST /files"] == 3
    assert emulator.stats()["files"]["count"] == 5, "the lost send's 2 files are stored, unnamed"


def test_an_upload_refused_by_a_closed_port_is_retried_with_the_ordinary_policy(
    monkeypatch: pytest.MonkeyPatch, sleeps: Any
) -> None:
    refused_connection(monkeypatch, "delix_down", password="k-1", max_retries=4)  # nothing stored
    hook = DelixHook("delix_down", sleep=sleeps)
    with pytest.raises(DelixTransientError, match="Could not reach") as info:
        hook.upload_files([("a.png", b"x")])
    assert not info.value.maybe_applied and info.value.lost_attempts == 0
    assert hook.request_counts["POST /files"] == 5, "never reached Delix: every retry is used"


def test_a_connect_error_is_retried_with_the_ordinary_policy(
    monkeypatch: pytest.MonkeyPatch, sleeps: Any
) -> None:
    refused_connection(monkeypatch, "delix_down", password="k-1", max_retries=4)
    hook = DelixHook("delix_down", sleep=sleeps)
    with pytest.raises(DelixTransientError, match="Could not reach") as info:
        hook.extract_images(["u1"])
    assert not info.value.maybe_applied and info.value.lost_attempts == 0
    assert hook.request_counts["POST /image-extraction"] == 5, "never reached Delix: every retry is used"


def test_other_transient_failures_between_lost_answers_keep_the_policy(
    emulator: Any, connect: Callable[..., str], sleeps: Any
) -> None:
    hook = DelixHook(connect(emulator, max_retries=30), sleep=sleeps)
    uuids = _stored(hook)
    # 503s never reach the handler (nothing applied); every applied answer is lost.
    emulator.configure(rate_503=0.6, rate_lost_after_apply=1.0, lost_after_apply_on="extraction", seed=2)
    with pytest.raises(DelixTransientError) as info:
        hook.extract_images(uuids)
    assert info.value.lost_attempts == 2
    statuses = _calls(emulator, "POST /image-extraction")
    assert statuses.get("dropped", 0) + statuses.get("502", 0) + statuses.get("504", 0) == 2
    assert emulator.stats()["credits"]["charged"] == 400
    assert hook.request_counts["POST /image-extraction"] == 2 + statuses.get("503", 0)


def test_classification_of_failures() -> None:
    refused = requests.ConnectionError(
        requests.urllib3.exceptions.MaxRetryError(  # type: ignore[attr-defined]
            None,
            "/",
            requests.urllib3.exceptions.NewConnectionError(None, "refused"),  # type: ignore[attr-defined]
        )
    )
    assert never_reached(refused)
    assert never_reached(requests.ConnectTimeout())
    dropped = requests.ConnectionError(
        requests.urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError())  # type: ignore[attr-defined]
    )
    assert not never_reached(dropped)
    # The same SSLError wraps a refused handshake and a TLS stream broken after sending: without
    # a traceback through urllib3's connect there is no telling, so it may have been applied.
    tls = requests.exceptions.SSLError(
        requests.urllib3.exceptions.MaxRetryError(None, "/", requests.urllib3.exceptions.SSLError("bad"))  # type: ignore[attr-defined]
    )
    assert not never_reached(tls)
    assert transport_error(dropped, "http://x/v1", "w", 9, conn_id="c").maybe_applied
    assert not transport_error(refused, "http://x/v1", "w", 9, conn_id="c").maybe_applied
    assert transport_error(requests.ReadTimeout(), "http://x/v1", "w", 9, conn_id="c").maybe_applied
    assert not transport_error(requests.ConnectTimeout(), "http://x/v1", "w", 9, conn_id="c").maybe_applied
    gateways = (502, 504, 520, 521, 522, 523, 524, 598, 599)  # a gateway or proxy gave up waiting
    other_5xx = (505, 507, 508, 511)  # nothing says the request was refused: read as maybe applied
    refused = (500, 501, 503, 429)  # 500: a project decision; 503/429: refused, come back later
    for status, applied in [*((s, True) for s in (*gateways, *other_5xx)), *((s, False) for s in refused)]:
        with pytest.raises(DelixTransientError) as info:
            raise_for_answer(status, None, None, conn_id="c", what="w")
        assert info.value.maybe_applied is applied, status


def test_a_resend_refused_after_a_lost_answer_says_the_first_send_was_lost(
    emulator_factory: Callable[..., Any], connect: Callable[..., str], sleeps: Any
) -> None:
    emulator = emulator_factory(credits=400)  # exactly one extraction of 2 images
    hook = DelixHook(connect(emulator, **RETRIES), sleep=sleeps)
    uuids = _stored(hook, 2)
    emulator.configure(
        rate_lost_after_apply=1.0, lost_after_apply_kinds="502", lost_after_apply_on="extraction"
    )
    with pytest.raises(DelixInsufficientCreditsError) as info:
        hook.extract_images(uuids)
    assert info.value.lost_attempts == 1, "the lost first send spent the credits the re-send needed"
    assert emulator.stats()["credits"]["charged"] == 400


def _undecodable(sock: socket.socket) -> None:
    """A whole answer whose gzip body does not decompress."""
    sock.sendall(
        b"HTTP/1.1 201 X\r\nContent-Encoding: gzip\r\nContent-Length: 8\r\nConnection: close\r\n\r\nnot gzip"
    )


@pytest.mark.parametrize("path", ["lean", "session"])  # the session's path: a trust_env extra
@pytest.mark.parametrize("answer", [answer_cut_off, _undecodable], ids=["cut-off", "undecodable"])
def test_an_answer_broken_off_after_apply_is_a_lost_answer(
    connect: Callable[..., str], sleeps: Any, path: str, answer: Callable[[socket.socket], None]
) -> None:
    """The server read the whole request (applied, charged), then its answer breaks."""
    session_only = {"trust_env": True} if path == "session" else {}
    with RawServer(lambda sock, line: answer(sock)) as server:
        conn_id = connect(SimpleNamespace(base_url=server.base_url, api_key="k-1"), **RETRIES, **session_only)
        hook = DelixHook(conn_id, sleep=sleeps)
        with pytest.raises(DelixTransientError) as info:
            hook.extract_images(["u1"])
        assert (hook._lean is not None) is (path == "lean")
        error = info.value
        assert error.maybe_applied and error.paid and error.lost_attempts == 2
        assert "connection 'delix_test'" in str(error) and "may have applied" in str(error)
        assert len(server.received) == 2, "re-sent once, never a third time"
        with pytest.raises(DelixTransientError, match="connection 'delix_test'"):
            hook.list_files()  # free: the ordinary policy, every retry used
        assert len(server.received) == 2 + 6
