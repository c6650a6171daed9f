"""The content index: identical page content is uploaded and extracted once per run.

Why a module of its own: the planner fills it, but the chunk workers read and retire its
entries from their own threads (hence the lock), so it is shared state with its own rules rather
than a part of planning. Every page is keyed by the sha256 of the bytes that would be uploaded:
a page whose content is already waiting in an open chunk or in flight attaches to that file as
one more *target* (one more row to write); a page whose content finished recently reuses the
cached outcome. A PDF (part) is keyed by its bytes' hash, its engine and the pages asked for
(:meth:`ContentIndex.join`): an identical one attaches as a *copy* while it is live, or reuses
the cached outcome of every page once it finished.
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

    def join(self, file: ChunkFile) -> list[tuple[PageTarget, FileOutcome]] | None:
        """A PDF (part) about to be placed: None to place it, or the rows it needs no request for.

        An identical part (its key is the bytes' hash and the pages asked for) that is live
        takes this one's pages as a copy: [] (its rows come with that file's). One that finished
        recently with an answer for every page gives (row, outcome) for each page to reuse.
        """
        assert file.page_map is not None
        with self._lock:
            live = self._live.get(file.content_sha256)
            if live is not None:
                live.copies.append(file.page_map)
                return []
            cached = [self._done.get(_page_key(file.content_sha256, n)) for n, _ in file.page_map]
            if all(c is not None for c in cached):
                for n, _ in file.page_map:
                    self._done.move_to_end(_page_key(file.content_sha256, n))
                return [(t, c) for (_, t), c in zip(file.page_map, cached, strict=True) if c is not None]
            self._live[file.content_sha256] = file
            return None

    def complete(self, file: ChunkFile, outcome: FileOutcome | None) -> list[PageTarget]:
        """Retire a live file and return its final targets; cache ``outcome`` unless None.

        None means "no result" (a transient failure): later duplicates must be sent again.
        """
        with self._lock:
            self._retire(file)
            if outcome is not None:
                self._cache(file.content_sha256, outcome)
            return list(file.targets)

    def _complete_part(self, file: ChunkFile, outcome_of: Callable[[int], FileOutcome | None]) -> None:
        """Retire a PDF (part); cache each answered page for identical parts listed later."""
        assert file.page_map is not None
        with self._lock:
            self._retire(file)
            for n, _ in file.page_map:
                outcome = outcome_of(n)
                if outcome is not None:
                    self._cache(_page_key(file.content_sha256, n), outcome)

    def _retire(self, file: ChunkFile) -> None:
        """No later page attaches to ``file`` (under the lock); a newer file of its key stays."""
        if self._live.get(file.content_sha256) is file:
            del self._live[file.content_sha256]

    def _cache(self, key: str, outcome: FileOutcome) -> None:
        if self._cache_size <= 0:
            return
        self._done[key] = outcome
        self._done.move_to_end(key)
        while len(self._done) > self._cache_size:
            self._done.popitem(last=False)

    def peek(self, file: ChunkFile) -> list[PageTarget]:
        """The file's targets so far (for the ledger); duplicates may still attach later."""
        with self._lock:
            return list(file.targets)

    def pending_rows(self, file: ChunkFile) -> list[tuple[int, list[PageTarget]]]:
        """(page in the stored file, rows it answers so far): what the ledger records."""
        if file.members:
            return [(i, self.peek(m)) for i, m in enumerate(file.members, 1)]
        with self._lock:
            targets, copies = list(file.targets), list(file.copies)
        return file.rows(targets, copies)

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
        if file.page_map is not None:
            self._complete_part(file, outcome_of)
            return file.rows(())  # retired: no copy attaches any more
        return file.rows(self.complete(file, outcome_of(1)))

    def live_count(self) -> int:
        with self._lock:
            return len(self._live)


def _page_key(part_key: str, page: int) -> str:
    """The cache key of one page of a PDF (part): a part's key never equals an image's hash."""
    return f"{part_key}#{page}"
