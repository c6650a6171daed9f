"""The content index: identical page content is uploaded and extracted once per run.

Why a module of its own: the planner fills it, but the chunk workers read and retire its
entries from their own threads (hence the lock), so it is shared state with its own rules rather
than a part of planning. Every page is keyed by the sha256 of the bytes that would be uploaded:
a page whose content is already waiting in an open chunk or in flight attaches to that file as
one more *target* (one more row to write); a page whose content finished recently reuses the
cached outcome.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Container

from airflow_provider_delix.core.chunks import ChunkFile, FileOutcome, PageTarget


class ContentIndex:
    """Live contents (open or in flight) by sha256, plus a bounded cache of finished outcomes."""

    def __init__(self, cache_size: int = 2048) -> None:
        self._lock = threading.Lock()
        self._live: dict[str, ChunkFile] = {}
        self._done: OrderedDict[str, FileOutcome] = OrderedDict()
        self._cache_size = cache_size

    def claim(
        self, content_sha256: str, target: PageTarget, filename: str, data: bytes
    ) -> ChunkFile | FileOutcome | None:
        """A new :class:`ChunkFile` to place, a cached outcome to reuse, or None (attached to a live file)."""
        with self._lock:
            live = self._live.get(content_sha256)
            if live is not None:
                live.targets.append(target)
                return None
            cached = self._done.get(content_sha256)
            if cached is not None:
                self._done.move_to_end(content_sha256)
                return cached
            new = ChunkFile(content_sha256=content_sha256, filename=filename, data=data, targets=[target])
            self._live[content_sha256] = new
            return new

    def complete(self, file: ChunkFile, outcome: FileOutcome | None) -> list[PageTarget]:
        """Retire a live file and return its final targets; cache ``outcome`` unless None.

        None means "no result" (a transient failure): later duplicates must be sent again.
        """
        with self._lock:
            self._live.pop(file.content_sha256, None)
            if outcome is not None and self._cache_size > 0:
                self._done[file.content_sha256] = outcome
                self._done.move_to_end(file.content_sha256)
                while len(self._done) > self._cache_size:
                    self._done.popitem(last=False)
            return list(file.targets)

    def peek(self, file: ChunkFile) -> list[PageTarget]:
        """The file's targets so far (for the ledger); duplicates may still attach later."""
        with self._lock:
            return list(file.targets)

    def pending_rows(self, file: ChunkFile) -> list[tuple[int, list[PageTarget]]]:
        """(page in the stored file, rows it answers so far): what the ledger records."""
        if file.members:
            return [(i, self.peek(m)) for i, m in enumerate(file.members, 1)]
        return file.rows(self.peek(file))

    def keys_of(self, file: ChunkFile) -> set[tuple[str, int]]:
        """Resume keys of every row the file answers so far."""
        return {t.key for _, ts in self.pending_rows(file) for t in ts}

    def settle(
        self,
        file: ChunkFile,
        outcome_of: Callable[[int], FileOutcome | None],
        keep: Container[int] = (),
    ) -> list[tuple[int, list[PageTarget]]]:
        """Retire the file (a pack: each member) and return (page in the stored file, final rows).

        ``outcome_of(page)`` is what became of a page, None when it got no result: an image's
        (or a packed image's) outcome is cached for later pages with the same content. Members
        of a pack on a page in ``keep`` stay live: they are sent again.
        """
        if file.members:
            return [
                (i, self.complete(m, outcome_of(i))) for i, m in enumerate(file.members, 1) if i not in keep
            ]
        cache = outcome_of(1) if file.page_map is None else None
        return file.rows(self.complete(file, cache))

    def live_count(self) -> int:
        with self._lock:
            return len(self._live)
