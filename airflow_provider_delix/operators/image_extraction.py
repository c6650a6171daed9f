"""``ImageExtractionOperator``: an archive of scans in, one Parquet row per page out.

The operator only orchestrates: it validates its arguments when the DAG is parsed, builds
the hook, and hands the run to :func:`airflow_provider_delix.core.run.run_extraction`
(plain Python: chunking, the storage budget, validation, streaming, resume). Texts never go
to XCom: the return value is a small manifest, and the table is declared as the task's
outlet so downstream DAGs can be scheduled on it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSkipException,
    Asset,
    BaseOperator,
)

from airflow_provider_delix.api.errors import DelixAuthError, DelixError
from airflow_provider_delix.api.models import MAX_STORED_BYTES, MAX_STORED_FILES
from airflow_provider_delix.core.manifest import build_manifest
from airflow_provider_delix.core.options import RunOptions
from airflow_provider_delix.core.pipeline import ExtractionPipeline
from airflow_provider_delix.core.run import run_extraction
from airflow_provider_delix.core.summary import PipelineError
from airflow_provider_delix.hooks.delix import DelixHook

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


def output_uri(output_path: str) -> str:
    """A URI for the table: object-storage URIs as given, local paths as absolute ``file://``."""
    text = os.fspath(output_path)
    if "://" in text:
        return text.rstrip("/")
    return "file://" + os.path.abspath(text).rstrip("/")


class ImageExtractionOperator(BaseOperator):
    """
    OCR every page of an archive of scans with Delix into a Parquet table.

    :param images: templated. A list of paths/URIs, a glob (``"scans/**/*.png"``), or a folder
        or object-storage prefix (``s3://bucket/scans/``), read through fsspec.
    :param output_path: templated. Where the table goes (local path or URI);
        ``pandas.read_parquet(output_path)`` reads it whole. The resume state lives beside it,
        so a re-run with the same path never pays twice for a page.
    :param delix_conn_id: the ``delix`` connection.
    :param engine: ``danlin`` (dense text) or ``tiho`` (sparse text).
    :param language: ``fa``, ``en``, ``ar`` or ``tr``: the main language of the scans.
    :param max_failed_ratio: share of pages not processed (failed, rejected, invalid) above
        which the task fails, after the table is written; ``None`` never fails for it.
    :param max_concurrency: chunks (of up to 5 files) in flight; default fills the budget.
    :param max_stored_files: files this task may hold on the account at once (1 to 30); lower
        it when several tasks share one key (see "Scaling out" in the docs).
    :param max_stored_bytes: bytes this task may hold on the account at once (up to 100 MB).
    :param storage_options: fsspec options for reading ``images`` and writing ``output_path``.
    :param storage_wait_timeout: seconds to wait, with backoff, while someone else fills the
        shared account, before failing.
    :param progress_interval: at most one progress log line per this many seconds.
    """

    template_fields: Sequence[str] = ("images", "output_path", "delix_conn_id")
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        images: Any,
        output_path: str,
        delix_conn_id: str = DelixHook.default_conn_name,
        engine: str = "danlin",
        language: str = "fa",
        max_failed_ratio: float | None = 0.1,
        max_concurrency: int | None = None,
        max_stored_files: int = MAX_STORED_FILES,
        max_stored_bytes: int = MAX_STORED_BYTES,
        storage_options: Mapping[str, Any] | None = None,
        storage_wait_timeout: float = 600.0,
        progress_interval: float = 30.0,
        **kwargs: Any,
    ) -> None:
        # Bad arguments fail when the DAG is parsed, not after the first upload.
        self.options = RunOptions(
            engine=str(engine),
            language=str(language),
            max_failed_ratio=max_failed_ratio,
            max_concurrency=max_concurrency,
            max_stored_files=max_stored_files,
            max_stored_bytes=max_stored_bytes,
            storage_wait_timeout=storage_wait_timeout,
            progress_interval=progress_interval,
            storage_options=dict(storage_options or {}),
        )
        if "outlets" not in kwargs and isinstance(output_path, str) and "{{" not in output_path:
            kwargs["outlets"] = [Asset(output_uri(output_path))]
        super().__init__(**kwargs)
        self.images = images
        self.output_path = output_path
        self.delix_conn_id = delix_conn_id
        self._cancel = threading.Event()
        self._pipeline: ExtractionPipeline | None = None

    def execute(self, context: Context) -> dict[str, Any]:
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        run_id = f"{ti.dag_id}/{ti.run_id}/{ti.task_id}/{map_index}/try{ti.try_number}"
        uri = output_uri(self.output_path)
        hook = DelixHook(self.delix_conn_id)
        self.log.info(
            "OCR of %s into %s with %s/%s.", self.images, uri, self.options.engine, self.options.language
        )
        try:
            summary = run_extraction(
                self.images,
                self.output_path,
                hook,
                self.options,
                run_id=run_id,
                cancel=self._cancel,
                on_pipeline=self._remember,
            )
        except PipelineError as error:
            ti.xcom_push(key="manifest", value=build_manifest(uri, error.summary))
            raise AirflowException(str(error)) from None
        except DelixAuthError as error:
            raise AirflowFailException(str(error)) from None  # a new try cannot fix the key
        except DelixError as error:
            raise AirflowException(str(error)) from None
        finally:
            hook.close()
        if summary.pages_total == 0:
            # Not a failure (a daily prefix can be empty) and not silent: the task shows skipped.
            raise AirflowSkipException(f"No images found in {self.images!r}; nothing to OCR.")
        manifest = build_manifest(uri, summary)
        self.log.info(
            "Delix OCR done: %s pages (%s), %s resumed, %s credits charged, %s refunded, %.1f s.",
            manifest["pages_total"],
            manifest["counts"],
            manifest["pages_resumed"],
            manifest["credits_charged"],
            manifest["credits_refunded"],
            manifest["elapsed_seconds"],
        )
        return manifest

    def _remember(self, pipeline: ExtractionPipeline) -> None:
        self._pipeline = pipeline

    def on_kill(self) -> None:
        """Stop sending; the run deletes what it uploaded before the task ends."""
        self._cancel.set()
        if self._pipeline is not None:
            self._pipeline.cancel()
