"""What the image and document operators share: one thin ``execute`` over the core run.

The operator only orchestrates: it builds the hook, hands the run to
:func:`airflow_provider_delix.core.run.run_extraction` (plain Python), turns the summary into
a small XCom manifest, and -- when a deferrable run left queued extracts waiting -- defers to
:class:`~airflow_provider_delix.triggers.delix.DelixExtractTrigger`. On resumption it simply
runs again: the run re-attaches to the extracts it journalled (nothing is paid twice) and goes
on with the rest of the archive. Heavy modules (pandas, pyarrow, requests) load in ``execute``.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSkipException,
    Asset,
    BaseOperator,
)

from airflow_provider_delix.core.fspath import carries_fs, location_text
from airflow_provider_delix.core.options import RunOptions
from airflow_provider_delix.operators._storage import check_storage_arguments, with_connection

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_delix.core.pipeline import ExtractionPipeline


DEFAULT_CONN_ID = "delix_default"  # DelixHook.default_conn_name, without importing the hook (requests)


def output_uri(output_path: Any) -> str:
    """A URI for the table: object-storage URIs as given (no conn id), local paths as ``file://``."""
    text = location_text(output_path)
    if "://" in text:
        return text.rstrip("/")
    return "file://" + os.path.abspath(text).rstrip("/")


def default_deferrable() -> bool:
    """Airflow's ``[operators] default_deferrable`` (False when it cannot be read)."""
    try:
        from airflow.providers.common.compat.sdk import conf

        return bool(conf.getboolean("operators", "default_deferrable", fallback=False))
    except Exception:
        return False


