"""Small-file primitives for the resume state under ``<output>/_delix_state`` on any fsspec storage.

Kept apart from the store so the writer lease can use them without holding the store (a
store dropped without ``close()`` must stop its heartbeat, as a killed process would).
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterable
from typing import Any

from fsspec.implementations.local import LocalFileSystem

# Raw descriptors: a state write is on every chunk's path, and a buffered open() adds system calls.
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def safe_name(chunk_id: str) -> str:
    """``chunk_id`` if it can name a state file as it is (no separator, no leading dot); else ValueError."""
    if not _SAFE_NAME.fullmatch(chunk_id):
        raise ValueError(f"chunk_id must match {_SAFE_NAME.pattern}, got {chunk_id!r}")
    return chunk_id


class StateUnreadableError(RuntimeError):
    """A state file exists but cannot be read: never treated as "no state" (that could pay twice)."""


class StateDir:
    """Atomic small writes, listings that skip temp files, and tolerant deletes under ``root``."""

    def __init__(self, fs: Any, root: str, *, fsync: bool = True) -> None:
        self.fs = fs
        self.root = root
        self.local = isinstance(fs, LocalFileSystem)
        # False where a record only matters while its writer's process lives (the key registry):
        # a host crash kills the writer too, so an os.replace visible to other processes is enough.
        self.fsync = fsync

    def mkdirs(self, path: str) -> None:
        if self.local:
            os.makedirs(path, exist_ok=True)

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write a small state file atomically: a reader sees the old content or the new, never half."""
        if not self.local:
            self.fs.pipe_file(path, data)  # one PUT: atomic on object storage and in memory://
            return
        directory, name = os.path.split(path)
        tmp = os.path.join(directory, f".{name}.{uuid.uuid4().hex}.tmp")
        try:
            fd = os.open(tmp, _NEW_FILE, 0o666)
        except FileNotFoundError:  # the first write in this directory (or it was removed since)
            os.makedirs(directory, exist_ok=True)
            fd = os.open(tmp, _NEW_FILE, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if self.fsync:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        os.close(fd)
        os.replace(tmp, path)

    def read_bytes(self, path: str) -> bytes | None:
        try:
            data: bytes = self.fs.cat_file(path)
        except FileNotFoundError:
            return None
        return data

    def read_many(self, paths: list[str], *, missing_ok: bool) -> dict[str, bytes]:
        """Read several state files in one bulk call; a missing one is skipped only if ``missing_ok``.

        Any other failure (permissions, a network error after fsspec's retries) raises
        :class:`StateUnreadableError` instead of pretending the file was not there.
        """
        if not paths:
            return {}
        found = self.fs.cat(paths, on_error="return")
        out: dict[str, bytes] = {}
        for path, value in found.items():
            if isinstance(value, FileNotFoundError) and missing_ok:
                continue
            if isinstance(value, BaseException):
                raise StateUnreadableError(
                    f"Could not read the state file {path}: {type(value).__name__}: {value}"
                ) from value
            out[str(path)] = bytes(value)
        return out

    def rm(self, paths: Iterable[str]) -> None:
        paths = sorted(paths)
        if not paths:
            return
        try:
            self.fs.rm(paths)  # one bulk request on object storage
        except FileNotFoundError:
            for path in paths:
                with contextlib.suppress(FileNotFoundError):
                    self.fs.rm_file(path)

    def ls(self, path: str) -> list[str]:
        """Entries of a state directory, without the hidden temp files of ``write_bytes``."""
        self.fs.invalidate_cache(path)  # s3fs & co. cache listings; other writers change them
        try:
            found = (str(p).rstrip("/") for p in self.fs.ls(path, detail=False))
            return sorted(p for p in found if not p.rsplit("/", 1)[-1].startswith("."))
        except FileNotFoundError:
            return []

    def tags(self, kind: str) -> set[str]:
        """Run tags that have state of ``kind`` (``journal``, ``uploads``, ``partial``)."""
        return {p.rsplit("/", 1)[-1] for p in self.ls(f"{self.root}/{kind}")}

    def files(self, kind: str, tag: str, suffix: str) -> list[str]:
        return [p for p in self.ls(f"{self.root}/{kind}/{tag}") if p.endswith(suffix)]

    def rmdir(self, path: str, *, only_if_empty: bool = False) -> None:
        # Object stores have no directories; local and memory:// keep empty ones unless removed.
        if only_if_empty and self.ls(path):
            return
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(path, recursive=True)
