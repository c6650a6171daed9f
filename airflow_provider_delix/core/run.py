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
from airflow_provider_delix.core.options import RunOptions
from airflow_provider_delix.core.pipeline import ExtractionPipeline
from airflow_provider_delix.core.pipeline_prefetch import prepare_in_parallel
from airflow_provider_delix.core.planning import SourceLike
from airflow_provider_delix.core.progress import ArchiveProgress
from airflow_provider_delix.core.resume import ResumeIndex
from airflow_provider_delix.core.run_stats import Progress
from airflow_provider_delix.core.store import OutputStore
from airflow_provider_delix.core.summary import PipelineSummary, check_failed_ratio

__all__ = ["RunOptions", "prepared_sources", "run_extraction"]

log = logging.getLogger(__name__)


def prepared_sources(
    inputs: Any, job: ExtractionJob, resume: ResumeIndex, options: RunOptions
) -> Iterator[SourceLike]:
    """The archive, listed lazily and prepared on ``options.prepare_workers`` threads, in order."""
    refs: Iterator[InputRef] = resolve_inputs(inputs, storage_options=options.storage_options)
    return prepare_in_parallel(refs, lambda ref: job.prepare(ref, resume), workers=options.prepare_workers)


def run_extraction(
    inputs: Any,
    output_path: str,
    client: DelixClient,
    options: RunOptions,
    *,
    run_id: str,
    cancel: threading.Event | None = None,
    progress: Callable[[Progress], None] | None = None,
    on_pipeline: Callable[[ExtractionPipeline], None] | None = None,
) -> PipelineSummary:
    """Run the archive through Delix into ``output_path``; raise a ``PipelineError`` if unfinished.

    The table is complete and closed before anything is raised, including when more pages
    failed than ``max_failed_ratio`` allows. A summary whose ``waiting`` is true has left
    queued extracts on record: call again (after they finish) to collect them and go on.
    """
    storage_options = dict(options.storage_options)
    reporter = progress or ArchiveProgress(inputs, storage_options=storage_options, noun=options.kind)
    store = OutputStore(output_path, run_tag=run_id, storage_options=storage_options)
    job = job_for(options)
    try:
        recovered = store.recover()
        if recovered:
            log.info("Recovered %d rows journalled by an interrupted earlier attempt.", recovered)
        pipeline = ExtractionPipeline(
            client, store, options, job=job, run_id=run_id, cancel=cancel, progress=reporter
        )
    except BaseException:
        store.abort()
        raise
    if on_pipeline is not None:
        on_pipeline(pipeline)

    def sources(resume: ResumeIndex) -> Iterator[SourceLike]:
        prepared = prepared_sources(inputs, job, resume, options)
        if isinstance(reporter, ArchiveProgress):
            reporter.start()
            return reporter.track(prepared)
        return prepared

    summary = pipeline.run(sources)
    if not summary.waiting:
        check_failed_ratio(summary, options.max_failed_ratio)
    return summary
