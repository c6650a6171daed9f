"""The hook's pooled connections keep HttpHook's TCP keep-alive, on both request paths.

A synchronous extraction may sit idle on its socket for up to ``extraction_timeout``; NAT
gateways and load balancers drop idle connections after a few minutes, which the client sees
as an answer lost after sending (maybe paid twice). HttpHook mounts a ``TCPKeepAliveAdapter``;
the hook's own pool must keep its socket options, and honour ``tcp_keep_alive*`` and
``adapter=`` as HttpHook does. Checked on the sockets the requests really used.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
from requests.adapters import HTTPAdapter

from airflow_provider_delix.hooks.delix import DelixHook

pytestmark = pytest.mark.skipif(not hasattr(socket, "TCP_KEEPIDLE"), reason="needs TCP_KEEPIDLE (Linux)")


def _used_sockets(hook: DelixHook) -> list[socket.socket]:
    """A socket opened by the connection pool the hook's requests use (the emulator closes
    its connections after each answer, so one is opened as a request would open it)."""
    session = hook.get_conn()
    adapter = session.get_adapter(hook.base_url)
    assert isinstance(adapter, HTTPAdapter)
    # The lean path sends through its own pool of the adapter (keyed by the TLS settings).
    lean = hook._lean
    pool = lean._pool if lean is not None else adapter.poolmanager.connection_from_url(hook.base_url)
    conn = pool._get_conn()
    conn.connect()
    assert conn.sock is not None
    return [conn.sock]


@pytest.mark.parametrize("path", ["lean", "session"])  # the session's path: a trust_env extra
def test_pooled_connections_set_tcp_keep_alive(emulator: Any, connect: Callable[..., str], path: str) -> None:
    session_only = {"trust_env": True} if path == "session" else {}
    hook = DelixHook(connect(emulator, max_connections=7, **session_only))
    hook.list_files()
    assert (hook._lean is not None) is (path == "lean")
    for sock in _used_sockets(hook):
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 120, "HttpHook's default"
    adapter = hook.get_conn().get_adapter(hook.base_url)
    assert adapter.poolmanager.connection_pool_kw["maxsize"] == 7, "our pool size, not requests' 10"
    hook.close()


def test_the_hooks_keep_alive_arguments_are_honoured(emulator: Any, connect: Callable[..., str]) -> None:
    hook = DelixHook(connect(emulator), tcp_keep_alive_idle=77, tcp_keep_alive_interval=9)
    hook.list_files()
    for sock in _used_sockets(hook):
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 77
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 9
    hook.close()
    off = DelixHook(connect(emulator), tcp_keep_alive=False)
    off.list_files()
    assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0 for s in _used_sockets(off))
    off.close()


def test_a_callers_adapter_stays_mounted(emulator: Any, connect: Callable[..., str]) -> None:
    mine = HTTPAdapter(pool_maxsize=3)
    hook = DelixHook(connect(emulator), adapter=mine)
    assert hook.get_conn().get_adapter(hook.base_url) is mine
    assert hook.list_files() == []
    hook.close()


def test_a_callers_adapter_serves_the_default_https_api_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """HttpHook mounts ``adapter=`` on the connection's schema (``http`` when none is set), but
    the hook talks to ``https://api.delix.ir/v1``: the caller's adapter must serve that too."""
    monkeypatch.setenv("AIRFLOW_CONN_DELIX_PUBLIC", '{"conn_type": "delix", "password": "k"}')
    mine = HTTPAdapter(pool_maxsize=3)
    hook = DelixHook("delix_public", adapter=mine)
    session = hook.get_conn()
    assert hook.base_url.startswith("https://") and session.get_adapter(hook.base_url) is mine
    hook.close()
