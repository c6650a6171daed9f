"""The hook's file endpoints: upload, list and delete stored files.

Kept apart from :mod:`.delix` (the connection, the session and the one request path) because
these are the account's storage, with rules of their own (30 files shared by every task on the
key, an upload answer that can be lost after the files were stored); they only call ``_call``
and read answers. :class:`DelixHook` inherits them from :class:`FileEndpoints`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from airflow_provider_delix.api.errors import DelixNotFoundError
from airflow_provider_delix.api.models import (
    MAX_FILES_PER_REQUEST,
    StoredFile,
    UploadAnswer,
    parse_stored_files,
    parse_upload_response,
)

UploadItem = str | os.PathLike[str] | tuple[str, bytes]


class RequestingHook(Protocol):
    """What the endpoint mixins (these and ``_extracts.py``'s) use of
    :class:`~airflow_provider_delix.hooks.delix.DelixHook`: its one request path."""

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
    ) -> Any: ...

    def _reading(self, what: str, lost: list[int] | None = None) -> AbstractContextManager[None]: ...


class FileEndpoints:
    """``upload_files``, ``list_files``, ``delete_file``."""

    def upload_files(self: RequestingHook, files: Sequence[UploadItem]) -> UploadAnswer:
        """Upload 1 to 5 files; one StoredFile or RejectedFile per item, in the same order.

        Each item is a path (read now) or a ``(name, bytes)`` pair. Per-file refusals
        (damaged file, wrong type, too large) come back as RejectedFile, not as exceptions;
        a full account raises :class:`DelixStorageFullError`.

        A send whose answer may have been lost after Delix stored the files (read timeout, drop
        after sending, 502/504) is re-sent at most once, like a paid extraction: every such send
        may leave up to 5 files no answer names on the 30 the key's tasks share. The answer's
        ``lost_attempts`` (or, when it fails, the error's) says how many sends that was.
        """
        if not 1 <= len(files) <= MAX_FILES_PER_REQUEST:
            raise ValueError(f"upload_files takes 1 to {MAX_FILES_PER_REQUEST} files, got {len(files)}.")
        parts: list[tuple[str, bytes]] = []
        for item in files:
            if isinstance(item, tuple):
                name, data = item
                parts.append((str(name), bytes(data)))
            else:
                path = Path(item)
                parts.append((path.name, path.read_bytes()))
        what = f"the upload of {len(parts)} file(s)"
        lost = [0]
        payload = self._call("POST", "files", what, files=parts, resend_once=True, lost=lost)
        with self._reading(what, lost):
            return UploadAnswer(parse_upload_response(payload, expected=len(parts)), lost_attempts=lost[0])

    def list_files(self: RequestingHook) -> list[StoredFile]:
        """Files stored on the account now (at most 30; shared by everyone using the key)."""
        payload = self._call("GET", "files", "the file list")
        with self._reading("the file list"):
            return parse_stored_files(payload)

    def delete_file(self: RequestingHook, uuid: str, *, missing_ok: bool = True) -> bool:
        """Delete a stored file; True if deleted, False if it was already gone (404).

        A 404 means the file is gone either way (expired or deleted), so by default it is not
        an error; pass ``missing_ok=False`` to raise :class:`DelixNotFoundError` instead.
        """
        try:
            self._call("DELETE", f"files/{uuid}", f"the deletion of file {uuid}")
        except DelixNotFoundError:
            if missing_ok:
                return False
            raise
        return True
