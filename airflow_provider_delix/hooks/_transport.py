"""How the hook's requests leave the process: the session's setup and its lean path.

Every page costs a delete request (the API has no bulk delete), so a run makes about 1.4
requests per page and the client CPU of one request is a large share of a run's. Measured on
one keep-alive connection to the emulator (``bench/request_cost.py``), ``Session.request``
spends about half its CPU in requests' per-call machinery (merging the session's settings,
preparing the URL, cookies and hooks, building a ``Response``) and half in urllib3 and
``http.client``. :class:`LeanTransport` sends a request straight through the session's own
``HTTPAdapter`` connection pool, with what ``Session.request`` would have sent:

* the session's headers and the ``Authorization`` header its :class:`DelixBearerAuth` adds,
  computed once by ``Session.prepare_request`` (the key stays in memory only, as in the
  session; :meth:`LeanTransport.__repr__` never shows it);
* the same body: JSON as requests encodes it, an upload's multipart fields built and encoded
  by the urllib3 functions requests itself calls (only the random boundary differs);
* the same pool (keep-alive connections, ``max_connections``, the TCP keep-alive socket
  options of :func:`mount_pool`), the same ``verify``/``cert``
  (they key the pool, as in ``HTTPAdapter.get_connection_with_tls_context``), the same
  ``(connect, read)`` timeouts, the adapter's own urllib3 retry setting (none);
* the same exceptions: urllib3's errors are wrapped exactly as ``HTTPAdapter.send`` and
  ``Response.content`` wrap them, so the hook classifies them with the same code
  (``api/responses.transport_error``: never reached, timed out, maybe applied).

It is used only when nothing per call could differ: no proxy (session or environment), the
environment read once (``trust_env`` off, see :func:`read_environment_once`), the hook's own
auth and adapter, no cookies, hooks or default params on the session, a plain URL path. A
redirect answer is not followed on the lean path: the request is sent again through the
session (which follows it) and the lean path is switched off for the session.
"""

from __future__ import annotations

import json as jsonlib
import os
import re
import threading
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.cookies import extract_cookies_to_jar
from requests_toolbelt.adapters.socket_options import SocketOptionsAdapter
from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    DecodeError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    ResponseError,
)
from urllib3.exceptions import HTTPError as Urllib3HTTPError
from urllib3.exceptions import InvalidHeader as Urllib3InvalidHeader
from urllib3.exceptions import ProxyError as Urllib3ProxyError
from urllib3.exceptions import SSLError as Urllib3SSLError
from urllib3.fields import RequestField
from urllib3.filepost import encode_multipart_formdata

from airflow_provider_delix.api.auth import DelixBearerAuth

# Paths sent as they are (no quoting, no dot segments); any other goes through requests' rules.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_~-]+(/[A-Za-z0-9_~-]+)*")
_PLAIN_PARAM = re.compile(r"[A-Za-z0-9_~.-]*")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Adapters whose requests the lean path sends as they would: requests' own ``send``
# (``SocketOptionsAdapter`` only sets socket options on the pool manager it builds).
_POOLED: tuple[type[HTTPAdapter], ...] = (HTTPAdapter, SocketOptionsAdapter)


def mount_pool(
    session: requests.Session,
    pool_size: int,
    *,
    adapter: HTTPAdapter | None = None,
    keep_alive: HTTPAdapter | None = None,
) -> None:
    """A pool of ``pool_size`` keep-alive connections per host, with HttpHook's TCP keep-alive.

    ``adapter`` and ``keep_alive`` are what ``HttpHook`` built from the hook's ``adapter=`` and
    ``tcp_keep_alive*`` arguments. A caller's own adapter serves every request of the hook:
    HttpHook mounts it on the connection's schema only (``http`` by default, ``v1`` in the URI
    form), not on Delix's ``https``. Otherwise the pooled adapter keeps the socket options of HttpHook's
    ``TCPKeepAliveAdapter``: a synchronous extraction may sit idle on its socket for up to
    ``extraction_timeout``, and a NAT gateway or load balancer drops an idle connection after
    a few minutes, which the client sees as an answer lost after sending (maybe paid twice).
    """
    options = getattr(keep_alive, "socket_options", None)
    pooled = adapter or (
        SocketOptionsAdapter(socket_options=list(options), pool_connections=4, pool_maxsize=pool_size)
        if options is not None
        else HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
    )
    session.mount("https://", pooled)
    session.mount("http://", pooled)


def tls_verify(value: Any) -> bool | str:
    """The connection's ``verify`` extra as requests takes it: a bool, or a CA bundle path.

    The UI stores extras as text, so ``"false"``/``"0"``/``"no"`` (and ``"true"``/``"1"``/
    ``"yes"``) are read as booleans, as the async hook always did, rather than as the path of
    a CA file named "false"; anything else non-empty is a CA file or directory.
    """
    if value is None or isinstance(value, bool):
        return value is not False
    text = str(value).strip()
    if text.lower() in ("false", "0", "no", "off"):
        return False
    if text.lower() in ("true", "1", "yes", "on", ""):
        return True
    return text


