"""``DocumentExtractionOperator``: an archive of PDFs in, one Parquet row per original page out.

The same pipeline as :class:`ImageExtractionOperator` (planner, storage budget, store, ledger,
resume, table, manifest); only the job differs: PDFs are validated (magic bytes, encryption,
page selection), split past 150 pages / 8 MB and reassembled by page number, small ones (<= 5
pages in a request) are answered synchronously, larger ones are queued and polled -- or, with
``deferrable=True``, waited for by the triggerer while no worker slot is held.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_delix.api.models import MAX_STORED_BYTES, MAX_STORED_FILES
from airflow_provider_delix.core.options import RunOptions
from airflow_provider_delix.operators._extraction import (
    DEFAULT_CONN_ID,
    BaseExtractionOperator,
    default_deferrable,
)


class DocumentExtractionOperator(BaseExtractionOperator):
    """
    Extract the text of every page of an archive of PDFs with Delix into a Parquet table.

    :param documents: templated. A list of paths/URIs, a glob, or a folder or object-storage
        prefix, read through fsspec, or ObjectStoragePath objects (as ``images`` of the image
        operator).
    :param output_path: templated. The table (same schema as the image operator's; both may
        write one table). ``page_number`` is the page in the original document, also when a
        long document was split into parts.
    :param delix_conn_id: the ``delix`` connection.
    :param engine: ``danlin`` (dense text), ``tiho`` (sparse text), ``probe`` (read the PDF's
        text layer, no OCR) or ``auto``: probe for pages that carry a text layer, danlin for
        scans. Rows record the engine actually used.
    :param language: ``fa``, ``en``, ``ar`` or ``tr``: the main language of the documents.
    :param pages: templated. A page selection applied to every document, ``"1-5"`` or
        ``"1,4,15"``; None means every page. Pages past a document's end get invalid rows.
    :param deferrable: wait for queued extracts in the triggerer instead of a worker slot
        (default: Airflow's ``[operators] default_deferrable``).
    :param poll_interval: seconds between polls of a queued extract (the vendor suggests ~60).
    :param extract_timeout: give up waiting on a queued extract after this many seconds (it
        stays on record; a re-run collects it without paying again).
    :param max_failed_ratio: as for the image operator.
    :param max_concurrency: requests (of up to 5 files) in flight; default fills the budget.
    :param max_stored_files: files this task may hold on the account at once (1 to 30).
    :param max_stored_bytes: bytes this task may hold on the account at once (up to 100 MB).
    :param storage_conn_id: templated. The Airflow connection for string URIs in ``documents``
        and ``output_path`` (as for the image operator; ObjectStoragePath objects carry theirs).
    :param storage_options: templated. fsspec options for string URIs; not with a connection.
    :param storage_wait_timeout: seconds to wait while someone else fills the shared account.
    :param progress_interval: at most one progress log line per this many seconds.
    :param mixed_archive: the folders and globs of ``documents`` also hold images, which an
        :class:`ImageExtractionOperator` reads into the same table: take only listed files named
        ``*.pdf`` (files named explicitly are always taken). Default False: every listed file is
        taken, and one that is not a PDF gets a ``not_a_pdf`` row.
    """

    template_fields: Sequence[str] = (
        "documents",
        "output_path",
        "delix_conn_id",
        "pages",
        "storage_conn_id",
        "storage_options",
    )
    inputs_field = "documents"

    def __init__(
        self,
        *,
        documents: Any,
        output_path: str,
        delix_conn_id: str = DEFAULT_CONN_ID,
        engine: str = "auto",
        language: str = "fa",
        pages: str | None = None,
        deferrable: bool | None = None,
        poll_interval: float = 60.0,
        extract_timeout: float = 24 * 3600.0,
        max_failed_ratio: float | None = 0.1,
        max_concurrency: int | None = None,
        max_stored_files: int = MAX_STORED_FILES,
        max_stored_bytes: int = MAX_STORED_BYTES,
        storage_conn_id: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        storage_wait_timeout: float = 600.0,
        progress_interval: float = 30.0,
        mixed_archive: bool = False,
        **kwargs: Any,
    ) -> None:
        templated_pages = isinstance(pages, str) and "{{" in pages
        options = RunOptions(
            kind="documents",
            engine=str(engine),
            language=str(language),
            pages=None if templated_pages else pages,
            deferrable=default_deferrable() if deferrable is None else bool(deferrable),
            poll_interval=poll_interval,
            extract_timeout=extract_timeout,
            max_failed_ratio=max_failed_ratio,
            max_concurrency=max_concurrency,
            max_stored_files=max_stored_files,
            max_stored_bytes=max_stored_bytes,
            storage_wait_timeout=storage_wait_timeout,
            progress_interval=progress_interval,
            mixed_archive=bool(mixed_archive),
            storage_options=dict(storage_options or {}),
        )
        super().__init__(
            output_path=output_path,
            delix_conn_id=delix_conn_id,
            options=options,
            storage_conn_id=storage_conn_id,
            storage_options=storage_options,
            **kwargs,
        )
        self.documents = documents
        self.pages = pages

    def _run_options(self) -> RunOptions:
        import dataclasses

        options = super()._run_options()
        if self.pages == options.pages:
            return options
        return dataclasses.replace(options, pages=self.pages or None)  # rendered template: checked now
