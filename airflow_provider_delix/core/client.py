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
