"""The one account an emulator serves: stored files, extracts, credits and the charge ledger.

Everything lives in memory behind one re-entrant lock. Handlers that must check several
things and then change state (an extraction checks files, pages and credits, then charges)
hold ``account.lock`` for the whole sequence, so a refusal can never leave half a change
behind and two concurrent requests cannot both spend the last credits.

Files expire ``FILE_LIFETIME`` seconds after upload on the injectable clock; expired files are
purged lazily, at the start of every operation that looks at storage.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_delix.api.models import MAX_STORED_BYTES, MAX_STORED_FILES, ErrorCode
from airflow_provider_delix.emulator.apierrors import enum_error

FILE_LIFETIME = 24 * 3600.0


@dataclass(frozen=True)
class StoredBlob:
    uuid: str
    kind: str  # png, jpeg, pdf
    page_count: int
    data: bytes = field(repr=False)
    sha256: str
    uploaded_at: float

    @property
    def size(self) -> int:
        return len(self.data)

    def as_api(self) -> dict[str, Any]:
        return {"uuid": self.uuid, "status": "stored", "extension": self.kind, "page_count": self.page_count}


@dataclass(frozen=True)
class PageResult:
    number: int
    text: str | None  # None: OCR of the page failed

    def as_api(self) -> dict[str, Any]:
        if self.text is None:
            return {"number": self.number, "status": "failed"}
        return {"number": self.number, "status": "processed", "text": self.text}


@dataclass
class ExtractRecord:
    """One extraction; ``results`` is filled (file uuid -> pages) when it is processed."""

    uuid: str
    file_type: str  # images or documents
    engine: str
    language: str | None
    files: list[tuple[StoredBlob, list[int]]]
    initial_cost: int
    page_cost: int
    is_async: bool
    callback_url: str | None
    status: str = "processing"
    results: dict[str, list[PageResult]] | None = None
    failed_pages: int = 0
    returned_credits: int = 0
    # time.monotonic() of the async queue's steps (None for sync extracts): queued, a worker
    # took it, it became processed. For white-box tests of the queue; never sent by the API.
    queued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def total_file_pages(self) -> int:
        return sum(blob.page_count for blob, _ in self.files)

    @property
    def total_processing_pages(self) -> int:
        return sum(len(pages) for _, pages in self.files)


class Account:
    """Storage, extracts and credits of the single account, with high-water marks for the stats."""

    def __init__(self, credits: int) -> None:
        self.lock = threading.RLock()
        self.files: dict[str, StoredBlob] = {}
        self.extracts: dict[str, ExtractRecord] = {}
        # file uuid -> extracts still processing that use it: a delete asks this, not every
        # extract the account ever made (a 100k-page run makes 20k of them).
        self._busy: Counter[str] = Counter()
        self.balance = credits
        self.charged_total = 0
        self.refunded_total = 0
        self.charges: Counter[str] = Counter()
        self.refunds: Counter[str] = Counter()
        self.stored_bytes = 0
        self.max_count = 0
        self.max_bytes = 0
        self.expired = 0

    # -- storage ---------------------------------------------------------------------------
    def purge_expired(self, now: float) -> None:
        with self.lock:
            for uuid in [u for u, b in self.files.items() if now >= b.uploaded_at + FILE_LIFETIME]:
                self.stored_bytes -= self.files.pop(uuid).size
                self.expired += 1

    def store(self, blobs: list[StoredBlob], now: float) -> None:
        """Store all of ``blobs`` or none: 422 when the account would pass 30 files or 100 MB."""
        with self.lock:
            self.purge_expired(now)
            if len(self.files) + len(blobs) > MAX_STORED_FILES:
                raise enum_error(ErrorCode.STORAGE_COUNT_EXCEEDED)
            if self.stored_bytes + sum(b.size for b in blobs) > MAX_STORED_BYTES:
                raise enum_error(ErrorCode.STORAGE_SIZE_EXCEEDED)
            for blob in blobs:
                self.files[blob.uuid] = blob
                self.stored_bytes += blob.size
            self.max_count = max(self.max_count, len(self.files))
            self.max_bytes = max(self.max_bytes, self.stored_bytes)

    def live_files(self, now: float) -> list[StoredBlob]:
        with self.lock:
            self.purge_expired(now)
            return list(self.files.values())

    def get_file(self, uuid: str, now: float) -> StoredBlob | None:
        with self.lock:
            self.purge_expired(now)
            return self.files.get(uuid)

    def delete_file(self, uuid: str, now: float) -> bool:
        """False when there is no such file; 422 FILE_UNDER_PROCESSING when an extract uses it."""
        with self.lock:
            self.purge_expired(now)
            if uuid not in self.files:
                return False
            if self._busy[uuid] > 0:
                raise enum_error(ErrorCode.FILE_UNDER_PROCESSING)
            self.stored_bytes -= self.files.pop(uuid).size
            return True

    # -- extracts --------------------------------------------------------------------------
    def add_extract(self, record: ExtractRecord) -> None:
        with self.lock:
            self.extracts[record.uuid] = record
            if record.status == "processing":
                self._busy.update({blob.uuid for blob, _ in record.files})

    def finish_extract(self, record: ExtractRecord, results: dict[str, list[PageResult]]) -> None:
        """Set the results, refund the failed pages, then mark it processed (its files are free)."""
        with self.lock:
            record.results = results
            self.refund_failed(record)
            if record.status == "processing" and self.extracts.get(record.uuid) is record:
                self._busy.subtract({blob.uuid for blob, _ in record.files})
            record.status = "processed"  # last: a poll sees "processed" only with the results set

    def forget_processing(self) -> int:
        """A restart: extracts still processing are gone (a running one finishes unseen)."""
        with self.lock:
            lost = [uuid for uuid, record in self.extracts.items() if record.status == "processing"]
            for uuid in lost:
                del self.extracts[uuid]
            self._busy.clear()
            return len(lost)

    # -- credits ---------------------------------------------------------------------------
    def charge(self, record: ExtractRecord) -> None:
        """Charge ``initial_cost`` and record one ledger entry per page; 422 when short."""
        with self.lock:
            if record.initial_cost > self.balance:
                raise enum_error(
                    ErrorCode.NO_SUFFICIENT_CREDITS, f"needs {record.initial_cost}, has {self.balance}"
                )
            self.balance -= record.initial_cost
            self.charged_total += record.initial_cost
            for blob, pages in record.files:
                self.charges.update(f"{blob.sha256}:{n}" for n in pages)

    def refund_failed(self, record: ExtractRecord) -> None:
        """Give back the price of every failed page of a finished extract."""
        assert record.results is not None
        by_uuid = {blob.uuid: blob for blob, _ in record.files}
        with self.lock:
            for file_uuid, pages in record.results.items():
                for page in pages:
                    if page.text is None:
                        self.refunds[f"{by_uuid[file_uuid].sha256}:{page.number}"] += 1
                        record.failed_pages += 1
            record.returned_credits = record.failed_pages * record.page_cost
            self.balance += record.returned_credits
            self.refunded_total += record.returned_credits

    def top_up(self, amount: int) -> None:
        with self.lock:
            self.balance += amount

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            statuses = Counter(r.status for r in self.extracts.values())
            return {
                "files": {
                    "count": len(self.files),
                    "bytes": self.stored_bytes,
                    "max_count": self.max_count,
                    "max_bytes": self.max_bytes,
                    "expired": self.expired,
                },
                "extracts": {
                    "total": len(self.extracts),
                    "processing": statuses["processing"],
                    "processed": statuses["processed"],
                },
                "credits": {
                    "balance": self.balance,
                    "charged": self.charged_total,
                    "refunded": self.refunded_total,
                },
                "charges": dict(self.charges),
                "refunds": dict(self.refunds),
            }
