"""What the dispatcher and a run's chunk workers share, and the state of one chunk.

Split out of :mod:`.pipeline_worker` so each part of a chunk's life (upload, bad answers,
deletes, rows) can live in its own module: they all work on a :class:`ChunkState` inside a
:class:`RunContext`, and stop through :class:`Control`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from airflow_provider_delix.api.errors import (
    DelixApiError,
    DelixAuthError,
    DelixInsufficientCreditsError,
    DelixTransientError,
)
from airflow_provider_delix.core.budget import StorageBudget
from airflow_provider_delix.core.claims import ClaimBook
from airflow_provider_delix.core.collect import ExtractWaitTimeout, PageResult
from airflow_provider_delix.core.counting_client import CountingClient
from airflow_provider_delix.core.jobs import ExtractionJob
from airflow_provider_delix.core.ledger import ExtractRecord
from airflow_provider_delix.core.options import PipelineTuning, RunOptions
from airflow_provider_delix.core.planning import Chunk, ChunkFile, ContentIndex, FileOutcome
from airflow_provider_delix.core.run_stats import ProgressReporter, RunStats
from airflow_provider_delix.core.store import OutputStore
from airflow_provider_delix.core.window import StorageWindow


class StorageWaitTimeout(Exception):
    """The shared account stayed full for longer than the configured wait."""


class ChunkAborted(Exception):
    """The run is stopping: this chunk gives up before its next API call."""


class SlotsReturned(ChunkAborted):
    """Stopped while re-queued after a refusal: the chunk holds no budget any more."""


class Control:
    """Stop requests shared by the dispatcher and the workers; first cause of each kind wins."""

    def __init__(self, cancel: threading.Event, on_stop: Callable[[], None]) -> None:
        self.cancel = cancel
        self._on_stop = on_stop
        self._lock = threading.Lock()
        self._stop_new = False
        self._abort = False
        self.fatal: BaseException | None = None
        self.credits: DelixInsufficientCreditsError | None = None
        self.storage: StorageWaitTimeout | None = None
        self.transient: DelixTransientError | None = None
        self.waits: ExtractWaitTimeout | None = None
        self.busy: DelixApiError | None = None  # a file kept because Delix still works on it

    def stop_new(self) -> bool:
        """No new chunk may start (in-flight ones finish)."""
        return self._stop_new or self.cancel.is_set()

    def aborting(self) -> bool:
        """In-flight chunks skip their remaining API calls (cleanup still runs)."""
        return self._abort or self.cancel.is_set()

    def _stop(self, *, abort: bool) -> None:
        with self._lock:
            self._stop_new = True
            self._abort = self._abort or abort
        self._on_stop()

    def fail(self, exc: BaseException, *, abort: bool) -> None:
        with self._lock:
            if self.fatal is None:
                self.fatal = exc
        self._stop(abort=abort)

    def out_of_credits(self, exc: DelixInsufficientCreditsError) -> None:
        with self._lock:
            if self.credits is None:
                self.credits = exc
        self._stop(abort=False)

    def storage_timeout(self, exc: StorageWaitTimeout) -> None:
        with self._lock:
            if self.storage is None:
                self.storage = exc
        self._stop(abort=False)

    def extract_timeout(self, exc: ExtractWaitTimeout) -> None:
        with self._lock:
            if self.waits is None:
                self.waits = exc

    def key_refused(self) -> bool:
        """The key was refused (401/403): every further request would be refused too; send none."""
        return isinstance(self.fatal, DelixAuthError)

    def transient_error(self, exc: DelixTransientError) -> None:
        with self._lock:
            self.transient = exc

    def file_busy(self, exc: DelixApiError) -> None:
        """A file Delix still works on is kept in its slot: like a held extract, the attempt ends."""
        with self._lock:
            if self.busy is None:
                self.busy = exc
        self._stop(abort=False)

    def defer_to_parked(self) -> None:
        """The account is full while this run's queued (parked) extracts hold part of it: only
        their collection, after the deferral, frees that. No new chunk starts; the attempt ends
        and the caller defers."""
        self._stop(abort=False)

    def extract_held(self) -> None:
        """An extract stays uncollected with its files: no new chunk starts, the attempt ends.

        Its files keep their budget slots (they are stored until a later attempt collects the
        extract), so chunks started after it could wait for storage that never frees.
        """
        self._stop(abort=False)


@dataclass(frozen=True, slots=True)
class KeptExtract:
    """A paid extract left on record for a later attempt: parked (queued, deferrable) or held.

    Its files stay in the content index, so later pages with the same content still attach to
    them; at the end of the run its record is rewritten with every row they answer
    (``PipelineLeftovers._record_kept``). Otherwise those pages would be on no record: counted
    nowhere in this run, and given no row by the attempt that collects the extract.
    """

    record: ExtractRecord
    files: dict[str, ChunkFile]  # by stored file uuid, as in ``record.files``
    parked: bool
    stale: bool = False  # ``record`` is not what is on record (its write failed): write it again


@dataclass(slots=True)
class RunContext:
    """Everything a chunk needs; built once per run by the pipeline."""

    client: CountingClient
    store: OutputStore
    budget: StorageBudget
    index: ContentIndex
    stats: RunStats
    progress: ProgressReporter
    control: Control
    deletes: ThreadPoolExecutor
    job: ExtractionJob
    options: RunOptions
    tuning: PipelineTuning
    run_id: str
    clock: Callable[[], float]
    sleep: Callable[[float], object]
    live_lock: threading.Lock = field(default_factory=threading.Lock)
    live: set[str] = field(default_factory=set)  # uploaded by this run, delete not confirmed
    undeleted: set[str] = field(default_factory=set)
    parked: list[str] = field(default_factory=list)  # queued extracts left for the next attempt
    kept: list[KeptExtract] = field(default_factory=list)  # parked or held: rewritten at the end
    retries: list[ChunkFile] = field(default_factory=list)  # packed images to send again alone
    window: StorageWindow | None = None  # the task's share of a shared account (core/window.py)
    claims: ClaimBook | None = None  # other writers of the output path (core/claims.py)
    fair_share: Callable[[], float | None] = lambda: None  # the key registry's equal share, if known
    # The orphan sweep deletes what lost uploads may have stored (core/run_cleanup.py): only then
    # is a chunk whose upload lost every answer sent again in the run (core/chunk_upload.py).
    lost_copies_swept: bool = False
    deferred: list[ChunkFile] = field(default_factory=list)  # another writer holds their pages


@dataclass(slots=True)
class Slot:
    """One file of a chunk: its budget slot, its current uuid and what became of its pages."""

    file: ChunkFile
    uuid: str | None = None
    released: bool = False
    outcome: FileOutcome | None = None  # for every page (rejected at upload, refused extraction)
    pages: dict[int, PageResult] = field(default_factory=dict)  # per stored page, once extracted
    aside: str | None = None  # "deferred" / "done": another writer has its pages (core/claims.py)
    held: bool = False  # in an extract left uncollected on record: stored until a later attempt reads it
    # A pack Delix refused (at upload or extraction; nothing charged): the refusal is about our
    # PDF, not the images, so its members go again as images instead of getting its error.
    unpack: bool = False

    @property
    def extractable(self) -> bool:
        """Stored, and nothing has settled it yet (a page count Delix disagrees with does)."""
        return self.uuid is not None and self.outcome is None and not self.unpack

    def outcome_of(self, page: int) -> FileOutcome | None:
        """What became of a page of this file; None when it got no result."""
        result = self.pages.get(page)
        return self.outcome or (result.outcome if result is not None else None)


class ChunkState:
    """One chunk's slots and bookkeeping; the parts of :class:`.pipeline_worker.ChunkRunner` share it."""

    def __init__(self, ctx: RunContext, chunk: Chunk) -> None:
        self.ctx = ctx
        self.chunk = chunk
        self.slots = [Slot(f) for f in chunk.files]
        self.parked = False
        self._journalled: list[str] = []  # ledger record ids of this chunk's extracts
        self._held: set[str] = set()  # of those, the ones left on record for a later attempt
        self._recorded = False
        self._deletes_left = 0
        self._deletes_failed = False
        # A queued request's answer was lost after sending: Delix may be working on these files
        # for an extract this chunk cannot name, so a delete refused as busy is not waited for.
        self._extract_unknown = False
        self._lock = threading.Lock()

    def _holds_files(self) -> bool:
        """Files of a held extract stay stored: the chunk's upload record must stay with them."""
        return any(slot.held for slot in self.slots)

    def _release(self, slot: Slot) -> None:
        if not slot.released:
            slot.released = True
            self.ctx.budget.release(1, slot.file.size)
