"""Bearer authentication for Delix, as a ``requests`` ``AuthBase``, and the key it sends.

An ``AuthBase`` rather than a default header: the key is attached per request and never sits
in ``session.headers``, which HttpHook and users tend to log or copy. ``__repr__`` is
overridden so that printing the session, the hook or an exception never shows the key.

The key is read from the connection's password once, here, for every hook: keys pasted from
a secret file often end with a newline, which ``http.client`` refuses in a header with a
``ValueError`` whose text *is* the header, key included. So surrounding whitespace is
stripped, and a key that still holds a control character (or one no HTTP header can carry) is
refused before any request, by an error that names the connection and never the key.
"""

from __future__ import annotations

from requests import PreparedRequest
from requests.auth import AuthBase

from airflow_provider_delix.api.errors import DelixAuthError


def usable_api_key(password: str | None, conn_id: str) -> str:
    """The key a connection's password holds, stripped; :class:`DelixAuthError` if it has none
    or it cannot travel in an HTTP header (the message says why, never what the key is)."""
    key = (password or "").strip()
    if not key:
        raise DelixAuthError(
            f"Connection '{conn_id}' has no API key: put the Delix API key in its password field.",
            conn_id=conn_id,
        )
    if not _header_safe(key):
        raise DelixAuthError(
            f"The API key of connection '{conn_id}' contains a control character (a line break or "
            "tab inside it?) or a character an HTTP header cannot carry: put the key from the Delix "
            "dashboard in its password field again, as one line.",
            conn_id=conn_id,
        )
    return key


def _header_safe(key: str) -> bool:
    """What ``http.client`` sends as a header value: latin-1, no C0/C1 control character."""
    try:
        key.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in key)


class DelixBearerAuth(AuthBase):
    """Adds ``Authorization: Bearer <API key>`` to each request (docs/api.md, "General").

    ``api_key`` is the connection's password as stored; see :func:`usable_api_key`.
    """

    def __init__(self, api_key: str | None, *, conn_id: str) -> None:
        self._api_key = usable_api_key(api_key, conn_id)

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._api_key}"
        return request

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DelixBearerAuth) and other._api_key == self._api_key

    def __hash__(self) -> int:
        return hash(self._api_key)

    def __repr__(self) -> str:
        return "DelixBearerAuth(api_key=***)"
