"""Image packing: many scans in one queued PDF, to get past the account's 30-file bound.

Delix counts stored *files*, and an image is one page per file: 30 pages in flight is the
ceiling of every image client. A PDF holds up to 150 pages (8 MB) in one stored file and its
extraction is queued, so ``ImageExtractionOperator(packing="pdf")`` embeds the prepared images
of several sources, each as one page, into a PDF and sends it through the document endpoint.

* **Lossless.** ``img2pdf`` embeds the JPEG bytes as they are and a PNG's compressed pixel
  data without decoding it; nothing is re-encoded. Of a phone's multi-picture JPEG (MPO) only
  the first picture becomes a page: the one Delix reads when the file is sent alone. Each page
  is sized so that the image is 300 dpi (``PAGE_DPI``): a renderer at the usual OCR resolution
  gets the original pixels back.
* **Rows as unpacked.** Each page of a pack is a *member*: one distinct content (a
  :class:`~.planning.ChunkFile` claimed in the content index, duplicates attached), so the
  table gets one row per image with the same resume key as without packing; only
  ``file_uuid``/``extract_uuid`` name the pack.
* **Sized from the budget and the archive.** ``pages``: the archive spread over the budget's
  files (``ceil(images / max_stored_files)``), at least :data:`MIN_PACK_PAGES` (a queued
  request) and at most 150; while the archive is still being counted, 150. ``bytes``: the
  budget's bytes per file (100 MB / 30 = 3.33 MB by default) and at most 8 MB, so every file
  of the budget can hold a pack at once.
* **What cannot be packed is sent as an image.** ``img2pdf`` refuses some valid uploads; those
  members are handed back as plain image files. So is a PNG with transparency (an alpha
  channel or a ``tRNS`` key, even one that hides nothing): img2pdf would decode it and add a
  soft mask, neither lossless nor the page a scan is, and a renderer may paint it otherwise
  (the emulator renders such a page rather than reading its pixels: a tester's opaque-alpha
  scan read worse packed than alone). Alone, the image path sends it as is or flattened.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from airflow_provider_delix.api.models import MAX_PDF_BYTES, MAX_PDF_PAGES, MAX_SYNC_DOCUMENT_PAGES
from airflow_provider_delix.core.planning import ChunkFile
from airflow_provider_delix.core.png_strips import png_chunks

log = logging.getLogger(__name__)

PAGE_DPI = 300
MIN_PACK_PAGES = MAX_SYNC_DOCUMENT_PAGES + 1  # a smaller pack is answered synchronously: no gain
PAGE_OVERHEAD_BYTES = 1_000  # what img2pdf adds per page (page, image and content objects)
PDF_OVERHEAD_BYTES = 2_000  # header, catalogue, cross-reference table


@dataclass(frozen=True, slots=True)
class PackLimits:
    """How big the packs of a run may get."""

    max_stored_files: int
    max_stored_bytes: int

    def pages(self, archive_images: int | None) -> int:
        if archive_images is None:
            return MAX_PDF_PAGES
        spread = math.ceil(archive_images / self.max_stored_files)
        return max(MIN_PACK_PAGES, min(MAX_PDF_PAGES, spread))

    @property
    def bytes(self) -> int:
        return min(MAX_PDF_BYTES, self.max_stored_bytes // self.max_stored_files)


def pack_pdf(images: Sequence[bytes]) -> bytes:
    """The images as the pages of one PDF, embedded losslessly (raises what img2pdf raises).

    Exactly one page per image, because page ``i`` answers image ``i``: ``first_frame_only``
    stops img2pdf from making a page of every picture of a phone's multi-picture JPEG (MPO).
    The first picture is the one Delix reads when the same file is sent alone.
    """
    import img2pdf

    layout = img2pdf.get_fixed_dpi_layout_fun((PAGE_DPI, PAGE_DPI))
    data: bytes = img2pdf.convert(
        list(images), layout_fun=layout, rotation=img2pdf.Rotation.ifvalid, first_frame_only=True
    )
    return data


def png_transparency(image: bytes) -> bool:
    """Whether a PNG has an alpha channel (colour types 4 and 6) or a ``tRNS`` chunk; read from
    the chunk headers, nothing decoded."""
    if not image.startswith(b"\x89PNG\r\n\x1a\n") or len(image) < 26:
        return False
    if image[25] in (4, 6):  # IHDR's colour type: gray or RGB with alpha
        return True
    for tag, _, _ in png_chunks(image):
        if tag == b"tRNS":
            return True
        if tag == b"IDAT":  # tRNS comes before the image data
            return False
    return False


def packable(image: bytes) -> bool:
    """Whether img2pdf embeds this upload (it refuses alpha channels, for one)."""
    try:
        pack_pdf([image])
    except Exception:
        return False
    return True


def pack_file(members: Sequence[ChunkFile], engine: str) -> ChunkFile:
    """One PDF of ``members``, page ``i`` answering member ``i``'s rows."""
    data = pack_pdf([m.data for m in members])
    digest = hashlib.sha256(data).hexdigest()
    return ChunkFile(
        content_sha256=digest,
        filename=f"pack-{digest[:12]}.pdf",
        data=data,
        page_map=tuple((i, m.targets[0]) for i, m in enumerate(members, 1)),
        engine=engine,
        sync=len(members) <= MAX_SYNC_DOCUMENT_PAGES,
        members=tuple(members),
        file_pages=len(members),
    )


