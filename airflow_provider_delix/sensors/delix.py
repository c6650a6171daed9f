"""``DelixExtractSensor``: wait for a queued document extraction to finish.

``POST /document-extraction`` may answer ``processing`` (long PDFs are queued), and the vendor
suggests polling about once a minute. Three ways to wait, all polling ``GET /extracts/{uuid}``
(the callback the API can send is only a signal, docs/api.md, "Decisions where the vendor is silent"):

* ``mode="poke"`` (default): the sensor holds a worker slot and polls every ``poke_interval``;
* ``mode="reschedule"``: the task is rescheduled between polls, no slot is held;
* ``deferrable=True``: one poll on the worker, then the wait moves to the triggerer
  (:class:`~airflow_provider_delix.triggers.delix.DelixExtractTrigger`, every ``poll_interval``
  seconds) and the task resumes in :meth:`DelixExtractSensor.execute_complete`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    BaseSensorOperator,
    conf,
)

# The hook (requests, HttpHook) and the trigger (aiohttp) load when the sensor runs, not when a
# DAG that uses it is parsed.
from airflow_provider_delix.operators._extraction import DEFAULT_CONN_ID

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class DelixExtractSensor(BaseSensorOperator):
    """
    Succeeds when the extract ``extract_uuid`` is ``processed``.

    :param extract_uuid: templated; e.g. ``"{{ ti.xcom_pull('extract') }}"``.
    :param delix_conn_id: the ``delix`` connection.
    :param poke_interval: seconds between polls when not deferrable (default 60).
    :param deferrable: wait in the triggerer instead of a worker (default: the Airflow setting
        ``[operators] default_deferrable``, else False).
    :param poll_interval: seconds between the trigger's polls when deferrable (default:
        ``poke_interval``).

    A deferred sensor fails with :class:`AirflowException` when the extract is gone (404) or
    the key is refused, and with ``AirflowSensorTimeout`` once ``timeout`` seconds have passed.
    """

    template_fields: Sequence[str] = ("extract_uuid", "delix_conn_id")

    def __init__(
        self,
        *,
        extract_uuid: str,
        delix_conn_id: str = DEFAULT_CONN_ID,
        poke_interval: float = 60.0,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.extract_uuid = extract_uuid
        self.delix_conn_id = delix_conn_id
        self.deferrable = deferrable
        self.poll_interval = float(poke_interval if poll_interval is None else poll_interval)

    def poke(self, context: Context) -> bool:
        from airflow_provider_delix.api.errors import DelixAuthError
        from airflow_provider_delix.hooks.delix import DelixHook

        try:
            extract = DelixHook(self.delix_conn_id).get_extract(self.extract_uuid)
        except DelixAuthError as error:  # a new try cannot fix the key: fail, as the operators do
            raise AirflowFailException(str(error)) from None
        self.log.info("Extract %s is %s.", self.extract_uuid, extract.status)
        return extract.is_processed

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        if self.poke(context):
            return None
        from airflow_provider_delix.triggers.delix import DelixExtractTrigger

        self.defer(
            trigger=DelixExtractTrigger(
                extract_uuids=[self.extract_uuid],
                delix_conn_id=self.delix_conn_id,
                poll_interval=self.poll_interval,
                timeout=float(self.timeout),
            ),
            method_name="execute_complete",
        )
        return None  # not reached: defer() raises TaskDeferred

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> None:
        """Resume after the trigger fired: return on success, fail with its message otherwise."""
        status = (event or {}).get("status")
        message = (event or {}).get("message") or f"no message (event {event!r})"
        if status == "success":
            self.log.info("Extract %s is processed.", self.extract_uuid)
            return
        if status == "timeout":
            raise AirflowSensorTimeout(f"Delix extract {self.extract_uuid}: {message}")
        raise AirflowException(f"Waiting for Delix extract {self.extract_uuid} failed: {message}")
