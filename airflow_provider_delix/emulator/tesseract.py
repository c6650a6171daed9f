"""Real OCR through the ``tesseract`` command line, one short-lived process per page.

The CLI rather than a binding: no compiled Python dependency, and a crash or hang in
Tesseract takes down one subprocess, not the server. ``OMP_THREAD_LIMIT=1`` because
Tesseract's OpenMP threads fight each other when several pages run at once; parallelism comes
from running up to ``os.cpu_count()`` processes instead (a semaphore).

Page segmentation follows the engine's purpose (docs/api.md, "Engines and languages"):
``danlin`` is for dense text (book pages, columns) and uses ``--psm 3``, fully automatic layout
analysis, which finds columns and reading order; ``tiho`` is for sparse text (covers, signs)
and uses ``--psm 11``, "find as much text as possible in no particular order", which does not
drop isolated words. A scanned PDF page is read at its image's own pixels, turned as the page
shows it (``pdf.page_scan``); other PDF pages are rendered at 300 dpi, Tesseract's preferred
resolution, and passed as PGM.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading

from airflow_provider_delix.emulator import pdf
from airflow_provider_delix.emulator.config import EmulatorConfig
from airflow_provider_delix.emulator.ocr import PageJob

LANGUAGES = {"fa": "fas", "en": "eng", "ar": "ara", "tr": "tur"}
PSM_BY_ENGINE = {"danlin": 3, "tiho": 11}
RENDER_DPI = 300


class TesseractError(RuntimeError):
    """Tesseract exited with an error, timed out, or is not installed."""


def tesseract_available(binary: str = "tesseract") -> bool:
    """True when the binary runs and has the fas, eng, ara and tur models."""
    if shutil.which(binary) is None:
        return False
    try:
        out = subprocess.run(
            [binary, "--list-langs"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return False
    langs = set((out.stdout + out.stderr).split())
    return set(LANGUAGES.values()) <= langs


class TesseractBackend:
    """The ``tesseract`` OCR backend; ``ocr_image`` is public for accuracy (CER) tests."""

    name = "tesseract"
    parallel = True

    def __init__(
        self, binary: str = "tesseract", max_processes: int | None = None, timeout: float = 300
    ) -> None:
        self.binary = binary
        self.timeout = timeout
        self._slots = threading.BoundedSemaphore(max_processes or os.cpu_count() or 1)
        self._env = {**os.environ, "OMP_THREAD_LIMIT": "1"}

    def ocr_image(self, data: bytes, language: str, *, psm: int = 3, dpi: int | None = None) -> str:
        """OCR one image (PNG, JPEG, PGM... anything Leptonica reads) and return its text.

        ``language`` is a Delix code (``fa``, ``en``, ``ar``, ``tr``) or a Tesseract one
        (``fas``...). Trailing whitespace and the form feed Tesseract appends are removed.
        """
        lang = LANGUAGES.get(language, language)
        cmd = [self.binary, "stdin", "stdout", "-l", lang, "--psm", str(psm)]
        if dpi is not None:
            cmd += ["--dpi", str(dpi)]
        with self._slots:
            try:
                done = subprocess.run(
                    cmd, input=data, capture_output=True, timeout=self.timeout, env=self._env, check=False
                )
            except (OSError, subprocess.SubprocessError) as exc:
                raise TesseractError(f"tesseract did not run: {exc}") from None
        if done.returncode != 0:
            raise TesseractError(done.stderr.decode("utf-8", "replace").strip()[-500:])
        return done.stdout.decode("utf-8", "replace").rstrip()

    def read(self, job: PageJob, engine: str, language: str | None, config: EmulatorConfig) -> str | None:
        psm = PSM_BY_ENGINE.get(engine, 3)
        try:
            if job.kind == "pdf":
                scan = pdf.page_scan(job.data, job.number)
                if scan is not None:  # one image, the whole page: OCR its own pixels, turned as shown
                    return self.ocr_image(scan, language or "fa", psm=psm)
                image = pdf.render_page_pgm(job.data, job.number, RENDER_DPI)
                return self.ocr_image(image, language or "fa", psm=psm, dpi=RENDER_DPI)
            return self.ocr_image(job.data, language or "fa", psm=psm)
        except Exception:  # any failure (Tesseract, PDFium) is a failed page, never a crashed extract
            return None