class BaseExtractionOperator(BaseOperator):
    """Shared by :class:`ImageExtractionOperator` and :class:`DocumentExtractionOperator`."""

    ui_color = "#e8f4ea"
    inputs_field = "images"

    def __init__(
        self,
        *,
        output_path: Any,
        delix_conn_id: str,
        options: RunOptions,
        storage_conn_id: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        check_storage_arguments(storage_conn_id, storage_options)
        literal = isinstance(output_path, str) and "{{" not in output_path
        if "outlets" not in kwargs and (literal or carries_fs(output_path)):
            kwargs["outlets"] = [Asset(output_uri(output_path))]
        super().__init__(**kwargs)
        self.options = options
        self.output_path = output_path
        self.delix_conn_id = delix_conn_id
        self.storage_conn_id = storage_conn_id
        self.storage_options = dict(storage_options or {})  # templated: rendered values reach the run
        # Made in execute: an Event holds a lock, which would make the operator impossible to
        # deep-copy (DAG.partial_subset, `airflow tasks clear` on Airflow 2 copy operators).
        self._cancel: threading.Event | None = None
        self._pipeline: ExtractionPipeline | None = None

    @property
    def inputs(self) -> Any:
        return getattr(self, self.inputs_field)

    def execute(self, context: Context) -> dict[str, Any] | None:
        return self._extract(context)

    def _extract(self, context: Context) -> dict[str, Any] | None:
        """One run of the archive; also what a return from the triggerer runs (not ``execute``,
        which Airflow 2's executor safeguard wants called by the task runner only)."""
        from airflow_provider_delix.api.errors import DelixAuthError, DelixError
        from airflow_provider_delix.core.manifest import build_manifest
        from airflow_provider_delix.core.run import run_extraction
        from airflow_provider_delix.core.summary import PipelineError
        from airflow_provider_delix.hooks.delix import DelixHook
        from airflow_provider_delix.operators._metrics import AirflowStats, task_tags

        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        run_id = f"{ti.dag_id}/{ti.run_id}/{ti.task_id}/{map_index}/try{ti.try_number}"
        uri = output_uri(self.output_path)
        hook = DelixHook(self.delix_conn_id)
        options = self._run_options()
        self.log.info("OCR of %s into %s with %s/%s.", self.inputs, uri, options.engine, options.language)
        # Credentials from the storage connection, as Airflow's object-storage API builds them.
        inputs = with_connection(self.inputs, self.storage_conn_id)
        output = with_connection(self.output_path, self.storage_conn_id)
        self._cancel = threading.Event()
        try:
            summary = run_extraction(
                inputs,
                output,
                hook,
                options,
                run_id=run_id,
                cancel=self._cancel,
                on_pipeline=self._remember,
                metrics=AirflowStats(task_tags(ti)),  # live, through Airflow's Stats (docs/metrics.md)
            )
        except PipelineError as error:
            self._lineage_manifest = build_manifest(uri, error.summary)  # FAIL events carry the counts
            ti.xcom_push(key="manifest", value=self._lineage_manifest)
            self._report_unsettled(error.summary)
            raise AirflowException(str(error)) from None
        except DelixAuthError as error:
            raise AirflowFailException(str(error)) from None  # a new try cannot fix the key
        except DelixError as error:
            raise AirflowException(str(error)) from None
        finally:
            hook.close()
        manifest = self._lineage_manifest = build_manifest(uri, summary)
        if summary.waiting:
            self._defer_for(summary.waiting_extracts, manifest)
        if summary.pages_total == 0 and not summary.extracts_adopted:
            # Not a failure (a daily prefix can be empty) and not silent: the task shows skipped.
            raise AirflowSkipException(f"No {options.kind} found in {self.inputs!r}; nothing to OCR.")
        self.log.info(
            "Delix OCR done: %s pages (%s), %s resumed, %s credits charged, %s refunded, %.1f s.",
            manifest["pages_total"],
            ", ".join(f"{n} {status}" for status, n in manifest["counts"].items()),
            manifest["pages_resumed"],
            manifest["credits_charged"],
            manifest["credits_refunded"],
            manifest["elapsed_seconds"],
        )
        self._report_unsettled(summary)
        return manifest

    def _report_unsettled(self, summary: Any) -> None:
        """The last word on money and files in doubt; logged whether the run succeeded or not."""
        if (
            summary.extracts_adopted
            or summary.extracts_lost
            or summary.pages_in_doubt
            or summary.files_in_doubt
            or summary.requests_in_doubt
        ):
            self.log.warning(
                "Unsettled requests: %d paid extract(s) of earlier attempts collected, %d lost by Delix; "
                "%d page(s) were sent without a usable answer and may have been paid without a row or "
                "twice (pages_in_doubt); %d file(s) were uploaded without Delix naming them: no task claims "
                "them, so the orphan sweep deletes them, or with foreign_uploaders Delix after 24 h "
                "(files_in_doubt); %d extraction send(s) lost their answer after sending "
                "(requests_in_doubt): the table counts them as charged, %d credit(s) that Delix charged "
                "only if it applied them (credits_at_risk).",
                summary.extracts_adopted,
                summary.extracts_lost,
                summary.pages_in_doubt,
                summary.files_in_doubt,
                summary.requests_in_doubt,
                summary.credits_at_risk,
            )

    def _run_options(self) -> RunOptions:
        """The options of this try: templated fields rendered, the rest as validated at parse time."""
        if self.storage_options == dict(self.options.storage_options):
            return self.options
        return dataclasses.replace(self.options, storage_options=dict(self.storage_options))

    def _defer_for(self, extract_uuids: list[str], manifest: dict[str, Any]) -> None:
        from airflow_provider_delix.triggers.delix import DelixExtractTrigger

        self.log.info(
            "%d queued extract(s) are processing on Delix (%d page(s)); deferring until they finish.",
            len(extract_uuids),
            manifest.get("pages_waiting", 0),
        )
        self.defer(
            trigger=DelixExtractTrigger(
                extract_uuids=list(extract_uuids),
                delix_conn_id=self.delix_conn_id,
                poll_interval=self.options.poll_interval,
                timeout=self.options.extract_timeout,
            ),
            method_name="execute_complete",
        )

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """Back from the triggerer: run again; it collects the journalled extracts first.

        A ``timeout`` event fails the try, as a run that waits itself does past ``extract_timeout``
        (running again would only defer again, for ever): the extracts stay on record with their
        files, and the next try or run collects them without paying again. An ``error`` event is
        not fatal: the run asks Delix itself, and a lost extract's pages are sent again.
        """
        status = (event or {}).get("status")
        message = (event or {}).get("message", "")
        if status == "timeout":
            raise AirflowException(
                f"{message} The extract(s) stay on record with their files: the next try or run "
                "collects them without paying again (raise extract_timeout to wait longer)."
            )
        if status not in (None, "success"):
            self.log.warning("The trigger ended with %s: %s", status, message)
        return self._extract(context)

    def _remember(self, pipeline: ExtractionPipeline) -> None:
        self._pipeline = pipeline

    def on_kill(self) -> None:
        """Stop sending; the run deletes what it uploaded before the task ends."""
        if self._cancel is not None:
            self._cancel.set()
        if self._pipeline is not None:
            self._pipeline.cancel()

    # OpenLineage: called by its listener only; the module (and openlineage) loads here, never at parse.
    def get_openlineage_facets_on_start(self) -> Any:  # OperatorLineage
        """The archive and the table are known before the first page: START carries them too."""
        from airflow_provider_delix.operators._openlineage import build_lineage

        return build_lineage(self)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:  # OperatorLineage
        """Datasets plus this try's counts and credits, from the manifest ``execute`` kept."""
        from airflow_provider_delix.operators._openlineage import build_lineage

        return build_lineage(self, getattr(self, "_lineage_manifest", None))

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:  # OperatorLineage
        return self.get_openlineage_facets_on_complete(task_instance)
