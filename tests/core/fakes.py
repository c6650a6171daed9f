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
* ``TRANSIENT``  -> its extraction raises DelixTransientError (never reached Delix: nothing charged)
* ``LOSTONCE``   -> its extraction's first answer was lost after apply: charged twice, answered once
* ``LOSTTWICE``  -> both sends charged, both answers lost: a maybe-applied DelixTransientError
* ``LOSTBAD``    -> the first send charged and its answer lost, the re-send refused (BAD_INPUT)
* ``PACKFAIL``   -> (in a JPEG) the page fails inside a packed PDF, not as an image

plus account-wide switches: ``credits`` (NO_SUFFICIENT_CREDITS when an extraction costs more
than is left), ``full_for_uploads`` (the next N uploads see someone else's full account),
``auth_fail`` (methods that answer 401), and latencies for the benchmark.

PDFs (``/document-extraction``, as the emulator models it): an upload is checked like the API
does (over 8 MB: BAD_INPUT, over 150 pages: PAGE_COUNT_LIMIT_EXCEEDED); a request of at most 5
pages is answered at once with the pages inline, a larger one is *queued*: ``processing``
until ``queue_polls`` calls of ``get_extract`` saw it and ``queue_seconds`` passed on
``clock``, then its pages come through ``iter_extract_pages``; deleting a file of a queued
extract before that answers FILE_UNDER_PROCESSING. A page's text is its text layer (the
emulator's groundtruth OCR), for a page that embeds one JPEG (a packed image) what that
JPEG would read as an image (``text_of``), else ``ocr-<sha12>-p<n>`` (empty for ``probe``); a page
whose text says ``FAILPAGE`` fails (refunded). ``charged_pages`` counts each page paid for.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid as uuidlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
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
    MAX_PDF_BYTES,
    MAX_PDF_PAGES,
    MAX_STORED_BYTES,
    MAX_STORED_FILES,
    MAX_SYNC_DOCUMENT_PAGES,
    ErrorCode,
    Extract,
    ExtractFile,
    ExtractFilePage,
    ExtractStatus,
    PageStatus,
    RejectedFile,
    StoredFile,
    engine_body,
)
from airflow_provider_delix.core.options import parse_page_selection
from airflow_provider_delix.emulator.pdf import page_jpeg

