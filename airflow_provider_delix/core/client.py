"""``DelixClient``: the part of the Delix API the extraction pipeline needs, as a Protocol.

The core never imports Airflow, so it cannot import ``DelixHook``; it types against this
Protocol instead. ``DelixHook`` satisfies it structurally, and the tests pass an in-memory
fake. Every method raises the exceptions of :mod:`airflow_provider_delix.api.errors`; the
implementation is expected to have retried transient failures already (the pipeline adds no
second retry layer), and must be safe to call from several threads at once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

from airflow_provider_delix.api.models import (
    Engine,
    Extract,
    ExtractFilePage,
    Language,
    RejectedFile,
    StoredFile,
)

UploadItem = str | os.PathLike[str] | tuple[str, bytes]


@runtime_checkable
class DelixClient(Protocol):
    def upload_files(self, files: Sequence[UploadItem]) -> list[StoredFile | RejectedFile]:
        """Upload 1 to 5 files; one result per item, in order. Full account: ``DelixStorageFullError``."""
        ...

    def delete_file(self, uuid: str) -> bool:
        """Delete a stored file: True if deleted, False if it was already gone (404)."""
        ...

    def extract_images(
        self, file_uuids: Sequence[str], engine: Engine | str, language: Language | str
    ) -> Extract:
        """Synchronous OCR of 1 to 5 stored images."""
        ...

    def list_files(self) -> list[StoredFile]:
        """Files stored on the account now (shared by every user of the key)."""
        ...

    def extract_documents(
        self,
        files: Sequence[tuple[str, str | None]],
        engine: Engine | str,
        language: Language | str | None,
    ) -> Extract:
        """Extraction of 1 to 5 stored PDFs ``(uuid, page selection)``: finished, or queued."""
        ...

    def get_extract(self, uuid: str) -> Extract:
        """The extract now (``processing`` or ``processed``); 404: ``DelixNotFoundError``."""
        ...

    def iter_extract_pages(self, extract_uuid: str, file_uuid: str) -> Iterator[ExtractFilePage]:
        """Every page of one file of a finished queued extract (the paginated contents)."""
        ...


class ForwardingClient:
    """A :class:`DelixClient` that passes every call to ``inner``: the base of the pipeline's
    wrappers (counting, registry claims), which override only what they add to.

    ``_calling(name)`` runs before each call; messages about answers name the connection when
    the innermost client is a hook (``delix_conn_id``).
    """

    def __init__(self, inner: DelixClient) -> None:
        self._inner = inner
        self.delix_conn_id: str | None = getattr(inner, "delix_conn_id", None)

    def _calling(self, name: str) -> None:
        """Called with the method's name before it is forwarded; nothing by default."""

    def upload_files(self, files: Sequence[UploadItem]) -> list[StoredFile | RejectedFile]:
        self._calling("upload_files")
        return self._inner.upload_files(files)

    def delete_file(self, uuid: str) -> bool:
        self._calling("delete_file")
        return self._inner.delete_file(uuid)

    def extract_images(
        self, file_uuids: Sequence[str], engine: Engine | str, language: Language | str
    ) -> Extract:
        self._calling("extract_images")
        return self._inner.extract_images(file_uuids, engine, language)

    def list_files(self) -> list[StoredFile]:
        self._calling("list_files")
        return self._inner.list_files()

    def extract_documents(
        self,
        files: Sequence[tuple[str, str | None]],
        engine: Engine | str,
        language: Language | str | None,
    ) -> Extract:
        self._calling("extract_documents")
        return self._inner.extract_documents(files, engine, language)

    def get_extract(self, uuid: str) -> Extract:
        self._calling("get_extract")
        return self._inner.get_extract(uuid)

    def iter_extract_pages(self, extract_uuid: str, file_uuid: str) -> Iterator[ExtractFilePage]:
        self._calling("iter_extract_pages")
        return self._inner.iter_extract_pages(extract_uuid, file_uuid)
