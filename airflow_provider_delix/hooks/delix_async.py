"""``DelixAsyncHook``: the ``delix`` connection on an event loop (triggers, async code).

The asynchronous counterpart of :class:`~airflow_provider_delix.hooks.delix.DelixHook` for the
one call a poller needs, ``GET /extracts/{uuid}``. Built on ``aiohttp`` (which the HTTP
provider already depends on), the way Airflow's ``HttpAsyncHook`` is, and sharing every rule
with the sync hook:

* the connection is read without blocking the event loop: through
  ``airflow.providers.common.compat.connection.get_async_connection`` (``aget_connection`` on
  Airflow 3, where a synchronous ``get_connection`` inside the triggerer would deadlock on the
  supervisor), else ``get_connection`` in a worker thread with ``asgiref``'s ``sync_to_async``;
* the API root comes from :func:`~airflow_provider_delix.api.base_url.base_url_from_connection`,
  the extras ``timeout`` and ``max_retries``/``retry_wait_*``/``retry_max_elapsed`` mean what they
  mean for the sync hook, and other extras are sent as headers, as with any HTTP connection;
* the key (the connection's password) only travels as ``Authorization: Bearer <key>``: it is
  never logged, never in a message, never in ``repr``;
* HTTP errors become the typed errors of :mod:`airflow_provider_delix.api.errors` through
  :func:`~airflow_provider_delix.api.responses.raise_for_answer`, the sync hook's mapping;
* the same :class:`~airflow_provider_delix.api.retry.RetryPolicy`: 429 (honouring
  ``Retry-After``), 5xx, dropped connections, timeouts and a 422 ``GENERAL_EXCEPTION`` (a read
  is free, and that refusal applied nothing) are retried with exponential backoff and jitter;
  401/403, 404 and other 422s never are.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import aiohttp
from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_delix.api.auth import usable_api_key
from airflow_provider_delix.api.base_url import base_url_from_connection
from airflow_provider_delix.api.errors import DelixResponseError
from airflow_provider_delix.api.models import Extract
from airflow_provider_delix.api.responses import (
    error_json,
    raise_for_answer,
    read_json_bytes,
    timeout_error,
    unreachable_error,
)
from airflow_provider_delix.api.retry import RetryPolicy, connection_extra
from airflow_provider_delix.hooks._transport import tls_verify
from airflow_provider_delix.hooks.delix import DEFAULT_TIMEOUT, DELIX_EXTRAS

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Connection

# Extras HttpHook reads as request options rather than headers; never sent as headers here either.
_REQUEST_OPTION_EXTRAS = (
    "stream",
    "cert",
    "proxies",
    "proxy",
    "timeout",
    "verify",
    "verify_ssl",
    "allow_redirects",
    "max_redirects",
    "trust_env",
    "check_response",
    "srv_lookup",
)


@dataclass(frozen=True)
class AsyncConnectionSettings:
    """What a ``delix`` connection resolves to for :class:`DelixAsyncHook`; read once per hook.

    ``verify`` is what aiohttp's ``ssl=`` gets: a bool, or a context built as requests builds
    the sync hook's: trusting the CA file (or directory) the ``verify`` extra names, else the
    one ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` names (unless ``trust_env`` is false), and
    presenting the ``cert`` extra's client certificate. ``proxy`` is the ``proxies``/``proxy``
    extra's, else the environment's (``HTTPS_PROXY``, ``NO_PROXY``...) unless ``trust_env`` is
    false: so the triggerer reaches Delix the way the worker does.
    """

    base_url: str
    api_key: str = field(repr=False)
    headers: Mapping[str, str]
    timeout: float
    retry_policy: RetryPolicy
    verify: bool | ssl.SSLContext
    proxy: str | None = field(repr=False)  # it may carry user:password (HTTPS_PROXY)


class DelixAsyncHook(BaseHook):
    """
    Poll the Delix OCR API from an event loop, through an Airflow ``delix`` connection.

    :param delix_conn_id: the connection; its password is the API key, its host the API root
        (default ``https://api.delix.ir/v1``).
    :param timeout: seconds per HTTP request (connection extra ``timeout``; default 120).
    :param retry_policy: overrides the policy read from the connection extras.
    :param sleep: how the retry loop waits (``asyncio.sleep``); tests inject a recorder.

    Use it as ``async with DelixAsyncHook(...) as hook:`` to share one HTTP session (keep-alive)
    between calls; without the ``async with`` each call opens and closes its own.
    """

    conn_name_attr = "delix_conn_id"
    default_conn_name = "delix_default"
    conn_type = "delix"
    hook_name = "Delix (async)"

    def __init__(
        self,
        delix_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        retry_policy: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__()
        self.delix_conn_id = delix_conn_id
        self._timeout_arg = timeout
        self._retry_policy_arg = retry_policy
        self._sleep = sleep
        self._settings: AsyncConnectionSettings | None = None
        self._session: aiohttp.ClientSession | None = None
        self.request_counts: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"DelixAsyncHook(delix_conn_id={self.delix_conn_id!r})"

    # ------------------------------------------------------------------ connection and session

    async def _get_connection(self) -> Connection:
        try:
            from airflow.providers.common.compat.connection import get_async_connection
        except ImportError:  # an older common.compat: the sync lookup, off the event loop
            from asgiref.sync import sync_to_async

            connection: Connection = await sync_to_async(self.get_connection)(self.delix_conn_id)
            return connection
        return await get_async_connection(self.delix_conn_id, hook=self)

    @staticmethod
    async def _get_extras(connection: Connection) -> dict[str, Any]:
        try:
            from airflow.providers.common.compat.connection import get_async_extra_dejson
        except ImportError:  # an older common.compat: extra_dejson masks synchronously, off the loop
            from asgiref.sync import sync_to_async

            extras: dict[str, Any] = await sync_to_async(lambda: connection.extra_dejson)()
            return extras
        return await get_async_extra_dejson(connection)

    async def settings(self) -> AsyncConnectionSettings:
        """The connection's base URL, timeout, retry policy and headers, read on the first call."""
        if self._settings is not None:
            return self._settings
        connection = await self._get_connection()
        api_key = usable_api_key(connection.password, self.delix_conn_id)  # the sync hook's rules
        extras = await self._get_extras(connection)
        own = {*DELIX_EXTRAS, *(f"extra__delix__{name}" for name in DELIX_EXTRAS), *_REQUEST_OPTION_EXTRAS}
        headers = {str(k): str(v) for k, v in extras.items() if k not in own and v is not None}
        timeout = self._timeout_arg if self._timeout_arg is not None else connection_extra(extras, "timeout")
        verify = tls_verify(extras.get("verify", extras.get("verify_ssl", True)))
        trust_env = tls_verify(extras.get("trust_env", True)) is not False
        if verify is True and trust_env:  # requests' own rule for the sync hook
            verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        cert = extras.get("cert")
        proxies = extras.get("proxies", extras.get("proxy"))
        base_url = base_url_from_connection(connection.host, connection.schema, connection.port)
        if isinstance(proxies, Mapping):
            proxies = proxies.get(base_url.split(":", 1)[0])
        if not proxies and trust_env:
            proxies = _environment_proxy(base_url)
        self._settings = AsyncConnectionSettings(
            base_url=base_url,
            api_key=api_key,
            headers=headers,
            timeout=float(timeout) if timeout is not None else DEFAULT_TIMEOUT,
            retry_policy=self._retry_policy_arg or RetryPolicy.from_extras(extras),
            verify=verify
            if verify is True and not cert
            else await asyncio.to_thread(self._tls, verify, cert),
            proxy=str(proxies) if proxies else None,
        )
        return self._settings

    def _tls(self, verify: bool | str, cert: Any) -> ssl.SSLContext | bool:
        """The client context for ``verify`` (False, True, or a CA file or directory, as requests
        reads it) and the ``cert`` extra (a PEM path, or [certificate, key]); built off the event
        loop: it reads files."""
        try:
            if verify is False:
                if not cert:
                    return False
                context = ssl.create_default_context()
                context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            elif verify is True:
                context = ssl.create_default_context()
            elif os.path.isdir(verify):
                context = ssl.create_default_context(capath=verify)
            else:
                context = ssl.create_default_context(cafile=verify)
        except (OSError, ValueError) as error:
            raise ValueError(
                f"Connection '{self.delix_conn_id}': the CA bundle its 'verify' extra (or "
                f"REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE) names cannot be read ({verify}): "
                f"{type(error).__name__}."
            ) from None
        if cert:
            chain = [cert] if isinstance(cert, str) else [str(part) for part in cert]
            try:
                context.load_cert_chain(*chain[:2])
            except (OSError, ValueError, ssl.SSLError) as error:
                raise ValueError(
                    f"Connection '{self.delix_conn_id}': the client certificate its 'cert' extra "
                    f"names cannot be loaded: {type(error).__name__}."
                ) from None
        return context

    async def __aenter__(self) -> DelixAsyncHook:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the shared HTTP session (if any); the hook can be used again afterwards."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    @asynccontextmanager
    async def _session_for_call(self) -> AsyncIterator[aiohttp.ClientSession]:
        if self._session is not None:
            yield self._session
            return
        async with aiohttp.ClientSession() as session:
            yield session

    # ------------------------------------------------------------------ the one request path

    async def _call(
        self, method: str, endpoint: str, what: str, *, params: Mapping[str, Any] | None = None
    ) -> Any:
        settings = await self.settings()
        url = f"{settings.base_url}/{endpoint.lstrip('/')}"
        key = f"{method} /{endpoint.split('/', maxsplit=1)[0]}"
        conn_id = self.delix_conn_id
        headers = {**settings.headers, "Authorization": f"Bearer {settings.api_key}"}

        async def attempt(session: aiohttp.ClientSession) -> Any:
            self.request_counts[key] += 1
            try:
                async with session.request(
                    method,
                    url,
                    params=params,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=settings.timeout),
                    ssl=settings.verify,
                    proxy=settings.proxy,
                    allow_redirects=False,  # a redirect must not carry the key to another host
                ) as response:
                    status = response.status
                    retry_after = response.headers.get("Retry-After")
                    content = await response.read()
            except TimeoutError:
                raise timeout_error(what, settings.timeout, conn_id=conn_id) from None
            except aiohttp.ClientError as error:
                # Only GETs go through here (never paid): the classification only words the message.
                sent = not isinstance(error, aiohttp.ClientConnectorError)
                raise unreachable_error(
                    settings.base_url, what, error, conn_id=conn_id, maybe_applied=sent
                ) from None
            if not 200 <= status < 300:
                raise_for_answer(status, error_json(content), retry_after, conn_id=conn_id, what=what)
            return read_json_bytes(content, status, conn_id=conn_id, what=what)

        retrying = settings.retry_policy.async_retrying(sleep=self._sleep, describe=f"Delix {what}")
        async with self._session_for_call() as session:
            return await retrying(attempt, session)

    # ------------------------------------------------------------------ endpoints

    async def get_extract(self, uuid: str) -> Extract:
        """``GET /extracts/{uuid}``: the extract now, ``processing`` or ``processed``.

        Raises :class:`~airflow_provider_delix.api.errors.DelixNotFoundError` when Delix no longer
        has it and :class:`~airflow_provider_delix.api.errors.DelixAuthError` when the key is refused.
        """
        what = f"extract {uuid}"
        payload = await self._call("GET", f"extracts/{uuid}", what)
        try:
            return Extract.from_api(payload)
        except DelixResponseError as error:  # the sync hook's _reading: name the request and connection
            raise error.about(what, self.delix_conn_id) from None


def _environment_proxy(base_url: str) -> str | None:
    """The proxy the environment gives ``base_url`` (``HTTPS_PROXY``..., minus ``NO_PROXY``), as
    requests finds it for the sync hook (it reads the same variables through ``urllib``)."""
    parts = urlsplit(base_url)
    if not parts.hostname or proxy_bypass(parts.hostname):
        return None
    proxies = getproxies()
    return proxies.get(parts.scheme) or proxies.get("all")
