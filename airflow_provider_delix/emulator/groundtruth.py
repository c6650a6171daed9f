"""``groundtruth``: a deterministic TEST backend. It does no OCR at all.

It exists so that tests and benchmarks can check, byte for byte, that the text a client stores
is the text of the page it uploaded, and run at thousands of pages a second. The expected text
travels inside the file itself:

* PNG: a text chunk (``iTXt``, ``tEXt`` or ``zTXt``) with keyword ``delix:text`` holds the
  page's text as UTF-8. A chunk ``delix:fail`` with value ``1`` makes the page fail.
* JPEG: a comment (COM) segment ``delix:text=<UTF-8 text>``; ``delix:fail=1`` fails the page.
* PDF: the text layer of the page (read with PDFium); a page whose whole text layer is
  ``delix:fail`` fails. A page without a text layer that is one embedded JPEG covering the
  page as shown (a packed scan, see ``core/packing.py``; ``pdf.page_jpeg``) is read exactly as
  that JPEG would be on its own.
* Anything without embedded text gets text derived from SHA-256 of the file bytes and the
  page number: always the same for the same page, ``fallback_text_bytes`` UTF-8 bytes long
  (Persian letters and spaces, padded with ``.`` to the exact length).
"""

from __future__ import annotations

import hashlib
import struct
import zlib

from airflow_provider_delix.emulator import pdf
from airflow_provider_delix.emulator.config import EmulatorConfig
from airflow_provider_delix.emulator.filetypes import PNG_MAGIC
from airflow_provider_delix.emulator.ocr import PageJob

TEXT_KEY = "delix:text"
FAIL_KEY = "delix:fail"
_ALPHABET = "ابپتثجچحخدذرزژسشصضطظعغفقکگلمنوهی"


def png_text_chunks(data: bytes) -> dict[str, str]:
    """Keyword -> text of every tEXt/zTXt/iTXt chunk (text decoded as UTF-8, Latin-1 fallback)."""
    found: dict[str, str] = {}
    pos = len(PNG_MAGIC)
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        ctype = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        try:
            if ctype == b"tEXt":
                key, _, raw = body.partition(b"\0")
            elif ctype == b"zTXt":
                key, _, rest = body.partition(b"\0")
                raw = zlib.decompress(rest[1:])
            elif ctype == b"iTXt":
                key, _, rest = body.partition(b"\0")
                compressed = rest[0] == 1
                _lang, _, rest = rest[2:].partition(b"\0")
                _translated, _, raw = rest.partition(b"\0")
                raw = zlib.decompress(raw) if compressed else raw
            elif ctype == b"IEND":
                break
            else:
                continue
        except (zlib.error, IndexError):
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        found[key.decode("latin-1")] = text
    return found


def jpeg_comments(data: bytes) -> list[str]:
    """The COM segments of a JPEG, read up to the start of scan, as UTF-8."""
    comments: list[str] = []
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker in (0xDA, 0xD9):  # start of scan / end of image: no more headers
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker == 0xFE:
            comments.append(data[pos + 4 : pos + 2 + length].decode("utf-8", "replace"))
        pos += 2 + length
    return comments


def fallback_text(sha256: str, page: int, size: int) -> str:
    """Deterministic pseudo-Persian text of exactly ``size`` UTF-8 bytes for one page."""
    out: list[str] = []
    used = 0
    counter = 0
    while used < size:
        digest = hashlib.sha256(f"{sha256}:{page}:{counter}".encode()).digest()
        counter += 1
        for byte in digest:
            char = " " if byte % 6 == 0 else _ALPHABET[byte % len(_ALPHABET)]
            width = len(char.encode())
            if used + width > size:
                break
            out.append(char)
            used += width
        if size - used == 1:
            out.append(".")
            used += 1
    return "".join(out)


class GroundTruthBackend:
    """Reads the expected text embedded in the file (see the module docstring). Test use only."""

    name = "groundtruth"
    parallel = False

    def embedded(self, job: PageJob) -> tuple[str | None, bool]:
        """(embedded text or None, page must fail)."""
        if job.kind == "png":
            chunks = png_text_chunks(job.data)
            return chunks.get(TEXT_KEY), chunks.get(FAIL_KEY, "").strip() == "1"
        if job.kind == "jpeg":
            text: str | None = None
            fail = False
            for comment in jpeg_comments(job.data):
                if comment.startswith(TEXT_KEY + "="):
                    text = comment[len(TEXT_KEY) + 1 :]
                elif comment.strip() == FAIL_KEY + "=1":
                    fail = True
            return text, fail
        layer = pdf.text_layer(job.data, job.number)
        if layer.strip() == FAIL_KEY:
            return None, True
        return (layer if layer.strip() else None), False

    def read(self, job: PageJob, engine: str, language: str | None, config: EmulatorConfig) -> str | None:
        # Every PDFium call is inside the ``try``: a page it cannot load (a page tree whose
        # /Count promises more pages than it has) must fail that page, refunded, as it would with
        # real OCR; an exception escaping here would crash the whole extraction after its charge.
        try:
            if job.kind == "pdf" and not pdf.text_layer(job.data, job.number).strip():
                jpeg = pdf.page_jpeg(job.data, job.number)
                if jpeg is not None:  # a packed scan: read it as the JPEG it embeds
                    digest = hashlib.sha256(jpeg).hexdigest()
                    return self.read(PageJob(jpeg, "jpeg", digest, 1), engine, language, config)
            text, fail = self.embedded(job)
        except Exception:  # an unreadable page fails, as it would with real OCR
            return None
        if fail:
            return None
        if text is None:
            return fallback_text(job.sha256, job.number, config.fallback_text_bytes)
        return text