PRICE_PER_PAGE = 200
PRICE_PER_PDF_PAGE = 100


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
        queue_polls: int = 2,
        queue_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
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
        self.expiring = True  # False: EXPIRE markers no longer make files vanish (the server recovered)
        self.uploaded: list[str] = []
        self.deleted: list[str] = []
        self.extracted: Counter[str] = Counter()  # sha256 of content -> times extracted (charged)
        self.extract_requests: list[list[str]] = []
        self.expired_once: set[bytes] = set()  # contents that already expired once
        self.peak_files = 0
        self.peak_bytes = 0
        self.storage_full_raised = 0
        self.on_upload: Callable[[], None] | None = None  # hook for tests (e.g. cancel mid-run)
        self.queue_polls, self.queue_seconds, self.clock = queue_polls, queue_seconds, clock
        self.pdf_pages: dict[str, int] = {}  # stored PDF uuid -> its page count
        self.extracts: dict[str, _FakeExtract] = {}
        self.document_requests: list[tuple[str, list[tuple[str, str | None]]]] = []  # (engine, files)
        self.charged_pages: Counter[str] = Counter()  # page text -> times paid for

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
                pages = _pdf_page_count(data) if data.startswith(b"%PDF-") else None
                refusal = _pdf_refusal(data, pages)
                if refusal is not None:
                    out.append(RejectedFile(reason=refusal))
                    continue
                uuid = uuidlib.uuid4().hex
                self.stored[uuid] = data
                self.uploaded.append(uuid)
                if pages is None:
                    out.append(StoredFile(uuid=uuid, extension="png", page_count=1))
                else:
                    self.pdf_pages[uuid] = pages
                    out.append(StoredFile(uuid=uuid, extension="pdf", page_count=pages))
            self.peak_files = max(self.peak_files, len(self.stored))
            self.peak_bytes = max(self.peak_bytes, self._bytes())
            return out

    def delete_file(self, uuid: str) -> bool:
        self._enter("delete_file")
        self._sleep(self.delete_latency)
        with self.lock:
            if uuid not in self.stored:
                return False
            if any(uuid in ex.file_uuids and not self._ready(ex) for ex in self.extracts.values()):
                raise DelixApiError(
                    "in use by a queued extract", error=ErrorCode.FILE_UNDER_PROCESSING, status_code=422
                )
            del self.stored[uuid]
            self.deleted.append(uuid)
            return True

    def list_files(self) -> list[StoredFile]:
        self._enter("list_files")
        with self.lock:
            return [
                StoredFile(
                    uuid=u,
                    extension="pdf" if u in self.pdf_pages else "png",
                    page_count=self.pdf_pages.get(u, 1),
                )
                for u in self.stored
            ]

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
                if self.expiring and (d.startswith(b"EXPIREALL") or once):
                    self.expired_once.add(d)
                    del self.stored[u]
                    raise DelixNotFoundError("404", status_code=404)
            if any(d.startswith(b"TRANSIENT") for d in datas):
                raise DelixTransientError("503 after 5 attempts", status_code=503)
            if any(d.startswith(b"LOSTBAD") for d in datas):
                # The first send was applied (charged) and its answer lost; the re-send is refused.
                for d in datas:
                    self.extracted[hashlib.sha256(d).hexdigest()] += 1
                refused = DelixApiError("bad input", error=ErrorCode.BAD_INPUT, status_code=422)
                refused.lost_attempts = 1
                raise refused
            if any(d.startswith(b"BADINPUT") for d in datas):
                raise DelixApiError(
                    "bad input", error=ErrorCode.BAD_INPUT, status_code=422, api_message="فایل"
                )
            cost = PRICE_PER_PAGE * len(uuids)
            if self.credits is not None:
                if self.credits < cost:
                    raise DelixInsufficientCreditsError("no credits", error=ErrorCode.NO_SUFFICIENT_CREDITS)
                self.credits -= cost
            # The hook re-sends a request whose answer was lost after it was applied at most once.
            lost = 2 if any(d.startswith(b"LOSTTWICE") for d in datas) else 0
            lost = lost or int(any(d.startswith(b"LOSTONCE") for d in datas))
            for d in datas:
                self.extracted[hashlib.sha256(d).hexdigest()] += lost  # every lost send was charged
            if self.credits is not None:
                self.credits -= cost * lost
            if lost == 2:
                error = DelixTransientError("Delix did not answer (read timeout)", maybe_applied=True)
                error.paid, error.lost_attempts = True, 2
                raise error
            files, failed = [], 0
            for u, d in zip(uuids, datas, strict=True):
                self.extracted[hashlib.sha256(d).hexdigest()] += 1
                bad = d.startswith(b"FAILPAGE") or b"delix:fail=1" in d  # a JPEG may say it in a comment
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
            extract_uuid = uuidlib.uuid4().hex
            self.extracts[extract_uuid] = _FakeExtract(  # readable later, as on Delix
                uuid=extract_uuid,
                engine=str(engine),
                language=str(language),
                pages={f.uuid: f.pages or () for f in files},
                cost=cost,
                failed=failed,
                refund=refund,
                queued=False,
                created=self.clock(),
                file_type="images",
            )
            return Extract(
                uuid=extract_uuid,
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
                lost_attempts=lost,
            )

    # ------------------------------------------------------------------ documents

    def extract_documents(
        self, files: Sequence[tuple[str, str | None]], engine: Any, language: Any
    ) -> Extract:
        items = [(str(u), sel) for u, sel in files]
        uuids = [u for u, _ in items]
        if not 1 <= len(items) <= MAX_FILES_PER_REQUEST or len(set(uuids)) != len(uuids):
            raise ValueError(f"bad extraction request {items}")
        engine_body(engine, language)  # what the hook sends: probe takes no language, the others need one
        self._enter("extract_documents")
        with self.lock:
            self.document_requests.append((str(engine), items))
            if any(u not in self.stored for u in uuids):
                raise DelixNotFoundError("404", status_code=404)
            if any(u not in self.pdf_pages for u in uuids):
                raise DelixApiError("not a PDF", error=ErrorCode.WRONG_FILE_TYPE, status_code=422)
            selected: list[tuple[str, list[int]]] = []
            for u, selection in items:
                count = self.pdf_pages[u]
                numbers = list(parse_page_selection(selection) or range(1, count + 1))
                if numbers[-1] > count:
                    raise DelixApiError(
                        f"page {numbers[-1]} of {count}", error=ErrorCode.INVALID_FILE_PAGE, status_code=422
                    )
                selected.append((u, numbers))
            total = sum(len(n) for _, n in selected)
            cost = PRICE_PER_PDF_PAGE * total
            if self.credits is not None:
                if self.credits < cost:
                    raise DelixInsufficientCreditsError("no credits", error=ErrorCode.NO_SUFFICIENT_CREDITS)
                self.credits -= cost
            pages: dict[str, tuple[ExtractFilePage, ...]] = {}
            for u, numbers in selected:
                pages[u] = _read_pages(self.stored[u], numbers, str(engine))
                for page in pages[u]:
                    self.charged_pages[page.text or f"{u}#{page.number}"] += 1
            failed = sum(p.status == PageStatus.FAILED for ps in pages.values() for p in ps)
            refund = PRICE_PER_PDF_PAGE * failed
            if self.credits is not None:
                self.credits += refund
            extract = _FakeExtract(
                uuid=uuidlib.uuid4().hex,
                engine=str(engine),
                language=None if language is None else str(language),
                pages=pages,
                cost=cost,
                failed=failed,
                refund=refund,
                queued=total > MAX_SYNC_DOCUMENT_PAGES,
                created=self.clock(),
            )
            self.extracts[extract.uuid] = extract
            return self._answer(extract)

    def get_extract(self, uuid: str) -> Extract:
        self._enter("get_extract")
        with self.lock:
            extract = self.extracts.get(uuid)
            if extract is None:
                raise DelixNotFoundError("404", status_code=404)
            extract.polls += 1
            return self._answer(extract)

    def iter_extract_pages(self, extract_uuid: str, file_uuid: str) -> Iterator[ExtractFilePage]:
        """The paginated contents, only of a finished queued extract (404 otherwise, as the emulator)."""
        self._enter("iter_extract_pages")
        with self.lock:
            extract = self.extracts.get(extract_uuid)
            if extract is None or not extract.queued or not self._ready(extract):
                raise DelixNotFoundError("404", status_code=404)
            if file_uuid not in extract.pages:
                raise DelixNotFoundError("404", status_code=404)
            return iter(list(extract.pages[file_uuid]))

    def forget_extract(self, uuid: str) -> None:
        """Delix no longer has the extract: ``get_extract`` answers 404."""
        with self.lock:
            del self.extracts[uuid]

    def _ready(self, extract: _FakeExtract) -> bool:
        if not extract.queued:
            return True
        return extract.polls >= self.queue_polls and self.clock() - extract.created >= self.queue_seconds

    def _answer(self, extract: _FakeExtract) -> Extract:
        done = self._ready(extract)
        files: tuple[ExtractFile, ...] = ()
        if done:
            files = tuple(
                ExtractFile(uuid=u, pages=None, pages_url=f"https://fake/extracts/{extract.uuid}/files/{u}")
                if extract.queued
                else ExtractFile(uuid=u, pages=ps, pages_url=None)
                for u, ps in extract.pages.items()
            )
        total = sum(len(ps) for ps in extract.pages.values())
        return Extract(
            uuid=extract.uuid,
            status=ExtractStatus.PROCESSED if done else ExtractStatus.PROCESSING,
            file_type=extract.file_type,
            engine=extract.engine,
            language=extract.language,
            total_files=len(extract.pages),
            total_file_pages=total,
            total_processing_pages=total,
            initial_cost=extract.cost,
            failed_pages=extract.failed if done else None,
            returned_credits=extract.refund if done else None,
            files=files,
        )

    def ours_left(self) -> set[str]:
        """Files still stored that were not there before the test."""
        with self.lock:
            return set(self.stored) - self.preexisting


