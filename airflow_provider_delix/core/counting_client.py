"""A :class:`DelixClient` wrapper that counts calls per endpoint method, for the manifest."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence

from airflow_provider_delix.api.models import (
    Engine,
    Extract,
    ExtractFilePage,
    Language,
    RejectedFile,
    StoredFile,
)
from airflow_provider_delix.core.client import DelixClient, UploadItem


class CountingClient:
    """Wraps a :class:`DelixClient` and counts calls per method (thread-safe)."""

    def __init__(self, inner: DelixClient, on_call: Callable[[str], None] | None = None) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._on_call = on_call  # live metrics: requests by endpoint
        # Messages about answers name the connection when the client is a hook.
        self.delix_conn_id: str | None = getattr(inner, "delix_conn_id", None)

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1
        if self._on_call is not None:
            self._on_call(name)

    def counts(self) -> dict[str, int]:
        with self._lock:
            names = (
                "upload_files",
                "extract_images",
                "extract_documents",
                "get_extract",
                "iter_extract_pages",
                "delete_file",
                "list_files",
            )
            return {name: self._counts.get(name, 0) for name in names}

    def upload_files(self, files: Sequence[UploadItem]) -> list[StoredFile | RejectedFile]:
        self._count("upload_files")
        return self._inner.upload_files(files)

    def delete_file(self, uuid: str) -> bool:
        self._count("delete_file")
        return self._inner.delete_file(uuid)

    def extract_images(
        self, file_uuids: Sequence[str], engine: Engine | str, language: Language | str
    ) -> Extract:
        self._count("extract_images")
        return self._inner.extract_images(file_uuids, engine, language)

    def list_files(self) -> list[StoredFile]:
        self._count("list_files")
        return self._inner.list_files()

    def extract_documents(
        self,
        files: Sequence[tuple[str, str | None]],
        engine: Engine | str,
        language: Language | str | None,
    ) -> Extract:
        self._count("extract_documents")
        return self._inner.extract_documents(files, engine, language)

    def get_extract(self, uuid: str) -> Extract:
        self._count("get_extract")
        return self._inner.get_extract(uuid)

    def iter_extract_pages(self, extract_uuid: str, file_uuid: str) -> Iterator[ExtractFilePage]:
        self._count("iter_extract_pages")
        return self._inner.iter_extract_pages(extract_uuid, file_uuid)
