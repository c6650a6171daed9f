"""The emulator without HTTP: routes a parsed request to the seven ``/v1`` endpoints.

``EmulatorApp`` is the composition root (settings, clock, account, OCR backend, extractor,
faults, stats); ``server.py`` only turns sockets into ``Request`` objects and ``Response``
objects back into bytes. Keeping the two apart keeps each short and lets the admin endpoints
reuse the same objects.

Order of work for a ``/v1`` request: body read -> fault draw -> bearer auth -> route (unknown
path 404 ``{"message"}``, wrong method 405) -> latency -> handler. Upload decisions where the
spec is silent: form fields other than ``file``, ``file[]`` or ``file[<n>]`` are
``UNKNOWN_FIELD``; no file part at all or more than 5 is ``errors.file``; a body that is not a
multipart form is treated as having no file part.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
import uuid as uuidlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_delix.api.models import MAX_FILES_PER_REQUEST, ErrorCode
from airflow_provider_delix.emulator import filetypes
from airflow_provider_delix.emulator.account_events import LostAnswers
from airflow_provider_delix.emulator.answer_faults import AnswerFaults, spoil
from airflow_provider_delix.emulator.apierrors import (
    ApiError,
    enum_error,
    not_found,
    unauthenticated,
    validation_error,
)
from airflow_provider_delix.emulator.clock import Clock
from airflow_provider_delix.emulator.config import EmulatorConfig
from airflow_provider_delix.emulator.extraction import Extractor, contents_page, extract_json
from airflow_provider_delix.emulator.extraction_request import DOCUMENT, IMAGE
from airflow_provider_delix.emulator.faults import DROP, FaultInjector, fault_error
from airflow_provider_delix.emulator.multipart import MultipartError, parse_multipart
from airflow_provider_delix.emulator.ocr import OcrBackend, make_backend
from airflow_provider_delix.emulator.state import Account, StoredBlob
from airflow_provider_delix.emulator.stats import CallStats

_FILE_FIELD = re.compile(r"^file(\[\d*\])?$")
_UUID = r"([^/]+)"
ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"^/files$"), "POST /files"),
    ("GET", re.compile(r"^/files$"), "GET /files"),
    ("DELETE", re.compile(rf"^/files/{_UUID}$"), "DELETE /files/{uuid}"),
    ("POST", re.compile(r"^/image-extraction$"), "POST /image-extraction"),
    ("POST", re.compile(r"^/document-extraction$"), "POST /document-extraction"),
    ("GET", re.compile(rf"^/extracts/{_UUID}$"), "GET /extracts/{uuid}"),
    (
        "GET",
        re.compile(rf"^/extracts/{_UUID}/files/{_UUID}/contents$"),
        "GET /extracts/{uuid}/files/{uuid}/contents",
    ),
]


@dataclass
class Request:
    method: str
    path: str  # below /v1, e.g. "/files"
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    base_url: str  # e.g. http://127.0.0.1:8080/v1, from the Host header


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class EmulatorApp:
    """One emulated Delix account and everything needed to answer for it."""

    def __init__(
        self, config: EmulatorConfig, clock: Clock | None = None, backend: OcrBackend | None = None
    ) -> None:
        self.initial_config = config
        self.config = config
        self.clock = clock or Clock()
        self.account = Account(config.credits)
        self.stats = CallStats()
        self.faults = FaultInjector(config.seed)
        self.answer_faults = AnswerFaults(config.seed)
        self.lost_answers = LostAnswers()  # admin: answers lost after apply (account_events.py)
        self.backend = backend or make_backend(config.ocr)
        self.extractor = Extractor(
            lambda: self.account, self.backend, lambda: self.config, self.clock, self.stats
        )
        self._config_lock = threading.Lock()

    # -- admin operations --------------------------------------------------------------------
    def configure(self, changes: Mapping[str, Any]) -> EmulatorConfig:
        """Apply settings; ``add_credits`` tops up, ``credits`` sets the balance, ``seed`` reseeds."""
        changes = dict(changes)
        add = changes.pop("add_credits", None)
        if "ocr" in changes and changes["ocr"] != self.config.ocr:
            raise ValueError("the OCR backend is chosen at start and cannot be changed")
        with self._config_lock:
            new = self.config.replace(changes)
            if add is not None and (not isinstance(add, int) or isinstance(add, bool) or add < 0):
                raise ValueError("add_credits must be a non-negative integer")
            self.config = new
            if "credits" in changes:
                with self.account.lock:
                    self.account.balance = new.credits
            if add:
                self.account.top_up(add)
            if "seed" in changes:
                self.faults.reseed(new.seed)
                self.answer_faults.reseed(new.seed)
                self.extractor.reseed(new.seed)
        self.extractor.queue.wake()  # queue_delay / async_workers act on extracts already queued
        return new

    def reset(self) -> None:
        """Forget every file, extract, count and credit; settings and clock go back to the start."""
        with self._config_lock:
            self.config = self.initial_config
            self.extractor.queue.clear()
            self.account = Account(self.config.credits)
            self.stats = CallStats()
            self.extractor._stats = self.stats
            self.faults.reseed(self.config.seed)
            self.answer_faults.reseed(self.config.seed)
            self.lost_answers.clear()
            self.extractor.reseed(self.config.seed)
            self.clock.reset()
        self.extractor.queue.wake()

    def snapshot(self) -> dict[str, Any]:
        self.account.purge_expired(self.clock.now())
        return {
            **self.stats.snapshot(),
            **self.account.snapshot(),
            "queue": self.extractor.queue.snapshot(),
            "clock": self.clock.now(),
        }

    def close(self) -> None:
        self.extractor.close()

    # -- /v1 ---------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response | None:
        """The answer to one ``/v1`` request, or None to drop the connection without one."""
        endpoint, params, allowed = self._route(request)
        config = self.config
        stats = self.stats
        fault = self.faults.draw(config)
        if fault is not None:
            stats.count_fault(fault)
            stats.count_call(endpoint, "dropped" if fault == DROP else fault)
            if fault == DROP:
                return None
            error = fault_error(fault, config)
            return Response(error.status, error.body, error.headers)
        try:
            self._authenticate(request, config)
            if not allowed and endpoint == "unknown":
                raise ApiError(404, {"message": "Not Found"})
            if not allowed:
                raise ApiError(405, {"message": "Method Not Allowed"})
            response = self._dispatch(endpoint, params, request, config)
            spoiled = self.answer_faults.draw(endpoint, config) if response.status in (201, 207) else None
            if spoiled is not None:
                stats.count_fault(spoiled)
                response = Response(response.status, spoil(spoiled, response.body), response.headers)
        except ApiError as error:
            response = Response(error.status, error.body, error.headers)
        if self.lost_answers.drop(endpoint, response.status):
            stats.count_fault("lost_after_apply")
            stats.count_call(endpoint, "dropped")
            return None
        stats.count_call(endpoint, response.status)
        return response

    def _route(self, request: Request) -> tuple[str, tuple[str, ...], bool]:
        path_known = None
        for method, pattern, name in ROUTES:
            match = pattern.match(request.path)
            if match:
                if method == request.method:
                    return name, match.groups(), True
                path_known = f"{request.method} {name.split(' ', 1)[1]}"
        return (path_known or "unknown"), (), False

    @staticmethod
    def _authenticate(request: Request, config: EmulatorConfig) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            key.strip().encode(), config.api_key.encode()
        ):
            raise unauthenticated()

    def _dispatch(
        self, endpoint: str, params: tuple[str, ...], request: Request, config: EmulatorConfig
    ) -> Response:
        now = self.clock.now
        if endpoint == "POST /files":
            time.sleep(config.latency_upload)
            return Response(207, {"data": self._upload(request)})
        if endpoint == "DELETE /files/{uuid}":
            time.sleep(config.latency_delete)
            if not self.account.delete_file(params[0], now()):
                raise not_found()
            return Response(200, {})
        if endpoint in ("POST /image-extraction", "POST /document-extraction"):
            kind = IMAGE if endpoint == "POST /image-extraction" else DOCUMENT
            record = self.extractor.create(kind, _json_body(request.body))
            return Response(201, {"data": extract_json(record, request.base_url)})
        time.sleep(config.latency_other)
        if endpoint == "GET /files":
            return Response(200, {"data": [b.as_api() for b in self.account.live_files(now())]})
        if endpoint == "GET /extracts/{uuid}":
            return Response(200, {"data": extract_json(self.extractor.find(params[0]), request.base_url)})
        record = self.extractor.find(params[0])
        page = _page_number(request.query.get("page"))
        return Response(200, contents_page(record, params[1], page, config.per_page, request.base_url))

    def _upload(self, request: Request) -> list[dict[str, Any]]:
        try:
            parts = parse_multipart(request.headers.get("content-type", ""), request.body)
        except MultipartError:
            parts = []
        unknown = [p.name for p in parts if not _FILE_FIELD.match(p.name)]
        if unknown:
            raise enum_error(ErrorCode.UNKNOWN_FIELD, ", ".join(unknown))
        if not parts:
            raise validation_error({"file": ["The file field is required."]})
        if len(parts) > MAX_FILES_PER_REQUEST:
            raise validation_error(
                {"file": [f"The file may not have more than {MAX_FILES_PER_REQUEST} items."]}
            )
        entries: list[dict[str, Any]] = []
        blobs: list[StoredBlob] = []
        now = self.clock.now()
        for part in parts:
            verdict = filetypes.check_upload(part.data)
            if isinstance(verdict, ErrorCode):
                entries.append({"status": "rejected", "reason": verdict.value})
                continue
            blob = StoredBlob(
                uuid=str(uuidlib.uuid4()),
                kind=verdict.kind,
                page_count=verdict.page_count,
                data=part.data,
                sha256=hashlib.sha256(part.data).hexdigest(),
                uploaded_at=now,
            )
            blobs.append(blob)
            entries.append(blob.as_api())
        self.account.store(blobs, now)
        return entries


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        return None


def _page_number(raw: str | None) -> int:
    """Laravel reads a missing or unusable ``page`` as page 1."""
    try:
        page = int(raw) if raw is not None else 1
    except ValueError:
        return 1
    return max(page, 1)
