"""Resolve the operator's ``images`` argument into a lazy, deterministic stream of inputs.

An archive can hold millions of scans, locally or in object storage, so this module never
builds the full listing: folders and globs are walked one directory (or object-store prefix)
at a time, each listing sorted, which yields files in plain path order while holding only the
directories on the current branch in memory. ``fsspec.glob``/``find`` would materialise the
whole tree (with an info dict per file) before returning the first path.

Everything goes through fsspec so local paths, ``file://`` and any installed protocol behave the
same. Airflow's ``ObjectStoragePath`` is duck-typed (``.fs`` + ``.path``) so this module never
imports Airflow and keeps the filesystem (with its connection's credentials) that the path
carries.

Order: the given items are processed in sorted order of their string form, and each folder or
glob expands in path order; a file reached twice (e.g. listed explicitly and inside a given
folder) is yielded once, the first time. Re-running over the same tree gives the same order,
which is what resuming a run and comparing outputs rely on.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import fsspec
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem
from fsspec.utils import glob_translate

from airflow_provider_delix.core.fspath import carries_fs, location_text
from airflow_provider_delix.core.table import source_text

__all__ = [
    "MAX_SOURCE_BYTES",
    "InputRef",
    "SourceTooLargeError",
    "display_path",
    "is_pdf_name",
    "read_input",
    "resolve_inputs",
]

# A single source (e.g. a multi-page TIFF) bigger than this is refused before it is read into
# memory: the pipeline keeps several sources in flight, and no page we could upload needs more.
MAX_SOURCE_BYTES = 512 * 1024 * 1024
_READ_STEP = 1024 * 1024  # a local file read past its size at open, or of unknown size

_MAGIC = re.compile(r"[*?\[]")


def is_pdf_name(path: str) -> bool:
    """A file named like a PDF (``.pdf`` in any case): how a mixed archive is routed."""
    return path.lower().endswith(".pdf")


@dataclass(frozen=True, slots=True)
class InputRef:
    """One input file: what to show the user and what is needed to open it.

    ``source`` is the input as given (explicit items) or as listed (folder/glob expansions,
    with the protocol re-attached for remote filesystems), always valid UTF-8 so it can go
    into Parquet, logs and XCom. ``path`` is the filesystem's own path, which for local file
    names that are not valid UTF-8 keeps Python's surrogate escapes so the file still opens.
    """

    source: str
    fs: Any = field(repr=False)  # fsspec.AbstractFileSystem (fsspec ships no type information)
    path: str


class SourceTooLargeError(OSError):
    """The source is over ``MAX_SOURCE_BYTES``; raised instead of reading it into memory."""


# One rule for showing a name as UTF-8, shared with the table's ``source`` column:
# undecodable bytes become ``\xNN`` escapes (like ``ls -b``), so distinct names stay distinct.
display_path = source_text


def _hidden(name: str) -> bool:
    """Dot files and ``_``-prefixed entries (``_SUCCESS``, ``_state/``) are not inputs."""
    return name.startswith((".", "_"))


def _walk_files(fs: Any, root: str, max_depth: int | None) -> Iterator[str]:
    """Yield file paths below ``root`` in full-path order, one directory listing at a time.

    Sorting entries by ``name`` for files and ``name + "/"`` for directories reproduces the
    order of sorting the full paths as strings, without ever holding more than one listing per
    level. Hidden and ``_``-prefixed entries are pruned, whole subtrees included.
    """
    root = root.rstrip("/") or root
    try:
        entries = fs.ls(root, detail=True)
    except (FileNotFoundError, NotADirectoryError):
        return
    keyed: list[tuple[str, str, bool]] = []
    for entry in entries:
        name = str(entry["name"]).rstrip("/")
        base = name.rsplit("/", 1)[-1]
        if not base or name == root or _hidden(base):
            continue
        is_dir = entry.get("type") == "directory"
        keyed.append((base + "/" if is_dir else base, name, is_dir))
    keyed.sort()
    for _, name, is_dir in keyed:
        if not is_dir:
            yield name
        elif max_depth is None or max_depth > 1:
            yield from _walk_files(fs, name, None if max_depth is None else max_depth - 1)


def _glob_files(fs: Any, pattern: str) -> Iterator[str]:
    """Lazy ``fs.glob``: walk from the pattern's literal prefix and match with fsspec's rules."""
    parts = pattern.split("/")
    literal = 0
    while literal < len(parts) and not _MAGIC.search(parts[literal]):
        literal += 1
    root = "/".join(parts[:literal]) or fs.root_marker or "."
    rest = parts[literal:]
    max_depth = None if any("**" in part for part in rest) else len(rest)
    matcher = re.compile(glob_translate(pattern))
    for path in _walk_files(fs, root, max_depth):
        if matcher.match(path):
            yield path


def _to_fs(item: Any, storage_options: Mapping[str, Any]) -> tuple[Any, str, str, bool]:
    """Return ``(fs, path, source, remote_style)`` for one item of the ``images`` argument.

    ``remote_style`` says whether expansions should show full URLs (the item was a URL or an
    object-storage path) or plain local paths.
    """
    if carries_fs(item):
        # Airflow's ObjectStoragePath or an FsPath: reuse its filesystem and credentials; show it
        # without a connection id (``s3://conn@bucket/k`` -> ``s3://bucket/k``), as listings do.
        return item.fs, str(item.path), display_path(location_text(item)), True
    if isinstance(item, os.PathLike | bytes):
        local = os.fsdecode(os.fspath(item))
        return fsspec.filesystem("file"), os.path.abspath(local), display_path(local), False
    if not isinstance(item, str):
        raise TypeError(
            f"images items must be paths, URIs, globs or ObjectStoragePath, not {type(item).__name__}"
        )
    fs, path = url_to_fs(item, **storage_options)
    return fs, path, display_path(item), "://" in item


def _expand(
    item: Any, storage_options: Mapping[str, Any], keep: Callable[[str], bool] | None
) -> Iterator[InputRef]:
    """Expand one item: an existing file, a folder/prefix, a glob, or a missing path."""
    fs, path, source, remote_style = _to_fs(item, storage_options)

    def listed(found: str) -> InputRef:
        shown = fs.unstrip_protocol(found) if remote_style else found
        return InputRef(source=display_path(shown), fs=fs, path=found)

    def expanded(paths: Iterator[str]) -> Iterator[InputRef]:
        return map(listed, paths if keep is None else filter(keep, paths))

    try:
        kind = fs.info(path).get("type")
    except FileNotFoundError:
        kind = None
    if kind == "directory":
        yield from expanded(_walk_files(fs, path, None))
    elif kind is not None:
        yield InputRef(source=source, fs=fs, path=path)
    elif _MAGIC.search(path):
        yield from expanded(_glob_files(fs, path))
    else:
        # Kept so the run reports it as a `not_found` row instead of silently dropping it.
        yield InputRef(source=source, fs=fs, path=path)


def _items(images: Any) -> list[Any]:
    if isinstance(images, str | bytes | os.PathLike) or carries_fs(images):
        return [images]
    if isinstance(images, Iterable):
        items = list(images)
        return sorted(items, key=lambda it: display_path(it) if isinstance(it, bytes) else str(it))
    raise TypeError(f"images must be a path, URI, glob or a list of them, not {type(images).__name__}")


def resolve_inputs(
    images: Any,
    *,
    storage_options: Mapping[str, Any] | None = None,
    keep: Callable[[str], bool] | None = None,
) -> Iterator[InputRef]:
    """Yield the inputs described by ``images``, lazily, sorted and de-duplicated.

    ``images`` is a path, URI, glob, folder/prefix, path-like or ``ObjectStoragePath``, or a
    list of those. Folders expand recursively; globs follow fsspec's rules (``**`` spans
    folders). Directories are never yielded, nor hidden or ``_``-prefixed entries found by
    expansion (explicitly named files are always kept). A missing explicit path still yields a
    ref (it becomes a ``not_found`` row); a glob or folder that matches nothing yields nothing.
    ``storage_options`` go to ``fsspec.core.url_to_fs`` for string items. ``keep``, when given,
    filters what folders and globs list (by path); explicitly named files are never filtered.
    """
    items = _items(images)
    options = dict(storage_options or {})
    # Only a multi-item run can reach a file twice; a single expansion is duplicate-free and then
    # needs no memory that grows with the archive.
    seen: set[tuple[str, str]] | None = set() if len(items) > 1 else None
    for item in items:
        for ref in _expand(item, options, keep):
            if seen is not None:
                key = (type(ref.fs).__qualname__, ref.path)
                if key in seen:
                    continue
                seen.add(key)
            yield ref


def read_input(ref: InputRef, *, max_bytes: int = MAX_SOURCE_BYTES) -> bytes:
    """Read the whole input, refusing (``SourceTooLargeError``) rather than loading a huge file.

    A bounded ranged read (``end=max_bytes + 1``) costs one request on object stores, unlike a
    size lookup followed by a read. I/O errors (``FileNotFoundError``, ``PermissionError``, ...)
    propagate; ``prepare_source`` turns them into rows.
    """
    if isinstance(ref.fs, LocalFileSystem):
        data = _read_local(ref.path, max_bytes + 1)
    else:
        data = ref.fs.cat_file(ref.path, start=0, end=max_bytes + 1)
    if len(data) > max_bytes:
        raise SourceTooLargeError(f"{ref.source} is larger than {max_bytes} bytes")
    return data


def _read_local(path: str, limit: int) -> bytes:
    """At most ``limit`` bytes of a local file, sized by ``fstat`` first.

    fsspec's ranged read asks for ``limit`` bytes at once, so every page of an archive allocated
    (and gave back) a buffer of the whole limit, through a dozen system calls. A file that grows
    while it is read is still read to its end or to the limit, never cut at its old size.
    """
    with open(path, "rb", buffering=0) as handle:
        size = os.fstat(handle.fileno()).st_size
        want = min(size + 1, limit) if size else min(_READ_STEP, limit)
        parts: list[bytes] = []
        got = 0
        while got < limit:
            part = handle.read(want)
            if not part:
                break
            parts.append(part)
            got += len(part)
            want = min(_READ_STEP, limit - got)
    return parts[0] if len(parts) == 1 else b"".join(parts)
