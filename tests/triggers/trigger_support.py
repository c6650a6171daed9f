"""Helpers of the async hook and trigger tests (imported by name: pytest puts this folder on the path).

No pytest-asyncio: each test drives the coroutine with ``asyncio.run`` (see ``run_trigger``),
which is also how the triggerer runs a trigger, one event loop for its whole life.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pdfs import make_pdf

from airflow_provider_delix.api.models import StoredFile
from airflow_provider_delix.hooks.delix import DelixHook
from airflow_provider_delix.triggers.delix import DelixExtractTrigger

CONN_ID = "delix_trigger_test"
SECRET_KEY = "sk-live-7f3a9c1e-never-in-a-log"
# Retries without waiting: tests prove what is retried, not how long the backoff is.
FAST_RETRIES = {"max_retries": 8, "retry_wait_initial": 0, "retry_wait_max": 0}


def queue_extract(conn_id: str, pages: int = 8) -> str:
    """Upload a PDF of ``pages`` pages and queue its extraction (> 5 pages: async); its uuid."""
    hook = DelixHook(conn_id)
    try:
        (stored,) = hook.upload_files([("doc.pdf", make_pdf([f"page {n}" for n in range(1, pages + 1)]))])
        assert isinstance(stored, StoredFile)
        extract = hook.extract_documents([stored.uuid], "probe")
        assert not extract.is_processed
        return extract.uuid
    finally:
        hook.close()


def run_trigger(trigger: DelixExtractTrigger, timeout: float = 60) -> list[dict[str, Any]]:
    """Every event the trigger yields, as payloads (it must stop by itself after one)."""

    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(asyncio.wait_for(collect(), timeout))
