"""What a chunk is made of: the files to upload, the rows they answer, and what became of them.

Why a module of its own: these small records are what planning hands to everything after it --
the chunk worker, the ledger, the claims, the row writer, packing -- and none of those needs the
planner itself. Keeping them here lets each of them depend on the data only, and keeps
``core/planning.py`` about *how* pages are grouped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from airflow_provider_delix.core.table import resume_key


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
    carried: tuple[int, int] = (0, 0)  # per page: credits of lost sends (a refused pack's too)
    # Pages in the uploaded file, asked for or not (1 for an image): a PDF Delix stores with
    # another page count is not extracted (``chunk_upload``), its pages could not be matched.
    file_pages: int = 1
    # A PDF (part): the page maps of identical parts (same bytes, same pages) listed while this
    # one is live; their pages are answered by this file's (ContentIndex.join).
    copies: list[tuple[tuple[int, PageTarget], ...]] = field(default_factory=list)

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

    def rows(
        self,
        final_targets: Sequence[PageTarget],
        copies: Sequence[tuple[tuple[int, PageTarget], ...]] | None = None,
    ) -> list[tuple[int, list[PageTarget]]]:
        """(page in the stored file, rows it answers); ``final_targets`` and ``copies`` as the
        ContentIndex saw them (``copies`` defaults to this file's own, once it is retired)."""
        if self.page_map is None:
            return [(1, list(final_targets))]
        extra = [dict(c) for c in (self.copies if copies is None else copies)]
        return [(n, [t, *(c[n] for c in extra if n in c)]) for n, t in self.page_map]


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
