"""A :class:`DelixClient` wrapper that counts calls per endpoint method, for the manifest."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

from airflow_provider_delix.core.client import DelixClient, ForwardingClient

_METHODS = (
    "upload_files",
    "extract_images",
    "extract_documents",
    "get_extract",
    "iter_extract_pages",
    "delete_file",
    "list_files",
)


class CountingClient(ForwardingClient):
    """Wraps a :class:`DelixClient` and counts calls per method (thread-safe)."""

    def __init__(self, inner: DelixClient, on_call: Callable[[str], None] | None = None) -> None:
        super().__init__(inner)
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._on_call = on_call  # live metrics: requests by endpoint

    def _calling(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1
        if self._on_call is not None:
            self._on_call(name)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {name: self._counts.get(name, 0) for name in _METHODS}
