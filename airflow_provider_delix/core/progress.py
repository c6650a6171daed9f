"""The progress line of a run: images read of the archive's total, pages/s, ETA, credits.

"at risk" credits (shown once there are any) are the part of the charged credits assumed for
extraction sends whose answer was lost: Delix charged them only if it applied those sends.

Inputs are listed lazily (an archive can hold millions of files), so the pipeline only learns
the page total when it has read and planned everything. To give an ETA from the start, a
background thread counts the archive once more, listing names only (no file is opened); until
it finishes the line says the total is still being counted. The ETA is always pages left over
pages written per second: inputs are read well ahead of the pages Delix has done.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from airflow_provider_delix.core.inputs import resolve_inputs
from airflow_provider_delix.core.run_stats import Progress

log = logging.getLogger(__name__)

T = TypeVar("T")


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):  # no rate yet, or one too small to divide by
        return "unknown"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


class ArchiveProgress:
    """Counts the archive in the background and formats the pipeline's progress callbacks."""

    def __init__(
        self,
        images: Any,
        *,
        storage_options: Mapping[str, Any] | None = None,
        emit: Callable[[str], None] | None = None,
        noun: str = "images",
        keep: Callable[[str], bool] | None = None,
    ) -> None:
        self.noun = noun
        self.images_total: int | None = None
        self.images_read = 0
        self._emit = emit or (lambda line: log.info("Delix OCR progress: %s", line))
        self._keep = keep
        self._counter = threading.Thread(
            target=self._count, args=(images, storage_options), name="delix-count", daemon=True
        )

    def start(self) -> None:
        self._counter.start()

    def _count(self, images: Any, storage_options: Mapping[str, Any] | None) -> None:
        try:
            refs = resolve_inputs(images, storage_options=storage_options, keep=self._keep)
            self.images_total = sum(1 for _ in refs)
        except Exception as error:  # only the ETA suffers; the run reports real errors itself
            log.info("Could not count the archive for the ETA: %s", error)

    def track(self, sources: Iterable[T]) -> Iterator[T]:
        """Pass ``sources`` through, counting the images read."""
        for source in sources:
            self.images_read += 1
            yield source

    def describe(self, progress: Progress) -> str:
        total = "counting" if self.images_total is None else str(self.images_total)
        eta = progress.eta_seconds
        if eta is None:
            eta = self._eta_before_the_end(progress)
        pages_total = "" if progress.pages_total is None else f"/{progress.pages_total}"
        return (
            f"{self.noun} {self.images_read}/{total} read, pages {progress.pages_done}{pages_total} done, "
            f"{progress.pages_per_second:.1f} pages/s, ETA {_duration(eta)}, "
            f"credits {progress.credits_charged} charged / {progress.credits_refunded} refunded"
            + (f" / {progress.credits_at_risk} at risk" if progress.credits_at_risk else "")
        )

    def _eta_before_the_end(self, progress: Progress) -> float | None:
        """Pages left over the rate of pages written, before the pipeline knows the page total.

        The work left is pages, not inputs: every input may already be read (the prefetcher
        runs ahead) while most of its pages still wait for Delix. The page total is estimated
        from the archive count, at the pages per input planned so far (1 for single-page images;
        a PDF's page count is only known once it is planned). Unknown until the count is done.
        """
        if self.images_total is None or progress.pages_per_second <= 0:
            return None
        per_input = progress.pages_planned / progress.inputs_planned if progress.inputs_planned else 1.0
        unplanned = max(self.images_total - progress.inputs_planned, 0)
        pages_total = progress.pages_planned + unplanned * per_input
        return max(pages_total - progress.pages_done, 0.0) / progress.pages_per_second

    def __call__(self, progress: Progress) -> None:
        self._emit(self.describe(progress))
