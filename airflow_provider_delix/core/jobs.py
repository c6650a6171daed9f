"""The extraction *job* seam: what differs between images and documents, and nothing else.

One pipeline (planner, storage budget, store, ledger, resume, table, manifest) runs every
kind of work; a job only says how an input becomes uploadable files (``prepare``), which
endpoint extracts them (``submit``) and which engine a row records. Images: one page per
stored file, always answered synchronously. Documents: a PDF (or a part of a long one) per
stored file, many pages, answered synchronously or queued (see :mod:`.prepare_pdf`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from airflow_provider_delix.api.models import Engine, Extract
from airflow_provider_delix.core.client import DelixClient
from airflow_provider_delix.core.inputs import InputRef, is_pdf_name
from airflow_provider_delix.core.options import JobKind, RunOptions
from airflow_provider_delix.core.planning import ChunkFile, SourceLike
from airflow_provider_delix.core.resume import ResumeIndex


class ExtractionJob(Protocol):
    """prepare -> submit; the pipeline does the rest (collect, rows, deletes) the same for all."""

    @property
    def kind(self) -> JobKind: ...

    def prepare(self, ref: InputRef, resume: ResumeIndex) -> SourceLike:
        """Validate and make upload-ready; never raises for bad content (it becomes invalid rows)."""
        ...

    def submit(self, client: DelixClient, files: Sequence[tuple[str, ChunkFile]]) -> Extract:
        """One extraction request for stored files ``(uuid, file)`` of one chunk."""
        ...

    def row_engine(self, file: ChunkFile) -> str:
        """The engine a row of this file records (the one its request used)."""
        ...

    def takes(self, path: str) -> bool:
        """In a mixed archive (``mixed_archive=True``): is this listed file this job's to do?

        Decided by name, so each file of a folder that both operators read is done by exactly
        one of them: names ending ``.pdf`` by the document job, every other name by the image
        job (which gives a clear row to whatever it cannot read, PDFs in disguise included).
        """
        ...


class ImageJob:
    """Scans as images: PNG/JPEG as they are, other formats converted page by page.

    With ``packing="pdf"`` the planner packs them into PDFs (:mod:`.packing`), which go to the
    document endpoint; their rows are still one per image.
    """

    kind: JobKind = "images"

    def __init__(self, options: RunOptions) -> None:
        self.options = options

    def prepare(self, ref: InputRef, resume: ResumeIndex) -> SourceLike:
        from airflow_provider_delix.core.prepare import prepare_source

        return prepare_source(ref, skip=resume.done)

    def submit(self, client: DelixClient, files: Sequence[tuple[str, ChunkFile]]) -> Extract:
        if files[0][1].members:  # packs of images (packing="pdf") are PDFs to Delix
            return client.extract_documents(
                [(uuid, None) for uuid, _ in files], self.options.engine, self.options.language
            )
        return client.extract_images([uuid for uuid, _ in files], self.options.engine, self.options.language)

    def row_engine(self, file: ChunkFile) -> str:
        return self.options.engine

    def takes(self, path: str) -> bool:
        return not is_pdf_name(path)


class DocumentJob:
    """PDFs: validated, split past 150 pages / 8 MB, probe or OCR per part (``engine="auto"``)."""

    kind: JobKind = "documents"

    def __init__(self, options: RunOptions) -> None:
        self.options = options

    def prepare(self, ref: InputRef, resume: ResumeIndex) -> SourceLike:
        from airflow_provider_delix.core.prepare_pdf import prepare_document

        return prepare_document(ref, self.options, skip=resume.done)

    def submit(self, client: DelixClient, files: Sequence[tuple[str, ChunkFile]]) -> Extract:
        engine = self.row_engine(files[0][1])
        language = None if engine == Engine.PROBE.value else self.options.language
        return client.extract_documents([(uuid, f.selection) for uuid, f in files], engine, language)

    def takes(self, path: str) -> bool:
        return is_pdf_name(path)

    def row_engine(self, file: ChunkFile) -> str:
        return file.engine or self.options.engine


def job_for(options: RunOptions) -> ExtractionJob:
    return ImageJob(options) if options.kind == "images" else DocumentJob(options)
