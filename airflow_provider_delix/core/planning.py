"""Group prepared pages into chunks: the unit that is uploaded, extracted and deleted together.

A chunk holds at most 5 files (the API's cap for both upload and image extraction) and at most
``max_chunk_bytes`` (so it can always be served by the storage budget). Planning is
incremental -- one source in, zero or more finished chunks out -- so millions of inputs never
sit in memory: only the few open chunks (at most ``open_chunks`` x 5 pages) are held.

Two properties that cost money if got wrong:

* **Identical content is extracted once.** Every page is keyed by the sha256 of the bytes
  that would be uploaded. A page whose content is already waiting in an open chunk or in
  flight is attached to that file as one more *target* (one more row to write); a page whose
  content finished recently reuses the cached outcome. The :class:`ContentIndex` is shared
  with the workers, which is why it has a lock.
* **Resumed pages are never sent again.** ``(source_sha256, page_number)`` keys already in
  the output are skipped before anything else.

Pages of one source are kept together where possible: a source that fits in one chunk goes
whole into an open chunk with room for it, or into a new one; a longer source is cut into
full chunks of consecutive pages.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from airflow_provider_delix.api.models import MAX_FILES_PER_REQUEST, MAX_SYNC_DOCUMENT_PAGES
from airflow_provider_delix.core.codes import TOO_LARGE_FOR_BUDGET, Reason
from airflow_provider_delix.core.options import page_selector
from airflow_provider_delix.core.table import resume_key


class PageLike(Protocol):
    """What planning reads from a ``core.prepare.PreparedPage``."""

    @property
    def page_number(self) -> int: ...
    @property
    def data(self) -> bytes | None: ...
    @property
    def filename(self) -> str: ...
    @property
    def normalization(self) -> str | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def message(self) -> str | None: ...


class RefLike(Protocol):
    @property
    def source(self) -> str: ...


class PartLike(Protocol):
    """What planning reads from a ``core.prepare_pdf.PreparedPart``: one uploadable PDF (part)."""

    @property
    def data(self) -> bytes: ...
    @property
    def filename(self) -> str: ...
    @property
    def page_map(self) -> Sequence[tuple[int, int]]: ...  # (page in the part, page in the original)
    @property
    def selection(self) -> str | None: ...
    @property
    def engine(self) -> str: ...
    @property
    def normalization(self) -> str | None: ...


class SourceLike(Protocol):
    """What planning reads from a ``core.prepare.PreparedSource``.

    ``pages`` are single-page uploads (images), invalid pages and resumed pages (``data`` None);
    documents add ``parts`` (read with ``getattr``, so image sources need not declare it).
    """

    @property
    def ref(self) -> RefLike: ...
    @property
    def sha256(self) -> str: ...
    @property
    def pages(self) -> Sequence[PageLike]: ...


@dataclass(frozen=True, slots=True)
class PageTarget:
    """One row to write: a page of a source."""

    source: str
    source_sha256: str
    page_number: int
    normalization: str | None

    @property
    def key(self) -> tuple[str, int]:
        return resume_key(self.source_sha256, self.source, self.page_number)


@dataclass(slots=True)
class ChunkFile:
    """One file to upload and the rows its pages answer.

    An image is one page: ``targets`` are every page of the archive with this content; the list
    grows while the file is live (duplicates attach to it) and is only read through
    :meth:`ContentIndex.complete`, which freezes it under the index's lock. A PDF (part) has
    ``page_map``: for each page to extract, its number in the uploaded file and its row;
    ``selection`` is the API's page selector for them and ``engine`` the engine of the request
    it may join. ``sync`` files (<= 5 pages) only share a request with other sync files whose
    pages add up to at most 5, so the API can answer them at once. A *queued* file (more pages)
    is sent alone: it holds its storage slot until its extract finishes, so in a request with
    others it would wait for the slowest of them, and alone Delix's queue can work on several.
    """

    content_sha256: str
    filename: str
    data: bytes
    targets: list[PageTarget] = field(default_factory=list)
    page_map: tuple[tuple[int, PageTarget], ...] | None = None
    selection: str | None = None
    engine: str | None = None
    sync: bool = True
    members: tuple[ChunkFile, ...] = ()  # a pack (core.packing): page i answers member i's rows
    carried: tuple[int, int] = (0, 0)  # credits (charged, refunded) of an earlier try in a pack

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def page_count(self) -> int:
        """Pages this file asks the API to extract."""
        return 1 if self.page_map is None else len(self.page_map)

    @property
    def sync_pages(self) -> int:
        """Pages that count against the 5 of a synchronous document request (0 for images)."""
        return self.page_count if self.page_map is not None and self.sync else 0

    @property
    def queued(self) -> bool:
        """A document (part) over 5 pages: Delix queues its extraction."""
        return self.page_map is not None and not self.sync

    @property
    def group(self) -> tuple[str | None, bool]:
        """Files of one request share an engine and a mode."""
        return (self.engine, self.sync)

    @property
    def requested_pages(self) -> tuple[int, ...]:
        return (1,) if self.page_map is None else tuple(n for n, _ in self.page_map)

    def rows(self, final_targets: Sequence[PageTarget]) -> list[tuple[int, list[PageTarget]]]:
        """(page in the stored file, rows it answers); ``final_targets`` from ContentIndex.complete."""
        if self.page_map is None:
            return [(1, list(final_targets))]
        return [(n, [t]) for n, t in self.page_map]


@dataclass(slots=True)
class Chunk:
    chunk_id: str
    files: list[ChunkFile]

    @property
    def nbytes(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True, slots=True)
class FileOutcome:
    """What became of one uploaded content; reused for later pages with the same content."""

    status: str  # a core.table.RowStatus value
    text: str | None
    error: str | None
    error_message: str | None
    file_uuid: str | None
    extract_uuid: str | None


@dataclass(frozen=True, slots=True)
class InvalidPage:
    target: PageTarget
    error: str
    message: str | None


@dataclass(slots=True)
class PlanStep:
    """What one call of :meth:`ChunkPlanner.add` produced."""

    chunks: list[Chunk] = field(default_factory=list)
    invalid: list[InvalidPage] = field(default_factory=list)
    reused: list[tuple[PageTarget, FileOutcome]] = field(default_factory=list)
    resumed: int = 0
    resumed_not_processed: int = 0  # resumed pages whose stored row is failed/rejected/invalid
    pages: int = 0  # pages of this run's inputs, resumed ones included


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


class FilePacker(Protocol):
    """Packs image files into PDFs (``core.packing.Packer``): (packs, files left as images)."""

    def add(self, files: Sequence[ChunkFile]) -> tuple[list[ChunkFile], list[ChunkFile]]: ...
    def flush(self) -> tuple[list[ChunkFile], list[ChunkFile]]: ...
    def held(self) -> list[ChunkFile]: ...


class ChunkPlanner:
    """Incremental grouping of prepared sources into chunks (see the module docstring)."""

    def __init__(
        self,
        *,
        max_chunk_bytes: int,
        chunk_id: Callable[[], str],
        index: ContentIndex | None = None,
        done_keys: Container[tuple[str, int]] = frozenset(),
        unprocessed_keys: Container[tuple[str, int]] = frozenset(),
        settled_keys: Container[tuple[str, int]] = frozenset(),
        max_files: int = MAX_FILES_PER_REQUEST,
        open_chunks: int = 2,
        packer: FilePacker | None = None,
    ) -> None:
        if not 1 <= max_files <= MAX_FILES_PER_REQUEST:
            raise ValueError(f"A chunk holds 1 to {MAX_FILES_PER_REQUEST} files, got {max_files}.")
        if max_chunk_bytes < 1 or open_chunks < 1:
            raise ValueError("max_chunk_bytes and open_chunks must be positive.")
        self.max_files = max_files
        self.max_chunk_bytes = max_chunk_bytes
        self.index = index if index is not None else ContentIndex()
        self._done_keys = done_keys
        self._unprocessed_keys = unprocessed_keys
        self._settled_keys = settled_keys
        self._new_id = chunk_id
        self._open_limit = open_chunks
        self._open: list[list[ChunkFile]] = []
        self._packer = packer

    # ------------------------------------------------------------------ public

    def add(self, source: SourceLike) -> PlanStep:
        step = PlanStep()
        new_files: list[ChunkFile] = []
        for page in source.pages:
            step.pages += 1
            target = PageTarget(source.ref.source, source.sha256, page.page_number, page.normalization)
            if self._has_row(target, step):
                continue
            if page.error is not None or page.data is None:
                step.invalid.append(InvalidPage(target, page.error or Reason.NO_DATA, page.message))
                continue
            if len(page.data) > self.max_chunk_bytes:
                step.invalid.append(
                    InvalidPage(
                        target,
                        TOO_LARGE_FOR_BUDGET,
                        f"{len(page.data)} bytes can never fit in the storage budget of "
                        f"{self.max_chunk_bytes} bytes per request.",
                    )
                )
                continue
            sha = getattr(page, "data_sha256", None) or hashlib.sha256(page.data).hexdigest()
            claimed = self.index.claim(sha, target, page.filename, page.data)
            if isinstance(claimed, ChunkFile):
                new_files.append(claimed)
            elif isinstance(claimed, FileOutcome):
                step.reused.append((target, claimed))
        for part in getattr(source, "parts", ()):
            new_files.extend(self._part_file(source, part, step))
        if self._packer is not None:
            packs, new_files = self._packer.add(new_files)
            step.chunks.extend(self._emit([pack]) for pack in packs)
        self._place(new_files, step.chunks)
        return step

    def _has_row(self, target: PageTarget, step: PlanStep) -> bool:
        """Whether the page has a row already: stored before this run (counted as resumed), or
        written by this run while collecting an earlier attempt's extract (counted in its rows)."""
        if target.key not in self._done_keys:
            return False
        if target.key not in self._settled_keys:
            step.resumed += 1
            step.resumed_not_processed += target.key in self._unprocessed_keys
        return True

    def _part_file(self, source: SourceLike, part: PartLike, step: PlanStep) -> list[ChunkFile]:
        """A PDF (part) as one file to upload; its pages already done count as resumed."""
        page_map: list[tuple[int, PageTarget]] = []
        for in_part, original in part.page_map:
            step.pages += 1
            target = PageTarget(source.ref.source, source.sha256, original, part.normalization)
            if self._has_row(target, step):
                continue
            page_map.append((in_part, target))
        if not page_map:
            return []
        if len(part.data) > self.max_chunk_bytes:
            step.invalid.extend(
                InvalidPage(
                    t,
                    TOO_LARGE_FOR_BUDGET,
                    f"the PDF part of {len(part.data)} bytes can never fit in the storage budget of "
                    f"{self.max_chunk_bytes} bytes per request.",
                )
                for _, t in page_map
            )
            return []
        selection = part.selection
        if len(page_map) != len(part.page_map):  # some pages are done: ask only for the others
            selection = page_selector([n for n, _ in page_map])
        return [
            ChunkFile(
                content_sha256=hashlib.sha256(part.data).hexdigest(),
                filename=part.filename,
                data=part.data,
                page_map=tuple(page_map),
                selection=selection,
                engine=part.engine,
                sync=len(page_map) <= MAX_SYNC_DOCUMENT_PAGES,
            )
        ]

    def flush(self) -> list[Chunk]:
        """Emit every open chunk (end of input)."""
        chunks: list[Chunk] = []
        if self._packer is not None:
            packs, plain = self._packer.flush()
            chunks.extend(self._emit([pack]) for pack in packs)
            self._place(plain, chunks)
        chunks.extend(self._emit(files) for files in self._open if files)
        self._open.clear()
        return chunks

    def place_now(self, files: Sequence[ChunkFile]) -> list[Chunk]:
        """Chunks of ``files`` as images (never packed), emitted at once: the input is over."""
        chunks: list[Chunk] = []
        self._place(list(files), chunks)
        chunks.extend(self._emit(open_files) for open_files in self._open if open_files)
        self._open.clear()
        return chunks

    def held_files(self) -> list[ChunkFile]:
        """Files waiting in open chunks (for accounting when a run stops early)."""
        packing = self._packer.held() if self._packer is not None else []
        return [*packing, *(f for files in self._open for f in files)]

    # ------------------------------------------------------------------ placement

    def _emit(self, files: list[ChunkFile]) -> Chunk:
        return Chunk(chunk_id=self._new_id(), files=list(files))

    def _fits(self, files: list[ChunkFile], extra: Sequence[ChunkFile]) -> bool:
        together = [*files, *extra]
        if len({f.group for f in together}) > 1:
            return False  # one request has one engine and one mode
        if len(together) > 1 and any(f.queued for f in together):
            return False  # a queued document goes alone (see ChunkFile)
        return (
            len(together) <= self.max_files
            and sum(f.size for f in together) <= self.max_chunk_bytes
            and sum(f.sync_pages for f in together) <= MAX_SYNC_DOCUMENT_PAGES
        )

    def _is_full(self, files: list[ChunkFile]) -> bool:
        return (
            len(files) >= self.max_files
            or sum(f.sync_pages for f in files) >= MAX_SYNC_DOCUMENT_PAGES
            or any(f.queued for f in files)
        )

    def _place(self, new_files: list[ChunkFile], out: list[Chunk]) -> None:
        # Cut a long source into full chunks of consecutive pages; the rest is placed whole.
        groups: list[list[ChunkFile]] = [[]]
        for f in new_files:
            if not self._fits(groups[-1], [f]):
                groups.append([])
            groups[-1].append(f)
        for group in groups:
            if not group:
                continue
            if self._is_full(group) or group is not groups[-1]:
                out.append(self._emit(group))
            else:
                self._place_small(group, out)

    def _place_small(self, group: list[ChunkFile], out: list[Chunk]) -> None:
        for files in self._open:
            if self._fits(files, group):
                files.extend(group)
                if self._is_full(files):
                    self._open.remove(files)
                    out.append(self._emit(files))
                return
        if len(self._open) >= self._open_limit:
            fullest = max(self._open, key=len)
            self._open.remove(fullest)
            out.append(self._emit(fullest))
        self._open.append(list(group))
