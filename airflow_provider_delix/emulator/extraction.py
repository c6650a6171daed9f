"""Running extractions: checks against stored state, charging, OCR, the async queue, callbacks.

Decisions where the spec is silent (see also ``docs/emulator.md``):

* Checks after the body is parsed, in order: unknown or expired file uuid -> 404 ``{}``; a PDF
  on ``/image-extraction``, an image on ``/document-extraction``, or the ``probe`` engine on
  ``/image-extraction`` (probe reads PDF text layers, images have none) -> ``WRONG_FILE_TYPE``;
  bad ``page`` -> ``INVALID_FILE_PAGE``; more than 5 pages in forced sync mode ->
  ``EXCEEDING_FILE_PAGE``; ``initial_cost`` above the balance -> ``NO_SUFFICIENT_CREDITS``.
  All of it runs under the account lock, before anything is charged or stored.
* Prices: 200 credits per image, 100 per PDF page, for every engine including probe.
* Sync or async (``document_mode=auto``): sync when the request covers at most 5 pages.
* Latency: ``latency_extract_base`` is spent before the checks; ``latency_extract_answer``
  after the charge, before the answer (a slow server: a client that gives up first has paid,
  and the files stay in use until the answer). A sync extract spends
  ``latency_extract_page`` per page in the request. A queued (async) extract goes through
  :mod:`~airflow_provider_delix.emulator.async_queue`: it waits ``queue_delay`` seconds, then
  for one of the ``async_workers``, which spends ``pages / async_pages_per_second`` on it (or
  ``latency_extract_page`` per page when that speed is 0) before its OCR. It is ``processing``
  the whole time, so a file can be seen "under processing" by a concurrent DELETE.
* ``callback_url`` is called only for asynchronous extracts, once, with
  ``{"uuid": ..., "status": "processed"}``, from a separate thread with a 5 s timeout; any
  failure is counted in the stats and otherwise ignored. It is accepted and ignored on sync ones.
* An internal error while reading an extract's pages (sync or async) finishes it with every
  page failed and refunded, counted in ``internal_errors``: never a charged extract stuck
  ``processing``, never a 500 for a sync request that was applied.
* Extracts are kept until ``POST /_emulator/reset`` (the spec documents no retention).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import urllib.request
import uuid as uuidlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from airflow_provider_delix.api.models import MAX_SYNC_DOCUMENT_PAGES, ErrorCode
from airflow_provider_delix.emulator.apierrors import enum_error, not_found
from airflow_provider_delix.emulator.async_queue import AsyncQueue, async_processing_seconds
from airflow_provider_delix.emulator.clock import Clock
from airflow_provider_delix.emulator.config import IMAGE_PAGE_COST, PDF_PAGE_COST, EmulatorConfig
from airflow_provider_delix.emulator.extraction_request import IMAGE, parse_extraction
from airflow_provider_delix.emulator.ocr import OcrBackend, PageJob, read_page
from airflow_provider_delix.emulator.pages import InvalidPages, select_pages
from airflow_provider_delix.emulator.state import Account, ExtractRecord, PageResult
from airflow_provider_delix.emulator.stats import CallStats

CALLBACK_TIMEOUT = 5.0


class Extractor:
    """Creates extracts, runs their OCR (inline or on worker threads) and renders them as JSON."""

    def __init__(
        self,
        account: Callable[[], Account],
        backend: OcrBackend,
        config: Callable[[], EmulatorConfig],
        clock: Clock,
        stats: CallStats,
    ) -> None:
        self._account = account
        self._backend = backend
        self._config = config
        self._clock = clock
        self._stats = stats
        self._pool = ThreadPoolExecutor(max_workers=max(2, _cpu_count()), thread_name_prefix="delix-ocr")
        self._rng = random.Random(config().seed + 1)  # noqa: S311 (reproducible test faults)
        self._rng_lock = threading.Lock()
        self._closed = threading.Event()
        self.queue = AsyncQueue(config, self._work)

    def reseed(self, seed: int) -> None:
        with self._rng_lock:
            self._rng = random.Random(seed + 1)  # noqa: S311

    # -- creation --------------------------------------------------------------------------
    def create(self, kind: str, body: Any) -> ExtractRecord:
        """Check, charge and run (sync) or queue (async) one extraction request."""
        config = self._config()
        request = parse_extraction(body, kind)
        time.sleep(config.latency_extract_base)
        account = self._account()
        with account.lock:
            now = self._clock.now()
            blobs = []
            for item in request.files:
                blob = account.get_file(item.uuid, now)
                if blob is None:
                    raise not_found()
                blobs.append(blob)
            for blob in blobs:
                if (kind == IMAGE) == (blob.kind == "pdf"):
                    raise enum_error(ErrorCode.WRONG_FILE_TYPE, f"file {blob.uuid} is a {blob.kind}")
            if kind == IMAGE and request.engine == "probe":
                raise enum_error(ErrorCode.WRONG_FILE_TYPE, "the probe engine reads PDFs only")
            selected: list[tuple[Any, list[int]]] = []
            for item, blob in zip(request.files, blobs, strict=True):
                try:
                    pages = [1] if kind == IMAGE else select_pages(item.page, blob.page_count)
                except InvalidPages as exc:
                    raise enum_error(ErrorCode.INVALID_FILE_PAGE, f"file {blob.uuid}: {exc}") from None
                selected.append((blob, pages))
            total = sum(len(p) for _, p in selected)
            is_async = kind != IMAGE and (
                config.document_mode == "async"
                or (config.document_mode == "auto" and total > MAX_SYNC_DOCUMENT_PAGES)
            )
            if kind != IMAGE and config.document_mode == "sync" and total > MAX_SYNC_DOCUMENT_PAGES:
                raise enum_error(ErrorCode.EXCEEDING_FILE_PAGE, f"{total} pages, at most 5 in sync mode")
            page_cost = IMAGE_PAGE_COST if kind == IMAGE else PDF_PAGE_COST
            record = ExtractRecord(
                uuid=str(uuidlib.uuid4()),
                file_type="images" if kind == IMAGE else "documents",
                engine=request.engine,
                language=request.language,
                files=selected,
                initial_cost=page_cost * total,
                page_cost=page_cost,
                is_async=is_async,
                callback_url=request.callback_url,
            )
            account.charge(record)
            account.add_extract(record)
        # A slow server: charged, then the answer takes this long (the client may give up first).
        time.sleep(config.latency_extract_answer)
        if is_async:
            self.queue.put(account, record)
        else:
            time.sleep(config.latency_extract_page * record.total_processing_pages)
            self._process_or_fail(account, record)
        return record

    # -- processing ------------------------------------------------------------------------
    def _fails(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._rng_lock:
            return self._rng.random() < rate

    def _process(self, account: Account, record: ExtractRecord) -> None:
        """OCR every page of the extract and finish it (the simulated latency is already spent)."""
        config = self._config()
        owners = [blob.uuid for blob, pages in record.files for _ in pages]
        jobs = [
            PageJob(data=blob.data, kind=blob.kind, sha256=blob.sha256, number=n)
            for blob, pages in record.files
            for n in pages
        ]

        def run(job: PageJob) -> str | None:
            if self._fails(config.fail_page_rate):
                return None
            return read_page(self._backend, job, record.engine, record.language, config)

        texts = (
            list(self._pool.map(run, jobs)) if self._backend.parallel and len(jobs) > 1 else map(run, jobs)
        )
        results: dict[str, list[PageResult]] = {blob.uuid: [] for blob, _ in record.files}
        for owner, job, text in zip(owners, jobs, texts, strict=True):
            results[owner].append(PageResult(number=job.number, text=text))
        self._finish(account, record, results)

    def _process_or_fail(self, account: Account, record: ExtractRecord) -> None:
        """``_process``, where an internal error fails (and refunds) every page instead of escaping.

        The extract is charged and stored before its OCR: an exception escaping from here would
        leave it ``processing`` for ever (its files never deletable, ``FILE_UNDER_PROCESSING``)
        and, on the sync path, answer 500 for a request that was applied. The extract finishes
        with every page failed, as a real server's failed OCR would; ``internal_errors`` counts
        the bug. An extract already finished when the error came is not finished (refunded) twice.
        """
        try:
            self._process(account, record)
        except Exception:
            self._stats.count_error()
            if record.status != "processed":
                failed = {blob.uuid: [PageResult(n, None) for n in pages] for blob, pages in record.files}
                self._finish(account, record, failed)

    def _finish(self, account: Account, record: ExtractRecord, results: dict[str, list[PageResult]]) -> None:
        if record.is_async:
            record.finished_at = time.monotonic()
        account.finish_extract(record, results)
        if self._account() is account:  # an extract of an account forgotten by a reset counts nowhere
            self._stats.count_pages(record.total_processing_pages, record.failed_pages)

    def _work(self, account: Account, record: ExtractRecord) -> None:
        """One queued extract on a worker of the async queue: processing time, OCR, callback."""
        seconds = async_processing_seconds(self._config(), record.total_processing_pages)
        if self._closed.wait(seconds):
            return  # the emulator is stopping
        self._process_or_fail(account, record)  # never lose the worker to an internal error
        if record.callback_url and self._account() is account:
            threading.Thread(target=self._callback, args=(record,), daemon=True).start()

    def _callback(self, record: ExtractRecord) -> None:
        assert record.callback_url is not None
        body = json.dumps({"uuid": record.uuid, "status": record.status}).encode()
        request = urllib.request.Request(  # noqa: S310 (http(s) only, checked when the extract was made)
            record.callback_url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=CALLBACK_TIMEOUT) as answer:  # noqa: S310
                answer.read()
            self._stats.count_callback(ok=True)
        except Exception:  # best effort: a dead listener must never hurt the emulator
            self._stats.count_callback(ok=False)

    def close(self) -> None:
        self._closed.set()
        self.queue.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- rendering -------------------------------------------------------------------------
    def find(self, extract_uuid: str) -> ExtractRecord:
        record = self._account().extracts.get(extract_uuid)
        if record is None:
            raise not_found()
        return record


def _cpu_count() -> int:
    return os.cpu_count() or 1


def extract_json(record: ExtractRecord, base_url: str) -> dict[str, Any]:
    """The Extract resource: queued fields only while processing; pages inline (sync) or a URL."""
    data: dict[str, Any] = {
        "uuid": record.uuid,
        "status": record.status,
        "file_type": record.file_type,
        "engine": record.engine,
        "language": record.language,
        "total_files": len(record.files),
        "total_file_pages": record.total_file_pages,
        "total_processing_pages": record.total_processing_pages,
        "initial_cost": record.initial_cost,
    }
    if record.status != "processed" or record.results is None:
        return data
    data["failed_pages"] = record.failed_pages
    data["returned_credits"] = record.returned_credits
    files = []
    for blob, _ in record.files:
        if record.is_async:
            pages: Any = f"{base_url}/extracts/{record.uuid}/files/{blob.uuid}/contents"
        else:
            pages = [p.as_api() for p in record.results[blob.uuid]]
        files.append({"uuid": blob.uuid, "pages": pages})
    data["files"] = files
    return data


def contents_page(
    record: ExtractRecord, file_uuid: str, page: int, per_page: int, base_url: str
) -> dict[str, Any]:
    """Laravel's length-aware paginator over one file's pages of a finished async extract."""
    if not record.is_async or record.status != "processed" or record.results is None:
        raise not_found()
    pages = record.results.get(file_uuid)
    if pages is None:
        raise not_found()
    path = f"{base_url}/extracts/{record.uuid}/files/{file_uuid}/contents"
    total = len(pages)
    last_page = max(1, -(-total // per_page))
    chunk = pages[(page - 1) * per_page : page * per_page]
    first_index = (page - 1) * per_page + 1
    return {
        "data": [p.as_api() for p in chunk],
        "links": {
            "first": f"{path}?page=1",
            "last": f"{path}?page={last_page}",
            "prev": f"{path}?page={page - 1}" if page > 1 else None,
            "next": f"{path}?page={page + 1}" if page < last_page else None,
        },
        "meta": {
            "current_page": page,
            "from": first_index if chunk else None,
            "last_page": last_page,
            "path": path,
            "per_page": per_page,
            "to": first_index + len(chunk) - 1 if chunk else None,
            "total": total,
        },
    }
