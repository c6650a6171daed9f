"""``DelixCleanupOperator``: delete the Delix files that no task on the connection's key needs.

For a maintenance DAG (or the last task of an OCR DAG): one orphan sweep (``docs/cleanup.md``)
through :meth:`DelixHook.cleanup_orphans`. Its XCom is the sweep's report. Heavy modules
(requests, the hook) load in ``execute``, never when the DAG file is parsed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, BaseOperator

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class DelixCleanupOperator(BaseOperator):
    """
    Delete the files on the Delix account that no live task on this key claims.

    :param delix_conn_id: the connection (its ``registry_path`` must be the one the OCR tasks use).
    :param report_only: delete nothing; the report lists what would go (``would_delete``). (Not
        ``dry_run``: that name is ``BaseOperator.dry_run()``.)
    :param intent_wait: seconds to wait for uploads in flight before deciding (default 60).
    :param fail_on_undeleted: fail when a file could not be deleted (default True).
    """

    template_fields = ("delix_conn_id",)
    ui_color = "#f4ece8"

    def __init__(
        self,
        *,
        delix_conn_id: str = "delix_default",
        report_only: bool = False,
        intent_wait: float = 60.0,
        fail_on_undeleted: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.delix_conn_id = delix_conn_id
        self.report_only = report_only
        self.intent_wait = intent_wait
        self.fail_on_undeleted = fail_on_undeleted

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_delix.hooks.delix import DelixHook

        hook = DelixHook(self.delix_conn_id)
        try:
            report = hook.cleanup_orphans(dry_run=self.report_only, intent_wait=self.intent_wait)
        finally:
            hook.close()
        self.log.info("Delix cleanup on '%s': %s.", self.delix_conn_id, report.describe())
        if report.failed and self.fail_on_undeleted:
            raise AirflowException(
                f"{len(report.failed)} orphaned Delix file(s) could not be deleted on connection "
                f"'{self.delix_conn_id}': {', '.join(report.failed)}. Run the cleanup again."
            )
        return report.to_dict()
