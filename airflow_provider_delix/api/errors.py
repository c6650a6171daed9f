"""Exceptions a DAG author can catch, one class per thing they would do differently.

Plain Python (no Airflow import) so the core and the emulator tests can use them. Every
message names the connection and says what to do; none ever contains the API key: the key
only travels in the ``Authorization`` header, and response bodies are reduced to the API's
``message`` / ``error`` / ``errors`` fields before they reach a message.
"""

from __future__ import annotations

import re
from typing import Any


class DelixError(Exception):
    """Base of every error raised by this provider for a Delix call."""

    def __init__(
        self,
        message: str,
        *,
        conn_id: str | None = None,
        status_code: int | None = None,
        api_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.conn_id = conn_id
        self.status_code = status_code
        self.api_message = api_message
        # Paid requests only: earlier sends of this call whose answer was lost after sending
        # (Delix may have charged them), set by the hook on whatever it finally raises.
        self.lost_attempts = 0
        # Whether the failed request spends credits (the extraction POSTs), set by the hook:
        # the retry policy treats a refused free request differently (api/retry.py).
        self.paid = False
        # Whether a send of this request that may have been applied is re-sent at most once, set
        # by the hook: an extraction (each send may be charged) and an upload (each send may
        # store its files under uuids nobody is told, on the key's shared 30 files).
        self.resend_once = False


class DelixResponseError(DelixError):
    """The server answered something this client cannot read (not JSON, missing fields).

    The request reached the server and was answered with a success status: whatever it asked
    for may have been done (a file stored, an extraction charged) although the answer is lost.
    ``uuids`` are the stored files the answer did name (an upload answer with the wrong number
    of entries): the caller deletes them.
    """

    def __init__(self, message: str, *, uuids: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.uuids = uuids

    def about(self, what: str, conn_id: str) -> DelixResponseError:
        """The same error naming the request and the connection (parsers know neither).

        Told by ``self.conn_id``, not by the text: a connection id such as ``extract`` is in
        the text of every parser's message without the message naming it.
        """
        if self.conn_id == conn_id:
            return self
        error = DelixResponseError(
            f"{self} (answer to {what}, connection '{conn_id}')",
            uuids=self.uuids,
            conn_id=conn_id,
            status_code=self.status_code,
        )
        error.lost_attempts = self.lost_attempts
        return error


class DelixAuthError(DelixError):
    """401/403: the connection's API key was refused. Never retried."""


class DelixNotFoundError(DelixError):
    """404: unknown or expired file or extract."""


class DelixValidationError(DelixError):
    """422 without an ErrorEnum value: Laravel's validation answer (``errors``, per field), or a
    bare ``message``. The request was refused, nothing applied: a bad argument, a client bug, or
    a file uuid the API no longer knows."""

    def __init__(self, message: str, *, errors: dict[str, list[str]], **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.errors = errors

    @property
    def about_engine(self) -> bool:
        """The engine or its options were refused (``errors.engine...``): the task's settings."""
        return about_engine(self.errors)

    @property
    def about_uuids(self) -> bool:
        """Only file uuids were refused (``errors.files.N.uuid``): Laravel's answer for a uuid
        that names no stored file, as a 404 says for an expired or deleted one."""
        return bool(self.errors) and all(_UUID_FIELD.fullmatch(key) for key in self.errors)


_UUID_FIELD = re.compile(r"files\.\d+\.uuid")


def about_engine(errors: dict[str, list[str]]) -> bool:
    """Whether a validation answer's ``errors`` name the engine or one of its options."""
    return any(key == "engine" or key.startswith("engine.") for key in errors)


class DelixApiError(DelixError):
    """422 with ``error``: the API refused the request with an ErrorEnum value (``self.error``)."""

    def __init__(self, message: str, *, error: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.error = error


class DelixStorageFullError(DelixApiError):
    """STORAGE_COUNT_EXCEEDED / STORAGE_SIZE_EXCEEDED: the account holds 30 files or 100 MB."""


class DelixInsufficientCreditsError(DelixApiError):
    """NO_SUFFICIENT_CREDITS: top up the account, then re-run (finished pages are kept)."""


class DelixRequestError(DelixError):
    """The request could not be made as configured: a redirect loop, an invalid URL or header,
    a body requests cannot encode. Never retried: sending it again fails the same way, so the
    connection (or the caller) must change."""


class DelixTransientError(DelixError):
    """429, 5xx, dropped connections and timeouts: retried by the hook's policy, raised when it gives up.

    ``maybe_applied`` says whether Delix may have applied the request although its answer is
    lost: True for a read timeout, a connection dropped (or its TLS broken) after the request was
    sent, a gateway's 502/504 (and 520-524, 598, 599, any 5xx but 500/501/503); False for a
    connection that never reached the server (refused, DNS, connect timeout, TLS handshake)
    and for 429, 500, 501 and 503. ``paid`` marks a
    request that spends credits when applied (the extraction POSTs), ``resend_once`` one whose
    maybe-applied sends are limited (the extractions, and the upload, which stores files), and
    ``lost_attempts`` (on every :class:`DelixError`) counts the attempts of this call, this one
    included, that failed maybe-applied: the retry policy re-sends such a request after at most
    one of them (:mod:`airflow_provider_delix.api.retry`), and the caller reads the count on the
    error it finally gets to know what may have been charged or stored.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        maybe_applied: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after
        self.maybe_applied = maybe_applied
