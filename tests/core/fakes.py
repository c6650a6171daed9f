"""In-memory test doubles for the pipeline: a Delix account and prepared sources.

``FakeDelix`` behaves like the account the pipeline talks to: it enforces the per-request cap
of 5 files and the account's 30 files / 100 MB (raising ``DelixStorageFullError`` like the
API), so a test that never sees that error proves the storage budget. Behaviour is keyed on
the content of a file (a marker at the start of its bytes) so tests choose which file fails:

* ``REJECT``     -> RejectedFile(MALFORMED_FILE) at upload
* ``BADINPUT``   -> a multi-file or single extraction containing it raises BAD_INPUT (422)
* ``FAILPAGE``   -> the page comes back ``failed`` (credits refunded)
* ``EXPIRE``     -> the first extraction that uses it answers 404 (file expired)
* ``EXPIREALL``  -> every extraction that uses it answers 404
* ``TRANSIENT``  -> its extraction raises DelixTransientError

plus account-wide switches: ``credits`` (NO_SUFFICIENT_CREDITS when an extraction costs more
than is left), ``full_for_uploads`` (the next N uploads see someone else's full account),
``auth_fail`` (methods that answer 401), and latencies for the benchmark.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid as uuidlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_delix.api.errors import (
    DelixApiError,
    DelixAuthError,
    DelixInsufficientCreditsError,
    DelixNotFoundError,
    DelixStorageFullError,
    DelixTransientError,
)
from airflow_provider_delix.api.models import (
    MAX_FILES_PER_REQUEST,
    MAX_STORED_BYTES,
    MAX_STORED_FILES,
    ErrorCode,
    Extract,
    ExtractFile,
    ExtractFilePage,
    ExtractStatus,
    PageStatus,
    RejectedFile,
    StoredFile,
)

PRICE_PER_PAGE = 200


def text_of(data: bytes) -> str:
    """The OCR text the fake returns for some content (tests predict it)."""
    return f"text-{hashlib.sha256(data).hexdigest()[:12]}"


class FakeDelix:
    """A thread-safe in-memory Delix account (see the module docstring)."""

    def __init__(
        self,
        *,
        max_files: int = MAX_STORED_FILES,
        max_bytes: int = MAX_STORED_BYTES,
        credits: int | None = None,
        full_for_uploads: int = 0,
        auth_fail: Sequence[str] = (),
        upload_latency: float = 0.0,
        extract_latency: tuple[float, float] = (0.0, 0.0),
        delete_latency: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.max_files, self.max_bytes = max_files, max_bytes
        self.credits = credits
        self.full_for_uploads = full_for_uploads
        self.auth_fail = set(auth_fail)
        self.upload_latency, self.extract_latency, self.delete_latency = (
            upload_latency,
            extract_latency,
            delete_latency,
        )
        self._sleep = sleep
        self.lock = threading.Lock()
        self.stored: dict[str, bytes] = {}
        self.preexisting: set[str] = set()
        self.calls: Counter[str] = Counter()
        self.uploaded: list[str] = []
        self.deleted: list[str] = []
        self.extracted: Counter[str] = Counter()  # sha256 of content -> times extracted (charged)
        self.extract_requests: list[list[str]] = []
        self.expired_once: set[bytes] = set()  # contents that already expired once
        self.peak_files = 0
        self.peak_bytes = 0
        self.storage_full_raised = 0
        self.on_upload: Callable[[], None] | None = None  # hook for tests (e.g. cancel mid-run)

    # ------------------------------------------------------------------ helpers

    def _enter(self, method: str) -> None:
        with self.lock:
            self.calls[method] += 1
        if method in self.auth_fail:
            raise DelixAuthError("The key of connection 'delix_fake' was refused.", status_code=401)

    def _bytes(self) -> int:
        return sum(len(d) for d in self.stored.values())

    def put_foreign(self, data: bytes) -> str:
        """A file someone else (or a crashed attempt) stored on the account."""
        with self.lock:
            uuid = uuidlib.uuid4().hex
            self.stored[uuid] = data
            self.preexisting.add(uuid)
            return uuid

    # ------------------------------------------------------------------ API

    def upload_files(self, files: Sequence[Any]) -> list[StoredFile | RejectedFile]:
        if not 1 <= len(files) <= MAX_FILES_PER_REQUEST:
            raise ValueError(f"upload of {len(files)} files breaks the 5-file cap")
        self._enter("upload_files")
        if self.on_upload is not None:
            self.on_upload()
        self._sleep(self.upload_latency)
        items = [(str(name), bytes(data)) for name, data in files]
        with self.lock:
            if self.full_for_uploads > 0:
                self.full_for_uploads -= 1
                self.storage_full_raised += 1
                raise DelixStorageFullError("full (someone else)", error=ErrorCode.STORAGE_COUNT_EXCEEDED)
            accepted = [d for _, d in items if not d.startswith(b"REJECT")]
            if len(self.stored) + len(accepted) > self.max_files:
                self.storage_full_raised += 1
                raise DelixStorageFullError("30 files stored", error=ErrorCode.STORAGE_COUNT_EXCEEDED)
            if self._bytes() + sum(len(d) for d in accepted) > self.max_bytes:
                self.storage_full_raised += 1
                raise DelixStorageFullError("100 MB stored", error=ErrorCode.STORAGE_SIZE_EXCEEDED)
            out: list[StoredFile | RejectedFile] = []
            for _name, data in items:
                if data.startswith(b"REJECT"):
                    out.append(RejectedFile(reason=ErrorCode.MALFORMED_FILE))
                    continue
                uuid = uuidlib.uuid4().hex
                self.stored[uuid] = data
                self.uploaded.append(uuid)
                out.append(StoredFile(uuid=uuid, extension="png", page_count=1))
            self.peak_files = max(self.peak_files, len(self.stored))
            self.peak_bytes = max(self.peak_bytes, self._bytes())
            return out

    def delete_file(self, uuid: str) -> bool:
        self._enter("delete_file")
        self._sleep(self.delete_latency)
        with self.lock:
            if uuid not in self.stored:
                return False
            del self.stored[uuid]
            self.deleted.append(uuid)
            return True

    def list_files(self) -> list[StoredFile]:
        self._enter("list_files")
        with self.lock:
            return [StoredFile(uuid=u, extension="png", page_count=1) for u in self.stored]

    def extract_images(self, file_uuids: Sequence[str], engine: Any, language: Any) -> Extract:
        uuids = list(file_uuids)
        if not 1 <= len(uuids) <= MAX_FILES_PER_REQUEST or len(set(uuids)) != len(uuids):
            raise ValueError(f"bad extraction request {uuids}")
        self._enter("extract_images")
        base, per_page = self.extract_latency
        self._sleep(base + per_page * len(uuids))
        with self.lock:
            self.extract_requests.append(uuids)
            if any(u not in self.stored for u in uuids):
                raise DelixNotFoundError("404", status_code=404)
            datas = [self.stored[u] for u in uuids]
            for u, d in zip(uuids, datas, strict=True):
                once = d.startswith(b"EXPIRE") and d not in self.expired_once
                if d.startswith(b"EXPIREALL") or once:
                    self.expired_once.add(d)
                    del self.stored[u]
                    raise DelixNotFoundError("404", status_code=404)
            if any(d.startswith(b"TRANSIENT") for d in datas):
                raise DelixTransientError("503 after 5 attempts", status_code=503)
            if any(d.startswith(b"BADINPUT") for d in datas):
                raise DelixApiError(
                    "bad input", error=ErrorCode.BAD_INPUT, status_code=422, api_message="فایل"
                )
            cost = PRICE_PER_PAGE * len(uuids)
            if self.credits is not None:
                if self.credits < cost:
                    raise DelixInsufficientCreditsError("no credits", error=ErrorCode.NO_SUFFICIENT_CREDITS)
                self.credits -= cost
            files, failed = [], 0
            for u, d in zip(uuids, datas, strict=True):
                self.extracted[hashlib.sha256(d).hexdigest()] += 1
                bad = d.startswith(b"FAILPAGE")
                failed += bad
                page = ExtractFilePage(
                    number=1,
                    status=PageStatus.FAILED if bad else PageStatus.PROCESSED,
                    text=None if bad else text_of(d),
                )
                files.append(ExtractFile(uuid=u, pages=(page,), pages_url=None))
            refund = PRICE_PER_PAGE * failed
            if self.credits is not None:
                self.credits += refund
            return Extract(
                uuid=uuidlib.uuid4().hex,
                status=ExtractStatus.PROCESSED,
                file_type="images",
                engine=str(engine),
                language=str(language),
                total_files=len(uuids),
                total_file_pages=len(uuids),
                total_processing_pages=len(uuids),
                initial_cost=cost,
                failed_pages=failed,
                returned_credits=refund,
                files=tuple(files),
            )

    def ours_left(self) -> set[str]:
        """Files still stored that were not there before the test."""
        with self.lock:
            return set(self.stored) - self.preexisting


# ---------------------------------------------------------------------- prepared sources


@dataclass(frozen=True, slots=True)
class Ref:
    source: str


@dataclass(frozen=True, slots=True)
class Page:
    page_number: int
    data: bytes | None
    filename: str = "page.png"
    normalization: str | None = None
    error: str | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class Source:
    ref: Ref
    sha256: str
    pages: tuple[Page, ...] = field(default_factory=tuple)


def source(name: str, *contents: bytes, size: int = 0) -> Source:
    """A source whose pages hold ``contents`` (padded to ``size`` bytes)."""
    pages = tuple(
        Page(i + 1, c.ljust(size, b"."), filename=f"{name}-{i + 1}.png") for i, c in enumerate(contents)
    )
    sha = hashlib.sha256(b"|".join(p.data or b"" for p in pages) + name.encode()).hexdigest()
    return Source(Ref(name), sha, pages)


def invalid_source(name: str, error: str = "corrupt_image") -> Source:
    sha = hashlib.sha256(name.encode()).hexdigest()
    return Source(Ref(name), sha, (Page(1, None, error=error, message="cannot decode"),))


def images(n: int, prefix: str = "img", size: int = 0) -> list[Source]:
    """``n`` one-page sources with distinct content."""
    return [source(f"{prefix}-{i:05d}.png", f"{prefix}-{i}".encode(), size=size) for i in range(n)]


class FakeClock:
    """A manual clock; ``sleep`` advances it (for storage back-off and progress throttling)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.lock = threading.Lock()
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.sleeps.append(seconds)
            self.now += seconds

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds
