"""``DelixExtractTrigger``: wait in the triggerer for queued extractions to finish.

A deferrable :class:`~airflow_provider_delix.sensors.delix.DelixExtractSensor` hands its wait to
this trigger, so no worker slot is held while Delix works through its queue. It polls
``GET /extracts/{uuid}`` of every extract through
:class:`~airflow_provider_delix.hooks.delix_async.DelixAsyncHook` (every ``poll_interval``
seconds; the vendor suggests about once a minute) and fires exactly one event:

* ``{"status": "success", "extract_uuids": [...]}`` once every extract is ``processed``;
* ``{"status": "error", "message": ..., "extract_uuids": [...]}`` when an extract is gone (404),
  the connection's key is refused (401/403), or Delix answers something else that a new poll
  cannot fix. Messages name the connection and the extract, never the key;
* ``{"status": "timeout", "message": ..., "extract_uuids": [...], "pending_extract_uuids": [...]}``
  when ``timeout`` seconds have passed and some extract is still processing.

Throttling (429), server errors (5xx) and dropped connections are retried by the hook's retry
policy; if Delix is still failing when the policy gives up, the trigger logs it and polls again
at the next interval (until the timeout), since the extracts are unaffected by it.

The deadline is kept as an absolute time (``end_time``) in the serialized kwargs, so a trigger
moved to another triggerer, or restarted, keeps its original deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_delix.api.errors import (
    DelixAuthError,
    DelixError,
    DelixNotFoundError,
    DelixTransientError,
)
from airflow_provider_delix.hooks.delix_async import DelixAsyncHook


class DelixExtractTrigger(BaseTrigger):
    """
    Fire when every extract of ``extract_uuids`` is ``processed`` (or on error or timeout).

    :param extract_uuids: the extracts to wait for.
    :param delix_conn_id: the ``delix`` connection.
    :param poll_interval: seconds between two polls of the extracts (default 60).
    :param timeout: seconds to wait in all before a ``timeout`` event; None waits for ever.
    :param end_time: the absolute deadline (``time.time()`` seconds); set from ``timeout`` when
        the trigger is first built, and carried by :meth:`serialize`. Not for callers.
    """

    def __init__(
        self,
        extract_uuids: list[str],
        delix_conn_id: str,
        poll_interval: float = 60.0,
        timeout: float | None = None,
        end_time: float | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        if isinstance(extract_uuids, str):
            raise TypeError("extract_uuids must be a list of extract uuids, not one string")
        if not extract_uuids:
            raise ValueError("extract_uuids must name at least one extract")
        if poll_interval < 0:
            raise ValueError("poll_interval must be >= 0 seconds")
        self.extract_uuids = [str(uuid) for uuid in extract_uuids]
        self.delix_conn_id = delix_conn_id
        self.poll_interval = float(poll_interval)
        self.timeout = None if timeout is None else float(timeout)
        if end_time is None and self.timeout is not None:
            end_time = time.time() + self.timeout
        self.end_time = end_time

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "extract_uuids": list(self.extract_uuids),
                "delix_conn_id": self.delix_conn_id,
                "poll_interval": self.poll_interval,
                "timeout": self.timeout,
                "end_time": self.end_time,
            },
        )

    def _hook(self) -> DelixAsyncHook:
        return DelixAsyncHook(self.delix_conn_id)

    def _event(self, status: str, message: str | None = None, **more: Any) -> TriggerEvent:
        payload: dict[str, Any] = {"status": status}
        if message is not None:
            payload["message"] = message
        payload["extract_uuids"] = list(self.extract_uuids)
        payload.update(more)
        return TriggerEvent(payload)  # type: ignore[no-untyped-call]

    async def run(self) -> AsyncIterator[TriggerEvent]:
        pending = list(dict.fromkeys(self.extract_uuids))
        last_problem = ""
        async with self._hook() as hook:
            while True:
                still: list[str] = []
                for uuid in pending:
                    try:
                        extract = await hook.get_extract(uuid)
                    except DelixTransientError as error:
                        # The policy gave up for now; the extract itself is unaffected: poll again.
                        last_problem = f" The last poll failed: {error}"
                        self.log.warning("Polling extract %s failed, will poll again: %s", uuid, error)
                        still.append(uuid)
                        continue
                    except DelixNotFoundError as error:
                        yield self._event(
                            "error",
                            f"Extract {uuid} is gone from Delix (HTTP 404, connection "
                            f"'{self.delix_conn_id}'): it never existed or was removed. {error}",
                        )
                        return
                    except DelixAuthError as error:
                        yield self._event(
                            "error",
                            f"Delix refused the API key of connection '{self.delix_conn_id}' while "
                            f"polling extract {uuid}: put a valid key in the connection's password. "
                            f"{error}",
                        )
                        return
                    except DelixError as error:
                        yield self._event("error", f"Polling extract {uuid} failed: {error}")
                        return
                    if extract.is_processed:
                        self.log.info("Extract %s is processed.", uuid)
                    else:
                        still.append(uuid)
                pending = still
                if not pending:
                    yield self._event("success")
                    return
                wait = self.poll_interval
                if self.end_time is not None:
                    left = self.end_time - time.time()
                    if left <= 0:
                        yield self._event(
                            "timeout",
                            f"Extract(s) {', '.join(pending)} still processing after "
                            f"{self.timeout or 0:.0f} s (connection '{self.delix_conn_id}').{last_problem}",
                            pending_extract_uuids=pending,
                        )
                        return
                    wait = min(wait, left)  # one last poll at the deadline
                self.log.info(
                    "%d of %d extract(s) still processing; next poll in %.3g s.",
                    len(pending),
                    len(self.extract_uuids),
                    wait,
                )
                await asyncio.sleep(wait)
