"""Counters for ``GET /_emulator/stats``: calls per endpoint and status, faults, OCR pages.

Account-level numbers (storage, credits, the charge ledger) live in ``state.Account``; this
module only counts traffic, so it survives nothing but a reset and needs no knowledge of the API.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from typing import Any


class CallStats:
    """Thread-safe traffic counters. ``status`` is an HTTP code or ``dropped``.

    ``calls`` maps an endpoint (``"POST /files"``, ``"GET /extracts/{uuid}"``...) to its total
    number of requests, faulted ones included; ``calls_by_status`` splits it by status.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._faults: Counter[str] = Counter()
        self._pages = 0
        self._failed_pages = 0
        self._errors = 0
        self._callbacks: Counter[str] = Counter()

    def count_call(self, endpoint: str, status: int | str) -> None:
        with self._lock:
            self._calls[endpoint][str(status)] += 1

    def count_fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1

    def count_pages(self, pages: int, failed: int) -> None:
        with self._lock:
            self._pages += pages
            self._failed_pages += failed

    def count_error(self) -> None:
        with self._lock:
            self._errors += 1

    def count_callback(self, *, ok: bool) -> None:
        with self._lock:
            self._callbacks["sent" if ok else "failed"] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": {endpoint: sum(counts.values()) for endpoint, counts in sorted(self._calls.items())},
                "calls_by_status": {
                    endpoint: dict(counts) for endpoint, counts in sorted(self._calls.items())
                },
                "faults": dict(self._faults),
                "pages": {"processed": self._pages - self._failed_pages, "failed": self._failed_pages},
                "callbacks": {"sent": self._callbacks["sent"], "failed": self._callbacks["failed"]},
                "internal_errors": self._errors,
            }
