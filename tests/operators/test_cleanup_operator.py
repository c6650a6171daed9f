"""``DelixCleanupOperator``: one orphan sweep as a task, against the emulator (``docs/cleanup.md``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException
from airflow_runner import connection_json

from airflow_provider_delix.api.errors import DelixApiError
from airflow_provider_delix.hooks.delix import DelixHook
from airflow_provider_delix.operators.cleanup import DelixCleanupOperator

CONN_ID = "delix_cleanup"


@pytest.fixture
def conn(emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    extra = {"registry_path": str(tmp_path / "registry")}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", connection_json(emulator, **extra))
    return CONN_ID


def test_report_only_then_delete(emulator: Any, conn: str) -> None:
    foreign = emulator.foreign_upload(3)
    listed = DelixCleanupOperator(task_id="look", delix_conn_id=conn, report_only=True).execute({})
    assert sorted(listed["would_delete"]) == sorted(foreign) and emulator.stats()["files"]["count"] == 3
    done = DelixCleanupOperator(task_id="clean", delix_conn_id=conn).execute({})
    assert sorted(done["deleted"]) == sorted(foreign) and emulator.stats()["files"]["count"] == 0


def test_a_file_that_cannot_be_deleted_fails_the_task(
    emulator: Any, conn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (uuid,) = emulator.foreign_upload(1)

    def refuse(self: DelixHook, file_uuid: str, **_: Any) -> bool:
        raise DelixApiError("refused", error="GENERAL_EXCEPTION", status_code=422)

    monkeypatch.setattr(DelixHook, "delete_file", refuse)
    with pytest.raises(AirflowException, match=f"could not be deleted on connection '{conn}': {uuid}"):
        DelixCleanupOperator(task_id="clean", delix_conn_id=conn).execute({})
    report = DelixCleanupOperator(task_id="soft", delix_conn_id=conn, fail_on_undeleted=False).execute({})
    assert report["failed"] == [uuid]