@dataclass(slots=True)
class _FakeExtract:
    uuid: str
    engine: str
    language: str | None
    pages: dict[str, tuple[ExtractFilePage, ...]]  # file uuid -> requested pages, answered
    cost: int
    failed: int
    refund: int
    queued: bool
    created: float
    polls: int = 0
    file_type: str = "documents"

    @property
    def file_uuids(self) -> list[str]:
        return list(self.pages)


def _pdf_page_count(data: bytes) -> int:
    import io

    import pypdf

    try:
        return len(pypdf.PdfReader(io.BytesIO(data)).pages)
    except Exception:
        return 0


def _pdf_refusal(data: bytes, pages: int | None) -> ErrorCode | None:
    """The emulator's upload checks of a PDF (``emulator/filetypes.py``)."""
    if pages is None:
        return None
    if len(data) > MAX_PDF_BYTES:
        return ErrorCode.BAD_INPUT
    if pages < 1:
        return ErrorCode.MALFORMED_FILE
    if pages > MAX_PDF_PAGES:
        return ErrorCode.PAGE_COUNT_LIMIT_EXCEEDED
    return None


def _read_pages(data: bytes, numbers: Sequence[int], engine: str) -> tuple[ExtractFilePage, ...]:
    """Pages of a stored PDF as Delix answers them (text layer, or a label for a scan)."""
    import io

    import pypdf

    reader = pypdf.PdfReader(io.BytesIO(data))
    out = []
    for number in numbers:
        layer = (reader.pages[number - 1].extract_text() or "").strip()
        jpeg = None if layer else page_jpeg(data, number)
        packed_fail = jpeg is not None and (b"delix:fail=1" in jpeg or b"PACKFAIL" in jpeg)
        if "FAILPAGE" in layer or packed_fail:
            out.append(ExtractFilePage(number=number, status=PageStatus.FAILED, text=None))
            continue
        if not layer and engine != "probe":
            # a packed scan reads as the image it embeds
            layer = (
                text_of(jpeg)
                if jpeg is not None
                else f"ocr-{hashlib.sha256(data).hexdigest()[:12]}-p{number}"
            )
        out.append(ExtractFilePage(number=number, status=PageStatus.PROCESSED, text=layer))
    return tuple(out)


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
