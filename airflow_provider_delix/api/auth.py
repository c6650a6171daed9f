"""Bearer authentication for Delix, as a ``requests`` ``AuthBase``.

An ``AuthBase`` rather than a default header: the key is attached per request and never sits
in ``session.headers``, which HttpHook and users tend to log or copy. ``__repr__`` is
overridden so that printing the session, the hook or an exception never shows the key.
"""

from __future__ import annotations

from requests import PreparedRequest
from requests.auth import AuthBase


class DelixBearerAuth(AuthBase):
    """Adds ``Authorization: Bearer <API key>`` to each request (spec section 1)."""

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._api_key}"
        return request

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DelixBearerAuth) and other._api_key == self._api_key

    def __hash__(self) -> int:
        return hash(self._api_key)

    def __repr__(self) -> str:
        return "DelixBearerAuth(api_key=***)"
