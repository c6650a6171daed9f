"""One extraction run, wired end to end: inputs -> preparation -> pipeline -> table.

This is what the operators' ``execute()`` call, kept free of Airflow so a whole run can be
driven (and tested) from plain Python with any :class:`DelixClient`. The operator supplies
the hook, a run id, a logger and a cancel event, and turns the result into its XCom manifest
(or, when the summary says queued extracts are waiting, into a deferral).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from airflow_provider_delix.core.client import DelixClient
from airflow_provider_delix.core.inputs import InputRef, resolve_inputs
from airflow_provider_delix.core.jobs import ExtractionJob, job_for
from airflow_provider_delix.core.key_registry import KeyRegistry
from airflow_provider_delix.core.metrics import MetricsSink
from airflow_provider_delix.core.options import RunOptions
from airflow_provider_delix.core.pipeline import ExtractionPipeline
from airflow_provider_delix.core.pipeline_prefetch import prepare_in_parallel
from airflow_provider_delix.core.planning import SourceLike
from airflow_provider_delix.core.progress import ArchiveProgress
from airflow_provider_delix.core.resume import ResumeIndex
from airflow_provider_delix.core.run_stats import Progress
from airflow_provider_delix.core.store import OutputStore
from airflow_provider_delix.core.summary import PipelineSummary, check_failed_ratio
from airflow_provider_delix.core.table import Location

__all__ = ["RunOptions", "prepared_sources", "run_extraction"]

log = logging.getLogger(__name__)


class ListingFilter:
    """``mixed_archive``: keep the listed files that are this job's; count the others (logged)."""

    def __init__(self, job: ExtractionJob) -> None:
        self._job = job
        self.left_out = 0

    def __call__(self, path: str) -> bool:
        if self._job.takes(path):
            return True
        self.left_out += 1
        return False


def listing_filter(job: ExtractionJob, options: RunOptions) -> ListingFilter | None:
    return ListingFilter(job) if options.mixed_archive else None


def prepared_sources(
    inputs: Any,
    job: ExtractionJob,
    resume: ResumeIndex,
    options: RunOptions,
    keep: Callable[[str], bool] | None = None,
) -> Iterator[SourceLike]:
    """The archive, listed lazily and prepared on ``options.prepare_workers`` threads, in order."""
    refs: Iterator[InputRef] = resolve_inputs(inputs, storage_options=options.storage_options, keep=keep)
    return prepare_in_parallel(refs, lambda ref: job.prepare(ref, resume), workers=options.prepare_workers)


def run_extraction(
    inputs: Any,
    output_path: Location,
    client: DelixClient,
    options: RunOptions,
    *,
    run_id: str,
    cancel: threading.Event | None = None,
    progress: Callable[[Progress], None] | None = None,
    on_pipeline: Callable[[ExtractionPipeline], None] | None = None,
    metrics: MetricsSink | None = None,
    registry: KeyRegistry | None = None,
) -> PipelineSummary:
    """Run the archive through Delix into ``output_path``; raise a ``PipelineError`` if unfinished.

    The table is complete and closed before anything is raised, including when more pages
    failed than ``max_failed_ratio`` allows. A summary whose ``waiting`` is true has left
    queued extracts on record: call again (after they finish) to collect them and go on.
    ``inputs`` items and ``output_path`` may carry their own filesystem (``ObjectStoragePath``,
    :class:`~airflow_provider_delix.core.fspath.FsPath`): then ``storage_options`` do not apply.
    ``registry`` is the key registry (``docs/cleanup.md``); by default the client's own
    (``DelixHook.key_registry()``), none for a client that has no such method.
    """
    storage_options = dict(options.storage_options)
    job = job_for(options)
    keep = listing_filter(job, options)
    reporter = progress or ArchiveProgress(
        inputs, storage_options=storage_options, noun=options.kind, keep=None if keep is None else job.takes
    )
    if registry is None and callable(getattr(client, "key_registry", None)):
        registry = client.key_registry()  # type: ignore[attr-defined]
    store = OutputStore(output_path, run_tag=run_id, storage_options=storage_options)
    try:
        recovered = store.recover()
        if recovered:
            log.info("Recovered %d rows journalled by an interrupted earlier attempt.", recovered)
        pipeline = ExtractionPipeline(
            client,
            store,
            options,
            job=job,
            run_id=run_id,
            cancel=cancel,
            progress=reporter,
            metrics=metrics,
            archive_size=(lambda: reporter.images_total) if isinstance(reporter, ArchiveProgress) else None,
            registry=registry,
        )
    except BaseException:
        store.abort()
        raise
    if on_pipeline is not None:
        on_pipeline(pipeline)

    def sources(resume: ResumeIndex) -> Iterator[SourceLike]:
        prepared = prepared_sources(inputs, job, resume, options, keep)
        if isinstance(reporter, ArchiveProgress):
            reporter.start()
            return reporter.track(prepared)
        return prepared

    summary = pipeline.run(sources)
    if keep is not None and keep.left_out:
        other = "DocumentExtractionOperator" if options.kind == "images" else "ImageExtractionOperator"
        log.info("mixed_archive: %d listed file(s) of the other kind were left to %s.", keep.left_out, other)
    if not summary.waiting:
        check_failed_ratio(summary, options.max_failed_ratio)
    return summary
