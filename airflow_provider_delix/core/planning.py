"""Group prepared pages into chunks: the unit that is uploaded, extracted and deleted together.

A chunk holds at most 5 files (the API's cap for both upload and image extraction) and at most
``max_chunk_bytes`` (so it can always be served by the storage budget). Planning is
incremental -- one source in, zero or more finished chunks out -- so millions of inputs never
sit in memory: only the few open chunks (at most ``open_chunks`` x 5 pages) are held.

Two properties that cost money if got wrong:

* **Identical content is extracted once.** Every page is keyed by the sha256 of the bytes
  that would be uploaded. A page whose content is already waiting in an open chunk or in
  flight is attached to that file as one more *target* (one more row to write); a page whose
  content finished recently reuses the cached outcome. The :class:`ContentIndex`
  (``core/content_index.py``) is shared with the workers, which is why it has a lock.
* **Resumed pages are never sent again.** ``(source_sha256, page_number)`` keys already in
  the output are skipped before anything else.

Pages of one source are kept together where possible: a source that fits in one chunk goes
whole into an open chunk with room for it, or into a new one; a longer source is cut into
full chunks of consecutive pages.

The records planning produces (``PageTarget``, ``ChunkFile``, ``Chunk``, ``FileOutcome``,
``InvalidPage``) live in ``core/chunks.py`` and the index in ``core/content_index.py``; both are
re-exported here, where the rest of the package has always imported them from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from airflow_provider_delix.api.models import MAX_FILES_PER_REQUEST, MAX_SYNC_DOCUMENT_PAGES
from airflow_provider_delix.core.chunks import Chunk, ChunkFile, FileOutcome, InvalidPage, PageTarget
from airflow_provider_delix.core.codes import TOO_LARGE_FOR_BUDGET, Reason
from airflow_provider_delix.core.content_index import ContentIndex
from airflow_provider_delix.core.options import page_selector
from airflow_provider_delix.core.supersede import ROUTED_TO

__all__ = [
    "TOO_LARGE_FOR_BUDGET",
    "Chunk",
    "ChunkFile",
    "ChunkPlanner",
    "ContentIndex",
    "FileOutcome",
    "FilePacker",
    "InvalidPage",
    "PageLike",
    "PageTarget",
    "PartLike",
    "PlanStep",
    "RefLike",
    "SourceLike",
]


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
    @property
    def page_count(self) -> int: ...  # pages in this file, asked for or not


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


@dataclass(slots=True)
class PlanStep:
    """What one call of :meth:`ChunkPlanner.add` produced."""

    chunks: list[Chunk] = field(default_factory=list)
    invalid: list[InvalidPage] = field(default_factory=list)
    # (page, the outcome it reuses, the engine that read it: None for the run's own engine)
    reused: list[tuple[PageTarget, FileOutcome, str | None]] = field(default_factory=list)
    # Done pages listed under a source without a row of its own: a row is copied (core/copies.py).
    copies: list[PageTarget] = field(default_factory=list)
    resumed: int = 0
    resumed_not_processed: int = 0  # resumed pages whose stored row is failed/rejected/invalid
    pages: int = 0  # pages of this run's inputs, resumed ones included


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
        alone_keys: Container[tuple[str, int]] = frozenset(),
        known_source: Callable[[PageTarget], bool] | None = None,
        still_invalid: Callable[[PageTarget, str], bool] | None = None,
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
        self._alone_keys = alone_keys  # never packed: they failed in a pack (retry_packed_failures)
        self._known_source = known_source  # None: a done page is done under any source
        self._still_invalid = still_invalid  # a stored row already says why (a file still missing)
        self._new_id = chunk_id
        self._open_limit = open_chunks
        self._open: list[list[ChunkFile]] = []
        self._packer = packer

    # ------------------------------------------------------------------ public

    def add(self, source: SourceLike) -> PlanStep:
        step = PlanStep()
        new_files: list[ChunkFile] = []
        alone: list[ChunkFile] = []
        for page in source.pages:
            step.pages += 1
            target = PageTarget(source.ref.source, source.sha256, page.page_number, page.normalization)
            if self._has_row(target, step):
                continue
            if page.error is not None or page.data is None:
                self._invalid(step, InvalidPage(target, page.error or Reason.NO_DATA, page.message))
                continue
            if len(page.data) > self.max_chunk_bytes:
                self._invalid(
                    step,
                    InvalidPage(
                        target,
                        TOO_LARGE_FOR_BUDGET,
                        f"{len(page.data)} bytes can never fit in the storage budget of "
                        f"{self.max_chunk_bytes} bytes per request (max_stored_bytes): raise it and "
                        "run again.",
                    ),
                )
                continue
            sha = getattr(page, "data_sha256", None) or hashlib.sha256(page.data).hexdigest()
            claimed = self.index.claim(sha, target, page.filename, page.data)
            if isinstance(claimed, ChunkFile):
                (alone if target.key in self._alone_keys else new_files).append(claimed)
            elif isinstance(claimed, FileOutcome):
                step.reused.append((target, claimed, None))
        for part in getattr(source, "parts", ()):
            new_files.extend(self._part_file(source, part, step))
        if self._packer is not None:
            packs, new_files = self._packer.add(new_files)
            step.chunks.extend(self._emit([pack]) for pack in packs)
        self._place([*new_files, *alone], step.chunks)
        return step

    def _has_row(self, target: PageTarget, step: PlanStep) -> bool:
        """Whether the page has a row already: stored before this run (counted as resumed), or
        written by this run while collecting an earlier attempt's extract (counted in its rows)."""
        if target.key not in self._done_keys:
            return False
        if self._known_source is not None and not self._known_source(target):
            step.copies.append(target)  # done under another source: this one gets a copied row
            return True
        if target.key not in self._settled_keys:
            step.resumed += 1
            step.resumed_not_processed += target.key in self._unprocessed_keys
        return True

    def _invalid(self, step: PlanStep, page: InvalidPage) -> None:
        """An invalid row, unless the page's stored row already says the same (then resumed)."""
        if self._still_invalid is not None and self._still_invalid(page.target, page.error):
            step.resumed += 1
            # A page the other operator answered is not one this run failed to process.
            step.resumed_not_processed += page.error not in ROUTED_TO
            return
        step.invalid.append(page)

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
            for _, t in page_map:
                self._invalid(
                    step,
                    InvalidPage(
                        t,
                        TOO_LARGE_FOR_BUDGET,
                        f"the PDF part of {len(part.data)} bytes can never fit in the storage budget "
                        f"of {self.max_chunk_bytes} bytes per request (max_stored_bytes): raise it and "
                        "run again.",
                    ),
                )
            return []
        selection = part.selection
        if len(page_map) != len(part.page_map):  # some pages are done: ask only for the others
            selection = page_selector([n for n, _ in page_map])
        asked = ",".join(str(n) for n, _ in page_map)
        file = ChunkFile(
            # Identical parts asking for the same pages share one upload and one extraction.
            content_sha256=f"{hashlib.sha256(part.data).hexdigest()}:{part.engine}:{asked}",
            filename=part.filename,
            data=part.data,
            page_map=tuple(page_map),
            selection=selection,
            engine=part.engine,
            sync=len(page_map) <= MAX_SYNC_DOCUMENT_PAGES,
            file_pages=part.page_count,
        )
        reused = self.index.join(file)
        if reused is None:
            return [file]
        step.reused.extend((target, outcome, file.engine) for target, outcome in reused)
        return []

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
