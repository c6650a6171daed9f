"""``DelixExtractSensor``: wait for a queued document extraction to finish.

``POST /document-extraction`` may answer ``processing`` (long PDFs are queued), and the vendor
suggests polling about once a minute; a sensor in ``reschedule`` mode does that without
holding a worker slot. The callback the API can send is only a signal (spec section 8), so
this polls ``GET /extracts/{uuid}`` in any case.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseSensorOperator

from airflow_provider_delix.hooks.delix import DelixHook

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class DelixExtractSensor(BaseSensorOperator):
    """
    Succeeds when the extract ``extract_uuid`` is ``processed``.

    :param extract_uuid: templated; e.g. ``"{{ ti.xcom_pull('extract') }}"``.
    :param delix_conn_id: the ``delix`` connection.
    """

    template_fields: Sequence[str] = ("extract_uuid", "delix_conn_id")

    def __init__(
        self,
        *,
        extract_uuid: str,
        delix_conn_id: str = DelixHook.default_conn_name,
        poke_interval: float = 60.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.extract_uuid = extract_uuid
        self.delix_conn_id = delix_conn_id

    def poke(self, context: Context) -> bool:
        extract = DelixHook(self.delix_conn_id).get_extract(self.extract_uuid)
        self.log.info("Extract %s is %s.", self.extract_uuid, extract.status)
        return extract.is_processed
