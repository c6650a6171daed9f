"""``ImageExtractionOperator``: an archive of scans in, one Parquet row per page out.

The operator only orchestrates (see :mod:`._extraction`): it validates its arguments when the
DAG is parsed and hands the run to the core (chunking, the storage budget, validation,
streaming, resume). Texts never go to XCom: the return value is a small manifest, and the
table is declared as the task's outlet so downstream DAGs can be scheduled on it. PDFs in the
archive get ``invalid`` rows (one per page) that name :class:`DocumentExtractionOperator`.
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
    output_uri,
)

__all__ = ["ImageExtractionOperator", "output_uri"]


class ImageExtractionOperator(BaseExtractionOperator):
    """
    OCR every page of an archive of scans with Delix into a Parquet table.

    :param images: templated. A list of paths/URIs, a glob (``"scans/**/*.png"``), or a folder
        or object-storage prefix (``s3://bucket/scans/``), read through fsspec; or Airflow
        ``ObjectStoragePath`` objects, read with their filesystem and connection.
    :param output_path: templated. Where the table goes (local path, URI or ObjectStoragePath);
        ``pandas.read_parquet(output_path)`` reads it whole. The resume state lives beside it,
        so a re-run with the same path and settings never pays twice for a page.
    :param delix_conn_id: the ``delix`` connection.
    :param engine: ``danlin`` (dense text) or ``tiho`` (sparse text).
    :param language: ``fa``, ``en``, ``ar`` or ``tr``: the main language of the scans.
    :param max_failed_ratio: share of pages not processed (failed, rejected, invalid) above
        which the task fails, after the table is written; ``None`` never fails for it.
    :param max_concurrency: chunks (of up to 5 files) in flight; default fills the budget.
    :param max_stored_files: files this task may hold on the account at once (1 to 30); lower
        it when several tasks share one key (see "Scaling out" in the docs).
    :param max_stored_bytes: bytes this task may hold on the account at once (up to 100 MB).
    :param storage_conn_id: templated. An Airflow connection (``aws`` for ``s3://``) that gives
        the credentials for string URIs in ``images`` and ``output_path``, as
        ``ObjectStoragePath(uri, conn_id=...)`` would; ``ObjectStoragePath`` objects may name
        their own (``s3://conn_id@bucket/...``). Not together with ``storage_options``.
    :param storage_options: templated (values rendered recursively). fsspec options for string
        URIs in ``images`` and ``output_path``; prefer ``storage_conn_id`` for credentials.
    :param storage_wait_timeout: seconds to wait, with backoff, while someone else fills the
        shared account, before failing.
    :param progress_interval: at most one progress log line per this many seconds.
    :param mixed_archive: the folders and globs of ``images`` also hold PDFs, which a
        :class:`DocumentExtractionOperator` reads into the same table: leave listed files named
        ``*.pdf`` to it (files named explicitly are always taken). Default False: a PDF gets a
        ``pdf_not_supported`` row per page.
    :param packing: ``"none"`` (default): one stored file per image. ``"pdf"``: pack the
        images losslessly into PDFs of up to 150 pages and send them through Delix's queued
        document extraction, past the account's 30-images-in-flight bound (needs the
        ``packing`` extra, ``img2pdf``). Rows stay one per image; see "Image packing" in the
        docs for what it relies on.
    :param retry_packed_failures: with ``packing="pdf"``: send a page that failed inside a pack
        again on its own, as an image (paid again at the image price). Default False.
    :param deferrable: with ``packing="pdf"``: wait for queued packs in the triggerer instead of a
        worker slot (default: Airflow's ``[operators] default_deferrable`` when packing, else
        False: image extractions are answered at once and never wait in Delix's queue).
    :param poll_interval: with ``packing="pdf"``: seconds between polls of a queued pack.
    :param extract_timeout: with ``packing="pdf"``: seconds to wait for one queued pack
        before leaving its pages for a re-run.
    """

    template_fields: Sequence[str] = (
        "images",
        "output_path",
        "delix_conn_id",
        "storage_conn_id",
        "storage_options",
    )
    inputs_field = "images"

    def __init__(
        self,
        *,
        images: Any,
        output_path: str,
        delix_conn_id: str = DEFAULT_CONN_ID,
        engine: str = "danlin",
        language: str = "fa",
        max_failed_ratio: float | None = 0.1,
        max_concurrency: int | None = None,
        max_stored_files: int = MAX_STORED_FILES,
        max_stored_bytes: int = MAX_STORED_BYTES,
        storage_conn_id: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        storage_wait_timeout: float = 600.0,
        progress_interval: float = 30.0,
        mixed_archive: bool = False,
        packing: str = "none",
        retry_packed_failures: bool = False,
        deferrable: bool | None = None,
        poll_interval: float = 5.0,
        extract_timeout: float = 6 * 3600.0,
        **kwargs: Any,
    ) -> None:
        # Bad arguments fail when the DAG is parsed, not after the first upload.
        if deferrable is None:  # Airflow's default applies where deferring means something
            deferrable = packing != "none" and not retry_packed_failures and default_deferrable()
        options = RunOptions(
            kind="images",
            engine=str(engine),
            language=str(language),
            max_failed_ratio=max_failed_ratio,
            max_concurrency=max_concurrency,
            max_stored_files=max_stored_files,
            max_stored_bytes=max_stored_bytes,
            storage_wait_timeout=storage_wait_timeout,
            progress_interval=progress_interval,
            mixed_archive=bool(mixed_archive),
            packing=packing,  # type: ignore[arg-type]  # validated by RunOptions
            retry_packed_failures=bool(retry_packed_failures),
            deferrable=bool(deferrable),
            poll_interval=poll_interval,
            extract_timeout=extract_timeout,
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
        self.images = images
