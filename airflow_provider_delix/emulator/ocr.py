"""The OCR seam: what an extraction asks of a backend, and the backend chosen at start.

Two backends exist: ``tesseract`` (real OCR, for accuracy tests and demos) and
``groundtruth`` (a deterministic test backend that reads the expected text out of the file).
The ``probe`` engine is not OCR at all: it reads a PDF's text layer, the same way for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from airflow_provider_delix.emulator import pdf
from airflow_provider_delix.emulator.config import EmulatorConfig


@dataclass(frozen=True)
class PageJob:
    """One page to read: the stored file's bytes, its kind (png/jpeg/pdf), hash and page number."""

    data: bytes
    kind: str
    sha256: str
    number: int


class OcrBackend(Protocol):
    name: str
    parallel: bool
    """True when pages are worth reading in parallel threads (slow, subprocess-bound backends)."""

    def read(self, job: PageJob, engine: str, language: str | None, config: EmulatorConfig) -> str | None:
        """The page's text, or None when OCR of the page failed."""
        ...


def read_page(
    backend: OcrBackend, job: PageJob, engine: str, language: str | None, config: EmulatorConfig
) -> str | None:
    """Dispatch ``probe`` to the PDF text layer and everything else to the backend."""
    if engine == "probe":
        try:
            return pdf.text_layer(job.data, job.number)
        except Exception:  # a page PDFium cannot read fails, it never crashes the extraction
            return None
    return backend.read(job, engine, language, config)


def make_backend(name: str) -> OcrBackend:
    if name == "tesseract":
        from airflow_provider_delix.emulator.tesseract import TesseractBackend

        return TesseractBackend()
    if name == "groundtruth":
        from airflow_provider_delix.emulator.groundtruth import GroundTruthBackend

        return GroundTruthBackend()
    raise ValueError(f"unknown OCR backend {name!r}")