def read_environment_once(session: requests.Session, extras: Mapping[str, Any]) -> None:
    """Switch off requests' ``trust_env`` when what it would find each request is known now.

    With ``trust_env`` on, every request re-reads the proxy variables (and ``no_proxy``), the CA
    bundle variables and ``~/.netrc``: a tenth of the client's CPU per request. When the
    connection sets no proxy and no ``trust_env``, the environment has no proxy, and the session
    has its own auth (so ``.netrc`` is never read), the only thing left to find is a CA bundle
    (``REQUESTS_CA_BUNDLE``, then ``CURL_CA_BUNDLE``), which requests uses only in place of
    ``verify=True``: it is pinned on the session instead. A ``verify`` of False or a CA path
    (the connection's extra) is sent with every request (the hook passes ``verify=`` as
    ``HttpHook.run`` does), so the bundle variables change nothing for it. Anything else keeps
    ``trust_env``.
    """
    if "trust_env" in extras or session.proxies or session.auth is None or urllib.request.getproxies():
        return
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle and session.verify is True:
        session.verify = bundle
    session.trust_env = False


@dataclass(frozen=True, slots=True)
class LeanAnswer:
    """What the hook reads of an answer (the same attributes as ``requests.Response``)."""

    status_code: int
    content: bytes
    headers: Mapping[str, str]  # urllib3's HTTPHeaderDict: case-insensitive, like requests'


class LeanTransport:
    """Requests sent through the session's own connection pool (see the module docstring).

    Built by :meth:`for_session`, which returns None when the session needs its full path.
    Thread-safe: the headers are read-only, the pool is urllib3's (thread-safe) and is only
    looked up again, under a lock, when the pool manager closed it.
    """

    def __init__(self, session: requests.Session, adapter: HTTPAdapter, base_url: str) -> None:
        self._session = session
        self._adapter = adapter
        self._base_url = base_url.rstrip("/")
        self._base_path = urlsplit(self._base_url).path.rstrip("/")
        prepared = session.prepare_request(requests.Request("GET", self._base_url))
        self._prepared = prepared  # keys the pool lookup, as requests does per request
        headers = dict(prepared.headers)
        headers.pop("Content-Length", None)
        self._headers = headers
        self._verify = session.verify
        self._cert = session.cert
        self._lock = threading.Lock()
        self._pool = self._lookup_pool()
        self.enabled = True

    @classmethod
    def for_session(cls, session: requests.Session, base_url: str) -> LeanTransport | None:
        """The lean path for ``session``, or None when a request could differ from the session's."""
        url = urlsplit(base_url)
        base_path = url.path.strip("/")
        plain_url = url.scheme.lower() in ("http", "https") and "@" not in url.netloc and not url.query
        adapter = session.get_adapter(base_url) if plain_url else None
        if (
            adapter is None
            or (base_path and not _PLAIN_PATH.fullmatch(base_path))
            or not isinstance(adapter, HTTPAdapter)
            or type(adapter) not in _POOLED
            or session.trust_env
            or session.proxies
            or not isinstance(session.auth, DelixBearerAuth)
            or any(session.hooks.values())
            or len(session.cookies)
            or session.params
        ):
            return None
        try:
            transport = cls(session, adapter, base_url)
            # requests checks the CA bundle on every request and raises OSError when it is
            # missing: then keep the session's path, which raises the same error every time.
            adapter.cert_verify(  # type: ignore[no-untyped-call]
                transport._pool, base_url, transport._verify, transport._cert
            )
        except (OSError, ValueError, requests.RequestException):
            return None
        return transport

    def __repr__(self) -> str:
        return f"LeanTransport({self._base_url!r})"  # never the headers: they carry the key

    def takes(self, endpoint: str, params: Mapping[str, Any] | None) -> bool:
        """Whether the lean path sends this request as requests would (plain path, plain params)."""
        if not self.enabled or not _PLAIN_PATH.fullmatch(endpoint):
            return False
        return params is None or all(
            isinstance(k, str) and _PLAIN_PARAM.fullmatch(k) and _plain_value(v) for k, v in params.items()
        )

    def send(
        self,
        method: str,
        endpoint: str,
        *,
        json: Any = None,
        files: Sequence[tuple[str, bytes]] | None = None,
        params: Mapping[str, Any] | None = None,
        timeout: tuple[float, float],
    ) -> LeanAnswer | None:
        """One request; None when the answer is a redirect (send it through the session instead).

        Raises the ``requests`` exceptions ``Session.request`` would raise for the same failure.
        """
        path = f"{self._base_path}/{endpoint}"
        if params:
            path = f"{path}?{urlencode([(k, str(v)) for k, v in params.items()])}"
        headers = dict(self._headers)
        body: bytes | None = None
        if files:
            body, headers["Content-Type"] = _multipart(files)
            headers["Content-Length"] = str(len(body))
        elif json is not None:
            try:
                body = jsonlib.dumps(json, allow_nan=False).encode("utf-8")
            except ValueError as error:  # as PreparedRequest.prepare_body wraps it (NaN)
                raise requests.exceptions.InvalidJSONError(error) from error
            headers["Content-Type"] = "application/json"
            headers["Content-Length"] = str(len(body))
        elif method not in ("GET", "HEAD"):
            headers["Content-Length"] = "0"
        answer = self._exchange(
            method, path, body, headers, urllib3.Timeout(connect=timeout[0], read=timeout[1])
        )
        if answer.status_code in _REDIRECTS:
            self.enabled = False
            return None
        return answer

    def _lookup_pool(self) -> Any:
        return self._adapter.get_connection_with_tls_context(self._prepared, self._verify, None, self._cert)

    def _exchange(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str], timeout: urllib3.Timeout
    ) -> LeanAnswer:
        pool = self._pool
        for fresh in (False, True):
            try:
                response = pool.urlopen(
                    method=method,
                    url=path,
                    body=body,
                    headers=headers,
                    redirect=False,
                    assert_same_host=False,
                    preload_content=False,
                    decode_content=False,
                    retries=self._adapter.max_retries,
                    timeout=timeout,
                    chunked=False,
                )
                break
            except ClosedPoolError as error:
                # The pool manager closed this pool (the session was closed, or the pool was
                # evicted) before anything was sent; requests would have looked it up again.
                if fresh:
                    raise requests.ConnectionError(error) from None
                with self._lock:
                    pool = self._pool = self._lookup_pool()
            except Exception as error:
                mapped = _as_requests_error(error)
                if mapped is error:
                    raise
                raise mapped from error
        answer = LeanAnswer(response.status, _read_body(response), response.headers)
        if "Set-Cookie" in response.headers:
            # requests keeps a cookie the server sets and sends it back: the session does it
            # from now on (the lean path needs a session without cookies).
            self.enabled = False
            url = f"{self._base_url[: len(self._base_url) - len(self._base_path)]}{path}"
            request = requests.Request(method, url).prepare()
            extract_cookies_to_jar(self._session.cookies, request, response)  # type: ignore[no-untyped-call]
        return answer


