"""Locations that carry their own filesystem: how credentials reach the core without Airflow.

Object-storage credentials belong in an Airflow connection, and Airflow turns a connection into
an fsspec filesystem (``ObjectStoragePath(..., conn_id=...).fs``). The core never imports
Airflow, so it accepts any object with ``.fs`` (an fsspec filesystem) and ``.path`` (that
filesystem's own path): an ``ObjectStoragePath`` as users write it, or a :class:`FsPath` the
operator builds from a string and its ``storage_conn_id``. Strings still go through
``fsspec.core.url_to_fs`` with ``storage_options``.

A connection id written as a URI's user part (``s3://aws_s3@bucket/key``) is never shown: the
table's ``source`` column, logs, XCom and the outlet name ``s3://bucket/key``, so a row does
not depend on which connection read it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FsPath", "carries_fs", "location_text", "open_location", "without_userinfo"]

_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@")


@dataclass(frozen=True, slots=True)
class FsPath:
    """``path`` on the filesystem ``fs``; ``uri`` is what users wrote (shown, never opened)."""

    fs: Any = field(repr=False)  # fsspec.AbstractFileSystem, holding the connection's credentials
    path: str
    uri: str

    def __str__(self) -> str:
        return self.uri


def carries_fs(item: Any) -> bool:
    """An ``ObjectStoragePath``/``FsPath``-like object (duck-typed: ``.fs`` and ``.path``)."""
    return not isinstance(item, str | bytes) and hasattr(item, "path") and hasattr(item, "fs")


def without_userinfo(uri: str) -> str:
    """``s3://conn_id@bucket/key`` -> ``s3://bucket/key`` (Airflow's conn id is not part of the key)."""
    return _USERINFO.sub(r"\1", uri)


def location_text(item: Any) -> str:
    """How a location is shown (logs, table, XCom, outlets): as written, minus a connection id.

    Only for filesystem-carrying objects, where Airflow's convention makes the user part a
    connection id; in a plain string it may be a real user name (``sftp://me@host/...``).
    """
    if isinstance(item, str):
        return item
    if carries_fs(item):
        return without_userinfo(str(item))
    return os.fsdecode(os.fspath(item))


def open_location(item: Any, storage_options: Mapping[str, Any] | None = None) -> tuple[Any, str]:
    """``(fsspec filesystem, bare path)`` of a local path, URI or filesystem-carrying location."""
    if carries_fs(item):
        return item.fs, str(item.path).rstrip("/") or str(item.path)
    from fsspec.core import url_to_fs

    fs, path = url_to_fs(os.fsdecode(os.fspath(item)), **dict(storage_options or {}))
    return fs, str(path).rstrip("/")
