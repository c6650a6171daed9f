"""``RunOptions``: every knob of a run, validated once, then passed down whole.

Built when the operator is constructed (so a bad argument fails at DAG parse time) and handed
unchanged to the run, the pipeline and every chunk worker: no layer copies fields one by one.
Engine-independent tuning that users never set (prefetch depth, back-off steps, cache sizes)
lives in :class:`PipelineTuning`, which tests and benchmarks override.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from airflow_provider_delix.api.models import (
    IMAGE_EXTRACTION_ENGINES,
    MAX_STORED_BYTES,
    MAX_STORED_FILES,
    Engine,
    Language,
    engine_body,
)

JobKind = Literal["images", "documents"]
Packing = Literal["none", "pdf"]
PACKINGS = ("none", "pdf")
AUTO_ENGINE = "auto"  # documents: probe for pages with a text layer, OCR (danlin) for scans
IMAGE_ENGINES = tuple(e.value for e in IMAGE_EXTRACTION_ENGINES)
DOCUMENT_ENGINES = (Engine.DANLIN.value, Engine.TIHO.value, Engine.PROBE.value, AUTO_ENGINE)
_SELECTION = re.compile(r"^\s*\d+\s*(-\s*\d+\s*)?(,\s*\d+\s*(-\s*\d+\s*)?)*$")


def parse_page_selection(selection: str | None) -> tuple[int, ...] | None:
    """``"1-5"``/``"1,4,15"``/``"1-3,7"`` as sorted page numbers; None or "" means every page.

    The API refuses a selection naming a page twice, a reversed range or page 0
    (``INVALID_FILE_PAGE``), so we refuse them here, before any call.
    """
    if selection is None or not str(selection).strip():
        return None
    text = str(selection)
    if not _SELECTION.match(text):
        raise ValueError(f"pages must look like '3-16', '1,4,15' or '1-3,7', got {selection!r}.")
    pages: list[int] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        start, end = int(first), int(last or first)
        if start < 1 or end < start:
            raise ValueError(f"pages {selection!r}: {part.strip()!r} is not a range of pages from 1 up.")
        pages.extend(range(start, end + 1))
    if len(set(pages)) != len(pages):
        raise ValueError(f"pages {selection!r} names a page twice.")
    return tuple(sorted(pages))


def page_selector(pages: Sequence[int]) -> str:
    """Ascending page numbers as the API's selector: one run as a range, else a list.

    [3, 4, 5] -> "3-5", [1, 2, 3, 7] -> "1,2,3,7". The API documents exactly these two forms
    (``3-16`` and ``1,4,15``); a mix like ``1-3,7`` is ours to accept from users (see
    :func:`parse_page_selection`), never ours to send. The inverse of that function.
    """
    first, last = pages[0], pages[-1]
    if len(pages) > 1 and last - first + 1 == len(pages):
        return f"{first}-{last}"
    return ",".join(str(n) for n in pages)


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What the user chose for a run (see the operators' parameters)."""

    kind: JobKind = "images"
    engine: str = Engine.DANLIN.value
    language: str = Language.FA.value
    pages: str | None = None  # documents only: the selection applied to every document
    max_failed_ratio: float | None = 0.1
    max_concurrency: int | None = None
    max_stored_files: int = MAX_STORED_FILES
    max_stored_bytes: int = MAX_STORED_BYTES
    storage_wait_timeout: float = 600.0
    progress_interval: float = 30.0
    prepare_workers: int = 2
    poll_interval: float = 60.0  # queued document extracts: seconds between polls
    extract_timeout: float = 24 * 3600.0  # give up on a queued extract after this long
    deferrable: bool = False  # park queued extracts and let the caller defer instead of polling
    mixed_archive: bool = False  # folders/globs hold images and PDFs: take only this kind's files
    packing: Packing = "none"  # images: "pdf" packs them into queued PDFs (core.packing)
    retry_packed_failures: bool = False  # packing: a page that failed in a pack goes again alone
    # Never in a repr: rendered from a template it may hold a secret (logs must not show it).
    storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        engines = IMAGE_ENGINES if self.kind == "images" else DOCUMENT_ENGINES
        if self.kind not in ("images", "documents"):
            raise ValueError(f"kind must be 'images' or 'documents', got {self.kind!r}.")
        if self.engine not in engines:
            hint = " ('probe' only reads the text layer of PDFs)" if self.kind == "images" else ""
            raise ValueError(
                f"engine must be one of {', '.join(engines)} for {self.kind[:-1]} extraction, got "
                f"{self.engine!r}{hint}."
            )
        if self.engine != Engine.PROBE.value:
            engine_body(Engine.DANLIN, self.language)  # raises a clear ValueError for a bad language
        elif self.language is not None:
            Language(self.language)
        if self.packing not in PACKINGS:
            raise ValueError(
                f"packing must be one of {', '.join(map(repr, PACKINGS))}, got {self.packing!r}."
            )
        if self.packing != "none" and self.kind != "images":
            raise ValueError("packing packs images into PDFs; documents are PDFs already.")
        if self.retry_packed_failures and self.packing == "none":
            raise ValueError(
                "retry_packed_failures retries pages that failed inside a pack: set packing='pdf'."
            )
        if self.deferrable and self.kind == "images" and self.packing == "none":
            raise ValueError(
                "deferrable waits for queued extracts in the triggerer: Delix answers image extractions "
                "at once, so only packed images (packing='pdf') are queued and can defer."
            )
        if self.deferrable and self.retry_packed_failures:
            raise ValueError(
                "retry_packed_failures sends a page that failed in a pack again from the task that "
                "collects the pack; a deferrable run collects packs after the triggerer, where that "
                "retry cannot be sent: choose one of them."
            )
        if self.packing == "pdf" and importlib.util.find_spec("img2pdf") is None:
            raise ValueError("packing='pdf' needs img2pdf: pip install 'airflow-provider-delix[packing]'.")
        if self.kind == "images" and self.pages:
            raise ValueError("pages selects pages of PDFs; images have one page each.")
        parse_page_selection(self.pages)
        if self.max_failed_ratio is not None and not 0.0 <= self.max_failed_ratio <= 1.0:
            raise ValueError(f"max_failed_ratio must be between 0 and 1, got {self.max_failed_ratio}.")
        if not 1 <= self.max_stored_files <= MAX_STORED_FILES:
            raise ValueError(
                f"max_stored_files must be between 1 and {MAX_STORED_FILES} (the account's limit), "
                f"got {self.max_stored_files}."
            )
        if not 1 <= self.max_stored_bytes <= MAX_STORED_BYTES:
            raise ValueError(
                f"max_stored_bytes must be between 1 and {MAX_STORED_BYTES} (the account's 100 MB), "
                f"got {self.max_stored_bytes}."
            )
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {self.max_concurrency}.")
        if self.prepare_workers < 1 or self.progress_interval < 0 or self.storage_wait_timeout < 0:
            raise ValueError("prepare_workers must be >= 1; intervals and timeouts >= 0 seconds.")
        if self.poll_interval <= 0 or self.extract_timeout <= 0:
            raise ValueError("poll_interval and extract_timeout must be positive seconds.")

    @property
    def page_numbers(self) -> tuple[int, ...] | None:
        return parse_page_selection(self.pages)

    def row_engines(self) -> frozenset[str]:
        """Engines whose stored rows answer this run: ``auto`` writes probe or danlin rows for the
        pages those engines read, and ``auto`` rows for pages no engine read (invalid ones)."""
        if self.engine == AUTO_ENGINE:
            return frozenset({Engine.PROBE.value, Engine.DANLIN.value, AUTO_ENGINE})
        return frozenset({self.engine})


@dataclass(frozen=True, slots=True)
class PipelineTuning:
    """Engine internals: sensible for every user, overridden by tests and benchmarks only."""

    # None: one delete thread per budget slot (see ExtractionPipeline.delete_concurrency).
    delete_concurrency: int | None = None
    prefetch: int = 8
    storage_backoff: tuple[float, float] = (1.0, 30.0)  # first and longest wait between attempts
    under_processing_timeout: float = 60.0
    misc_rows_per_append: int = 500
    dedup_cache_size: int = 2048
    cancel_check_interval: float = 0.25

    def __post_init__(self) -> None:
        if (self.delete_concurrency is not None and self.delete_concurrency < 1) or self.prefetch < 1:
            raise ValueError("delete_concurrency and prefetch must be positive.")