def _multipart(files: Sequence[tuple[str, bytes]]) -> tuple[bytes, str]:
    """The body requests builds for ``files=[("file[]", (name, data, "application/octet-stream"))]``:
    the same urllib3 fields, encoded by the same urllib3 function (only the boundary is random)."""
    fields = []
    for name, data in files:
        field = RequestField(name="file[]", data=data, filename=name)
        field.make_multipart(content_type="application/octet-stream")
        fields.append(field)
    return encode_multipart_formdata(fields)


def _plain_value(value: object) -> bool:
    if isinstance(value, str):
        return _PLAIN_PARAM.fullmatch(value) is not None
    return isinstance(value, int)


# HTTPAdapter.send's wrapping (requests 2.32+), in its order: for the reason of a MaxRetryError
# (anything else: ConnectionError), and for an error urlopen raises itself (else: unchanged).
_BEHIND_MAX_RETRY: tuple[tuple[type[Exception], type[requests.RequestException]], ...] = (
    (ResponseError, requests.exceptions.RetryError),
    (Urllib3ProxyError, requests.exceptions.ProxyError),
    (Urllib3SSLError, requests.exceptions.SSLError),
)
_RAISED: tuple[tuple[type[Exception], type[requests.RequestException]], ...] = (
    (Urllib3SSLError, requests.exceptions.SSLError),
    (ReadTimeoutError, requests.ReadTimeout),
    (Urllib3InvalidHeader, requests.exceptions.InvalidHeader),
)


def _as_requests_error(error: Exception) -> Exception:
    """urllib3's error as ``HTTPAdapter.send`` raises it for the same failure; others unchanged."""
    if isinstance(error, (ProtocolError, OSError)):
        return requests.ConnectionError(error)
    if isinstance(error, MaxRetryError):
        reason = error.reason
        if isinstance(reason, ConnectTimeoutError) and not isinstance(reason, NewConnectionError):
            return requests.ConnectTimeout(error)
        wrapper = next((w for cls, w in _BEHIND_MAX_RETRY if isinstance(reason, cls)), None)
        return (wrapper or requests.ConnectionError)(error)
    wrapper = next((w for cls, w in _RAISED if isinstance(error, cls)), None)
    return wrapper(error) if wrapper else error


def _read_body(response: Any) -> bytes:
    """The whole body, decoded, with the errors ``Response.content`` raises for the same failure."""
    try:
        data: bytes = response.read(decode_content=True)
    except ProtocolError as error:
        raise requests.exceptions.ChunkedEncodingError(error) from error
    except DecodeError as error:
        raise requests.exceptions.ContentDecodingError(error) from error
    except ReadTimeoutError as error:
        raise requests.ConnectionError(error) from error
    except Urllib3SSLError as error:
        raise requests.exceptions.SSLError(error) from error
    except Urllib3HTTPError:
        raise
    return data