class Packer:
    """Collects image files into packs; emits a pack when it is full, and the rest at the end."""

    def __init__(
        self, limits: PackLimits, engine: str, archive_images: Callable[[], int | None] = lambda: None
    ) -> None:
        self.limits = limits
        self.engine = engine
        self._archive_images = archive_images
        self._open: list[ChunkFile] = []
        self._open_bytes = PDF_OVERHEAD_BYTES
        self._target = 0

    def add(self, files: Sequence[ChunkFile]) -> tuple[list[ChunkFile], list[ChunkFile]]:
        """(packs now full, files that must go as plain images)."""
        packs: list[ChunkFile] = []
        plain: list[ChunkFile] = []
        for f in files:
            size = f.size + PAGE_OVERHEAD_BYTES
            if size + PDF_OVERHEAD_BYTES > self.limits.bytes or png_transparency(f.data):
                plain.append(f)  # bigger than a pack may be, or would be masked: just an image
                continue
            if self._open and self._open_bytes + size > self.limits.bytes:
                self._emit(packs, plain)
            if not self._open:
                self._target = self.limits.pages(self._archive_images())
            self._open.append(f)
            self._open_bytes += size
            if len(self._open) >= self._target:
                self._emit(packs, plain)
        return packs, plain

    def flush(self) -> tuple[list[ChunkFile], list[ChunkFile]]:
        packs: list[ChunkFile] = []
        plain: list[ChunkFile] = []
        if self._open:
            self._emit(packs, plain)
        return packs, plain

    def held(self) -> list[ChunkFile]:
        return list(self._open)

    def _emit(self, packs: list[ChunkFile], plain: list[ChunkFile]) -> None:
        members, self._open, self._open_bytes = self._open, [], PDF_OVERHEAD_BYTES
        try:
            packed = pack_file(members, self.engine)
        except Exception:
            # Rare: find the members img2pdf refuses, pack the others.
            refused = {id(m) for m in members if not packable(m.data)}
            log.info("%d image(s) cannot be packed into a PDF; they are sent as images.", len(refused))
            plain.extend(m for m in members if id(m) in refused)
            members = [m for m in members if id(m) not in refused]
            if not members:
                return
            packed = pack_file(members, self.engine)
        if len(members) == 1:
            plain.append(members[0])  # a pack of one is an image with extra steps
        elif packed.size > self.limits.bytes:  # the overhead estimate was short: halve it
            half = len(members) // 2
            self._open = members[:half]
            self._emit(packs, plain)
            self._open = members[half:]
            self._emit(packs, plain)
        else:
            packs.append(packed)
