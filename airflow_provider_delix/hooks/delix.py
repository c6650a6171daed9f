"""``DelixHook``: the ``delix`` connection and every endpoint of the Delix OCR API.

Built on ``HttpHook`` so the connection behaves like every other HTTP connection (proxies,
``verify``, ``timeout`` extras), with three changes that the API needs:

* the API key (the connection's password) is sent by :class:`DelixBearerAuth`, never as a header
  that could be logged, and never appears in a message;
* one ``requests.Session`` per hook, built once and reused (keep-alive), with a connection pool
  sized for ``max_connections`` threads: nothing on the session is mutated after it is built,
  so several worker threads may share one hook (a ``ThreadPoolExecutor`` calling its methods);
* one explicit retry policy (:mod:`airflow_provider_delix.api.retry`) around every call; a
  paid request (an extraction) whose answer may have been lost after Delix applied it is
  re-sent at most once, and an extraction waits ``extraction_timeout`` for its answer (a slow
  server may take minutes), while every connection attempt stays bounded by ``timeout``.

The endpoints themselves are in :mod:`.hooks._files` (stored files) and :mod:`.hooks._extracts`
(extraction results), which only call the request path kept here.

Every page costs a delete request (the API has no bulk delete), so the per-request client CPU
is most of a run's: a ``Retrying`` is built once per thread, not per call, requests' per-call
environment lookups are done once, when the session is built, when that changes nothing, and
requests go through the session's connection pool directly when nothing per call could differ
(:mod:`airflow_provider_delix.hooks._transport`).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import requests
from airflow.providers.http.hooks.http import HttpHook
from tenacity import Retrying

from airflow_provider_delix.api.auth import DelixBearerAuth
from airflow_provider_delix.api.base_url import base_url_from_connection
from airflow_provider_delix.api.errors import (
    DelixAuthError,
    DelixError,
    DelixResponseError,
    DelixTransientError,
)
from airflow_provider_delix.api.models import (
    IMAGE_EXTRACTION_ENGINES,
    MAX_FILES_PER_REQUEST,
    Engine,
    Extract,
    Language,
    engine_body,
    parse_stored_files,
)
from airflow_provider_delix.api.responses import (
    NO_ANSWER,
    error_text,
    raise_for_status,
    read_json,
    request_error,
    transport_error,
)
from airflow_provider_delix.api.retry import RETRY_EXTRAS, RetryPolicy, connection_extra
from airflow_provider_delix.core.key_registry import KeyRegistry
from airflow_provider_delix.core.orphan_sweep import SweepReport
from airflow_provider_delix.hooks._extracts import ExtractEndpoints
from airflow_provider_delix.hooks._files import FileEndpoints
from airflow_provider_delix.hooks._forms import connection_form_widgets, ui_field_behaviour
from airflow_provider_delix.hooks._registry import REGISTRY_EXTRAS, registry_for_connection
from airflow_provider_delix.hooks._transport import (
    LeanAnswer,
    LeanTransport,
    mount_pool,
    read_environment_once,
    tls_verify,
)

# Our own connection extras. HttpHook sends unknown extras as HTTP headers, so these are
# removed from the session's headers after HttpHook has built it.
DELIX_EXTRAS = (*RETRY_EXTRAS, "timeout", "extraction_timeout", "max_connections", *REGISTRY_EXTRAS)
DEFAULT_TIMEOUT = 120.0
# An extraction is answered once its OCR is done; a loaded server may take minutes for 5 pages,
# and a timed-out extraction may still be charged: wait long rather than pay twice.
DEFAULT_EXTRACTION_TIMEOUT = 600.0
DEFAULT_MAX_CONNECTIONS = 32


class DelixHook(FileEndpoints, ExtractEndpoints, HttpHook):
    """
    Talk to the Delix OCR API through an Airflow ``delix`` connection.

    :param delix_conn_id: the connection; its password is the API key, its host the API root
        (default ``https://api.delix.ir/v1``).
    :param timeout: seconds per HTTP request (connection extra ``timeout``; default 120); also
        the connect timeout of extractions.
    :param extraction_timeout: seconds an extraction request waits for its answer (connection
        extra ``extraction_timeout``; default 600). A timed-out extraction may be charged anyway:
        it is re-sent at most once (see ``docs/resume-and-credits.md``).
    :param retry_policy: overrides the policy read from the connection extras ``max_retries``,
        ``retry_wait_initial``, ``retry_wait_max``, ``retry_max_elapsed``.
    :param max_connections: keep-alive connections kept for concurrent threads (default 32).
    :param sleep: how the retry loop waits; tests inject a recorder instead of ``time.sleep``.
    """

    conn_name_attr = "delix_conn_id"
    default_conn_name = "delix_default"
    conn_type = "delix"
    hook_name = "Delix"

    def __init__(
        self,
        delix_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        extraction_timeout: float | None = None,
        retry_policy: RetryPolicy | None = None,
        max_connections: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        **kwargs: Any,
    ) -> None:
        super().__init__(method="GET", http_conn_id=delix_conn_id, **kwargs)
        self.delix_conn_id = delix_conn_id
        self._timeout_arg = timeout
        self._extraction_timeout_arg = extraction_timeout
        self._retry_policy_arg = retry_policy
        self._max_connections_arg = max_connections
        self._sleep = sleep
        self._session: requests.Session | None = None
        self._lean: LeanTransport | None = None  # the session's lean path (hooks/_transport.py)
        self._session_lock = threading.Lock()
        self._counts_lock = threading.Lock()
        self._per_thread = threading.local()  # each thread's Retrying (see _retrying)
        self.request_counts: Counter[str] = Counter()
        self.timeout = DEFAULT_TIMEOUT
        self.extraction_timeout = DEFAULT_EXTRACTION_TIMEOUT
        self.retry_policy = retry_policy or RetryPolicy()

    # ------------------------------------------------------------------ connection and session

    def get_conn(
        self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
    ) -> requests.Session:
        """The hook's session, built once; with headers or extra options, a new unshared one."""
        if headers or extra_options:
            return self._build_session(headers, extra_options)
        with self._session_lock:
            if self._session is None:
                self._session = self._build_session(None, None)
                self._lean = LeanTransport.for_session(self._session, self.base_url)
            return self._session

    def _build_session(
        self, headers: dict[Any, Any] | None, extra_options: dict[str, Any] | None
    ) -> requests.Session:
        connection = self.get_connection(self.delix_conn_id)
        auth = DelixBearerAuth(connection.password, conn_id=self.delix_conn_id)  # refuses an unusable key
        session = super().get_conn(headers, extra_options)
        extras = connection.extra_dejson
        for name in DELIX_EXTRAS:
            session.headers.pop(name, None)
            session.headers.pop(f"extra__delix__{name}", None)
        session.auth = auth
        session.verify = tls_verify(session.verify)
        self.base_url = base_url_from_connection(connection.host, connection.schema, connection.port)
        timeout = self._timeout_arg if self._timeout_arg is not None else connection_extra(extras, "timeout")
        self.timeout = float(timeout) if timeout is not None else DEFAULT_TIMEOUT
        slow = self._extraction_timeout_arg
        slow = slow if slow is not None else connection_extra(extras, "extraction_timeout")
        self.extraction_timeout = float(slow) if slow is not None else DEFAULT_EXTRACTION_TIMEOUT
        if self.timeout <= 0 or self.extraction_timeout <= 0:
            raise ValueError(
                f"Connection '{self.delix_conn_id}': timeout and extraction_timeout must be > 0 seconds."
            )
        self.retry_policy = self._retry_policy_arg or RetryPolicy.from_extras(extras)
        pool = (
            self._max_connections_arg
            or connection_extra(extras, "max_connections")
            or DEFAULT_MAX_CONNECTIONS
        )
        mount_pool(
            session,
            int(pool),
            adapter=getattr(self, "adapter", None),
            keep_alive=getattr(self, "keep_alive_adapter", None),
        )
        read_environment_once(session, extras)
        return session

    def close(self) -> None:
        """Close the pooled connections; the next call builds a new session."""
        with self._session_lock:
            if self._session is not None:
                self._session.close()
                self._session = None
                self._lean = None

    # ------------------------------------------------------------------ the one request path

    @contextmanager
    def _reading(self, what: str, lost: list[int] | None = None) -> Iterator[None]:
        """Parsing an answer: a malformed one names the request and the connection (and, for a
        paid request, how many of its sends lost their answer before this one)."""
        try:
            yield
        except DelixResponseError as exc:
            error = exc.about(what, self.delix_conn_id)
            error.lost_attempts = lost[0] if lost else error.lost_attempts
            raise error from None

    def _call(
        self,
        method: str,
        endpoint: str,
        what: str,
        *,
        json: Any = None,
        files: Sequence[tuple[str, bytes]] | None = None,
        params: Mapping[str, Any] | None = None,
        paid: bool = False,
        resend_once: bool = False,
        lost: list[int] | None = None,
        once: bool = False,
    ) -> Any:
        """One request under the retry policy (``once``: a single attempt, no retry).

        ``paid`` requests wait ``extraction_timeout`` for their answer; they, and ``resend_once``
        requests (uploads: each applied send stores files nobody is told of), are re-sent at
        most once after a maybe-applied failure. ``lost`` (a box) receives how many sends of
        this call lost their answer after sending."""
        session = self.get_conn()
        endpoint = endpoint.lstrip("/")
        url = f"{self.base_url}/{endpoint}"
        key = f"{method} /{endpoint.split('/', maxsplit=1)[0]}"
        read_timeout = self.extraction_timeout if paid else self.timeout
        lost = lost if lost is not None else [0]
        lean = self._lean if self._lean is not None and self._lean.takes(endpoint, params) else None

        def attempt() -> Any:
            with self._counts_lock:
                self.request_counts[key] += 1
            # Multipart parts are rebuilt on every attempt so a retry re-sends the whole body.
            multipart = [("file[]", (name, data, "application/octet-stream")) for name, data in files or ()]
            try:
                try:
                    # The lean path raises what session.request would; None: a redirect to follow.
                    response: requests.Response | LeanAnswer | None = None
                    if lean is not None:
                        timeouts = (self.timeout, read_timeout)
                        response = lean.send(
                            method, endpoint, json=json, files=files, params=params, timeout=timeouts
                        )
                    if response is None:
                        # verify= as HttpHook.run passes it, else a CA bundle variable wins over it.
                        response = session.request(
                            method,
                            url,
                            json=json,
                            files=multipart or None,
                            params=params,
                            timeout=(self.timeout, read_timeout),
                            verify=session.verify,
                        )
                except NO_ANSWER as error:
                    raise transport_error(
                        error, self.base_url, what, read_timeout, conn_id=self.delix_conn_id
                    ) from None
                except requests.RequestException as error:  # a redirect loop, an invalid URL, ...
                    raise request_error(error, self.base_url, what, conn_id=self.delix_conn_id) from None
                raise_for_status(response, conn_id=self.delix_conn_id, what=what)
                return read_json(response, conn_id=self.delix_conn_id, what=what)
            except DelixError as error:
                # The history the retry policy reads (api/retry.py): sends that may have been
                # applied; whatever is finally raised tells the caller how many there were.
                if isinstance(error, DelixTransientError):
                    lost[0] += error.maybe_applied
                error.paid = paid
                error.resend_once = paid or resend_once
                error.lost_attempts = lost[0]
                raise

        if once:
            return attempt()
        retrying, describe = self._retrying()
        describe[0] = f"Delix {what}"
        return retrying(attempt)

    def _retrying(self) -> tuple[Retrying, list[str]]:
        """This thread's ``Retrying`` under the current policy, and the box naming its call.

        Building a ``Retrying`` (and its stop/wait/retry objects) on every call was a tenth of
        the client's CPU per request. One per thread is safe: tenacity keeps a call's state in
        thread-local storage, and a thread runs one call at a time; the retry log line reads
        the call's description from the box, which ``_call`` fills before each call.
        """
        local = self._per_thread
        if getattr(local, "policy", None) is not self.retry_policy or local.sleep is not self._sleep:
            describe = [""]
            local.retrying = self.retry_policy.retrying(sleep=self._sleep, describe=lambda: describe[0])
            local.describe, local.policy, local.sleep = describe, self.retry_policy, self._sleep
        return local.retrying, local.describe

    # ------------------------------------------------------------------ extraction

    def extract_images(
        self,
        file_uuids: Sequence[str],
        engine: Engine | str = Engine.DANLIN,
        language: Language | str = Language.FA,
    ) -> Extract:
        """OCR 1 to 5 stored images (always synchronous); the Extract carries the pages' text."""
        uuids = list(file_uuids)
        if not 1 <= len(uuids) <= MAX_FILES_PER_REQUEST:
            raise ValueError(f"extract_images takes 1 to {MAX_FILES_PER_REQUEST} files, got {len(uuids)}.")
        if len(set(uuids)) != len(uuids):
            raise ValueError("extract_images got the same file uuid twice (the API answers DUPLICATED_FILE).")
        if Engine(engine) not in IMAGE_EXTRACTION_ENGINES:
            raise ValueError(
                "The probe engine reads a PDF's text layer; image extraction refuses it (WRONG_FILE_TYPE). "
                "Use danlin or tiho for images."
            )
        body = {"engine": engine_body(engine, language), "files": [{"uuid": u} for u in uuids]}
        what = f"the image extraction of {len(uuids)} file(s)"
        lost = [0]
        payload = self._call("POST", "image-extraction", what, json=body, paid=True, lost=lost)
        with self._reading(what, lost):
            return dataclasses.replace(Extract.from_api(payload), lost_attempts=lost[0])

    # ------------------------------------------------------------------ key registry

    def key_registry(self) -> KeyRegistry:
        """The registry the tasks on this key share (connection extras ``registry_path``,
        ``foreign_uploaders``): where uploads are claimed so leftovers can be swept."""
        return registry_for_connection(self.get_connection(self.delix_conn_id))

    def cleanup_orphans(self, *, dry_run: bool = False, intent_wait: float = 60.0) -> SweepReport:
        """Delete the files on the account that no live task on this key claims (``docs/cleanup.md``).

        With ``foreign_uploaders`` files nobody claims are only reported (with their expiry);
        ``dry_run`` deletes nothing and lists what would go (``would_delete``).
        """
        from airflow_provider_delix.core.orphan_sweep import sweep_orphans

        return sweep_orphans(self, self.key_registry(), dry_run=dry_run, intent_wait=intent_wait)

    # ------------------------------------------------------------------ Airflow integration

    def test_connection(self) -> tuple[bool, str]:
        """Called by the UI's Test button: lists files once, says in plain words what happened.

        One attempt bounded by the connection's ``timeout``, as ``HttpHook`` tests with one
        request: under the retry policy the button blocked for the whole backoff (33 s against a
        refused port, up to ``retry_max_elapsed`` for a host that drops packets).
        """
        try:
            payload = self._call("GET", "files", "the file list", once=True)
            with self._reading("the file list"):
                files = parse_stored_files(payload)
        except DelixAuthError as error:
            if error.status_code is None:  # no key, or one no request can carry: said before sending
                return False, str(error)
            return False, f"Delix refused the API key of connection '{self.delix_conn_id}'."
        except DelixTransientError as error:
            return False, f"Delix is unreachable or failing: {error}"
        except DelixError as error:
            return False, str(error)
        except Exception as error:  # the UI needs a sentence, not a traceback
            return False, f"Could not use connection '{self.delix_conn_id}': {error_text(error)}"
        return True, f"The key works: Delix answered with {len(files)} stored file(s)."

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Connection form on Airflow < 3.2 (3.2+ reads ``ui-field-behaviour`` from provider info)."""
        return ui_field_behaviour()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Typed extras on Airflow < 3.2 (3.2+ reads ``conn-fields`` from provider info)."""
        return connection_form_widgets()
