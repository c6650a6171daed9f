"""One extraction run, wired end to end: inputs -> preparation -> pipeline -> table.

This is what ``ImageExtractionOperator.execute()`` calls, kept free of Airflow so the whole
run can be driven (and tested) from plain Python with any :class:`DelixClient`. The operator
only supplies the hook, a run id, a logger and a cancel event, and turns the result into
its XCom manifest.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_delix.api.models import (
    MAX_STORED_BYTES,
    MAX_STORED_FILES,
    Engine,
    Language,
    engine_body,
)
from airflow_provider_delix.core.client import DelixClient
from airflow_provider_delix.core.inputs import InputRef, resolve_inputs
from airflow_provider_delix.core.pipeline import ExtractionPipeline
from airflow_provider_delix.core.pipeline_prefetch import prepare_in_parallel
from airflow_provider_delix.core.pipeline_state import PipelineSummary, Progress, check_failed_ratio
from airflow_provider_delix.core.prepare import PreparedSource, prepare_source
from airflow_provider_delix.core.progress import ArchiveProgress
from airflow_provider_delix.core.store import OutputStore

log = logging.getLogger(__name__)

IMAGE_ENGINES = (Engine.DANLIN.value, Engine.TIHO.value)


@dataclass(frozen=True, slots=True)
class RunOptions:
    """Every knob of a run, validated once (at DAG parse time when the operator is built)."""

    engine: str = Engine.DANLIN.value
    language: str = Language.FA.value
    max_failed_ratio: float | None = 0.1
    max_concurrency: int | None = None
    max_stored_files: int = MAX_STORED_FILES
    max_stored_bytes: int = MAX_STORED_BYTES
    storage_wait_timeout: float = 600.0
    progress_interval: float = 30.0
    prepare_workers: int = 2
    storage_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.engine not in IMAGE_ENGINES:
            raise ValueError(
                f"engine must be one of {', '.join(IMAGE_ENGINES)} for image extraction, got "
                f"{self.engine!r} ('probe' only reads the text layer of PDFs)."
            )
        engine_body(self.engine, self.language)  # raises a clear ValueError for a bad language
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


def prepared_sources(
    images: Any, *, storage_options: Mapping[str, Any] | None = None, workers: int = 2
) -> Iterator[PreparedSource]:
    """The archive, listed lazily and prepared on ``workers`` threads, in input order."""
    refs: Iterator[InputRef] = resolve_inputs(images, storage_options=storage_options)
    return prepare_in_parallel(refs, prepare_source, workers=workers)


def run_extraction(
    images: Any,
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
    failed than ``max_failed_ratio`` allows.
    """
    storage_options = dict(options.storage_options)
    reporter = progress or ArchiveProgress(images, storage_options=storage_options)
    # The store makes the run id file-name safe and unique per attempt.
    # The store turns the run id into a file-name-safe tag, unique per attempt.
    store = OutputStore(output_path, run_tag=run_id, storage_options=storage_options)
    recovered = store.recover()
    if recovered:
        log.info("Recovered %d rows journalled by an interrupted earlier attempt.", recovered)
    try:
        pipeline = _pipeline(client, store, options, run_id=run_id, cancel=cancel, progress=reporter)
    except BaseException:
        store.abort()
        raise
    if on_pipeline is not None:
        on_pipeline(pipeline)
    sources = prepared_sources(images, storage_options=storage_options, workers=options.prepare_workers)
    if isinstance(reporter, ArchiveProgress):
        reporter.start()
        sources = reporter.track(sources)
    summary = pipeline.run(sources)
    check_failed_ratio(summary, options.max_failed_ratio)
    return summary


def _pipeline(
    client: DelixClient,
    store: OutputStore,
    options: RunOptions,
    *,
    run_id: str,
    cancel: threading.Event | None,
    progress: Callable[[Progress], None],
) -> ExtractionPipeline:
    return ExtractionPipeline(
        client,
        store,
        engine=options.engine,
        language=options.language,
        run_id=run_id,
        max_stored_files=options.max_stored_files,
        max_stored_bytes=options.max_stored_bytes,
        max_concurrency=options.max_concurrency,
        progress=progress,
        progress_interval=options.progress_interval,
        storage_wait_timeout=options.storage_wait_timeout,
        cancel=cancel,
    )
