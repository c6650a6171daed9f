"""Turn one PDF into upload-ready parts, or into invalid rows that say why not.

Validation before any call, in the order a user would want to hear it: empty, not a PDF
(by magic bytes, never by name), damaged beyond what pypdf repairs, encrypted with a password
we do not have, pages the selection names past the end. Nothing is refused for being long:
a document over the API's 150 pages or 8 MB is split into parts that fit (pypdf), each page
keeping its number in the original, so the table reassembles it.

A document that fits is uploaded as it is (its original bytes) and the pages still to do are
asked for with the API's page selector; a split part holds only pages still to do. With
``engine="auto"`` every page is looked at once: pages with a text layer go to ``probe``
(cheap, exact), scans to ``danlin`` (OCR) -- two requests on the same stored bytes when a
document mixes both. Pages that already have a row are skipped before anything is written.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from airflow_provider_delix.api.models import MAX_PDF_BYTES, MAX_PDF_PAGES, Engine
from airflow_provider_delix.core.codes import Reason
from airflow_provider_delix.core.inputs import InputRef
from airflow_provider_delix.core.options import AUTO_ENGINE, RunOptions, page_selector
from airflow_provider_delix.core.prepare import PreparedPage, read_source, resumed_page
from airflow_provider_delix.core.validation import (
    InvalidInputError,
    describe_non_image,
    detect_kind,
    short_error,
)

log = logging.getLogger(__name__)

SkipCheck = Callable[[str, str, int], bool]
MIN_TEXT_LAYER_CHARS = 16  # below this a page's text layer is noise (a page number, a stamp)


@dataclass(frozen=True, slots=True)
class PreparedPart:
    """One uploadable PDF: the original, or a part of a split one."""

    data: bytes
    filename: str
    page_map: tuple[tuple[int, int], ...]  # (page in this file, page in the original)
    selection: str | None  # the API's page selector; None = every page of this file
    engine: str
    normalization: str | None  # "split: part k of n" for parts, else None


@dataclass(frozen=True, slots=True)
class PreparedDocument:
    """A document: invalid and resumed pages in ``pages``, the work in ``parts``."""

    ref: InputRef
    sha256: str
    pages: tuple[PreparedPage, ...]
    parts: tuple[PreparedPart, ...]


def _invalid(sha256: str, numbers: Sequence[int], reason: Reason, message: str) -> tuple[PreparedPage, ...]:
    name = sha256[:12] or "unreadable"
    return tuple(PreparedPage(n, None, f"{name}-p{n}.pdf", None, str(reason), message) for n in numbers)


def _has_text(page: object) -> bool:
    try:
        text = page.extract_text()  # type: ignore[attr-defined]
    except Exception:  # a page whose text layer cannot be read is treated as a scan
        return False
    return len("".join(str(text).split())) >= MIN_TEXT_LAYER_CHARS


def prepare_document(
    ref: InputRef, options: RunOptions, *, skip: SkipCheck | None = None
) -> PreparedDocument:
    """Validate, select, split; never raises for content (bad content becomes invalid pages)."""
    sha256 = ""
    try:
        data = read_source(ref)
        sha256 = hashlib.sha256(data).hexdigest()
        return _prepare(ref, data, sha256, options, skip)
    except InvalidInputError as exc:
        return PreparedDocument(ref, sha256, _invalid(sha256, [1], exc.reason, exc.message), ())


def _prepare(
    ref: InputRef, data: bytes, sha256: str, options: RunOptions, skip: SkipCheck | None
) -> PreparedDocument:
    import pypdf
    from pypdf.errors import DependencyError, FileNotDecryptedError, PyPdfError

    if not data:
        raise InvalidInputError(Reason.EMPTY_FILE, "the file is empty (0 bytes)")
    kind = detect_kind(data)
    if kind != "pdf":
        what = f"a {kind.upper()} image (use ImageExtractionOperator)" if kind else describe_non_image(data)
        raise InvalidInputError(Reason.NOT_A_PDF, f"not a PDF: {what}")
    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        encrypted = reader.is_encrypted
        locked = encrypted and not reader.decrypt("")
        # A locked page tree cannot be walked: its /Count is read from the bytes (0: unknown).
        count = _page_count(reader, data) if locked else len(reader.pages)
    except FileNotDecryptedError as exc:
        raise InvalidInputError(Reason.ENCRYPTED_PDF, short_error(exc)) from None
    except DependencyError as exc:  # AES: pypdf needs the cryptography package to decrypt it
        raise InvalidInputError(
            Reason.ENCRYPTED_PDF, f"the PDF is encrypted and cannot be decrypted here: {short_error(exc)}"
        ) from None
    except (
        PyPdfError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        IndexError,
        RecursionError,
        NotImplementedError,
    ) as exc:
        raise InvalidInputError(Reason.CORRUPT_PDF, f"the PDF cannot be read: {short_error(exc)}") from None
    if count == 0 and not locked:
        raise InvalidInputError(Reason.CORRUPT_PDF, "the PDF has no pages")
    # The selection applies to a locked document too: a row per selected page, not per page it has.
    wanted = options.page_numbers or tuple(range(1, count + 1)) or (1,)
    past = [n for n in wanted if count and n > count]
    invalid = _invalid(
        sha256,
        past,
        Reason.PAGE_NOT_IN_DOCUMENT,
        f"the document has {count} page(s); pages={options.pages!r}",
    )
    if locked:
        message = "the PDF is encrypted with a password; decrypt it before OCR"
        inside = [n for n in wanted if not count or n <= count]
        return PreparedDocument(
            ref, sha256, (*invalid, *_invalid(sha256, inside, Reason.ENCRYPTED_PDF, message)), ()
        )
    resumed = tuple(
        resumed_page(sha256, n) for n in wanted if n <= count and skip and skip(sha256, ref.source, n)
    )
    done = {p.page_number for p in resumed}
    todo = [n for n in wanted if n <= count and n not in done]
    parts: list[PreparedPart] = []
    bad: list[PreparedPage] = []
    try:
        _plan_parts(
            reader,
            data=data,
            sha256=sha256,
            count=count,
            todo=todo,
            encrypted=encrypted,
            engine_setting=options.engine,
            parts=parts,
            bad=bad,
        )
    except Exception as exc:  # pypdf opened the document but fails walking its pages (RecursionError...)
        message = f"the PDF's pages cannot be read: {short_error(exc)}"
        parts, bad = [], list(_invalid(sha256, todo, Reason.CORRUPT_PDF, message))
    return PreparedDocument(ref, sha256, (*invalid, *bad, *resumed), tuple(parts))


def _plan_parts(
    reader: object,
    *,
    data: bytes,
    sha256: str,
    count: int,
    todo: list[int],
    encrypted: bool,
    engine_setting: str,
    parts: list[PreparedPart],
    bad: list[PreparedPage],
) -> None:
    if todo:
        by_engine = _engines(reader, todo, engine_setting)
        fits = count <= MAX_PDF_PAGES and len(data) <= MAX_PDF_BYTES and not encrypted
        for engine, numbers in by_engine.items():
            if fits:
                select = None if len(numbers) == count else page_selector(numbers)
                parts.append(
                    PreparedPart(
                        data, f"{sha256[:12]}.pdf", tuple((n, n) for n in numbers), select, engine, None
                    )
                )
            else:
                made, too_big, unwritable = _split(
                    reader, numbers, len(data) / count, sha256=sha256, engine=engine, decrypted=encrypted
                )
                parts.extend(made)
                bad.extend(
                    _invalid(
                        sha256, too_big, Reason.TOO_LARGE, f"a single page is over {MAX_PDF_BYTES} bytes"
                    )
                )
                for n, message in unwritable:
                    bad.extend(_invalid(sha256, [n], Reason.CORRUPT_PDF, message))


_PAGES_COUNT = re.compile(rb"/Type\s*/Pages\b[^>]*?/Count\s+(\d+)|/Count\s+(\d+)[^>]*?/Type\s*/Pages\b")


def count_pdf_pages(data: bytes) -> int:
    """Pages of a PDF without rendering it (also encrypted ones); 0 when they cannot be counted."""
    import pypdf

    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
    except Exception:  # damaged: the document operator says how
        return 0
    return _page_count(reader, data)


def _page_count(reader: object, data: bytes) -> int:
    """Pages of an encrypted PDF: pypdf refuses to walk its page tree without the password.

    The page tree's ``/Count`` is a number, and PDF encryption covers only strings and
    streams, so it can be read from the file; the largest ``/Pages`` count is the root's.
    Only used to give such a document one row per page; 0 when it cannot be found.
    """
    try:
        return len(reader.pages)  # type: ignore[attr-defined]
    except Exception as exc:  # expected for an encrypted document: read the count from the bytes
        log.debug("pypdf cannot count the pages (%s); reading the page tree's /Count", type(exc).__name__)
    counts = [int(a or b) for a, b in _PAGES_COUNT.findall(data)]
    return max(counts, default=0)


def _engines(reader: object, numbers: Sequence[int], engine: str) -> dict[str, list[int]]:
    """Pages by the engine that reads them: one engine, or probe/danlin per page for ``auto``."""
    if engine != AUTO_ENGINE:
        return {engine: list(numbers)}
    groups: dict[str, list[int]] = {}
    for n in numbers:
        page = reader.pages[n - 1]  # type: ignore[attr-defined]
        chosen = Engine.PROBE.value if _has_text(page) else Engine.DANLIN.value
        groups.setdefault(chosen, []).append(n)
    return groups


def _split(
    reader: object, numbers: list[int], bytes_per_page: float, *, sha256: str, engine: str, decrypted: bool
) -> tuple[list[PreparedPart], list[int], list[tuple[int, str]]]:
    """Parts of at most 150 pages and 8 MB holding ``numbers``.

    Also returns the pages too big alone, and the pages pypdf read but cannot write into a part
    (with why): a group that fails is halved like one that is too big, so one damaged page
    costs its own row, not the rows of the 149 pages written with it.
    """
    per_part = max(1, min(MAX_PDF_PAGES, math.floor(MAX_PDF_BYTES * 0.9 / max(bytes_per_page, 1.0))))
    groups = [numbers[i : i + per_part] for i in range(0, len(numbers), per_part)]
    parts: list[PreparedPart] = []
    too_big: list[int] = []
    unwritable: list[tuple[int, str]] = []
    while groups:
        group = groups.pop(0)
        try:
            data = _write(reader, group)
        except InvalidInputError as exc:
            if len(group) == 1:
                unwritable.append((group[0], exc.message))
            else:
                half = len(group) // 2
                groups[:0] = [group[:half], group[half:]]
            continue
        if len(data) > MAX_PDF_BYTES:
            if len(group) == 1:
                too_big.append(group[0])
            else:
                half = len(group) // 2
                groups[:0] = [group[:half], group[half:]]
            continue
        parts.append(
            PreparedPart(
                data=data,
                filename=f"{sha256[:12]}-p{group[0]}-{group[-1]}.pdf",
                page_map=tuple((i + 1, n) for i, n in enumerate(group)),
                selection=None,
                engine=engine,
                normalization="split" + (", decrypted" if decrypted else ""),
            )
        )
    if unwritable:
        log.warning(
            "%d page(s) of a PDF split into parts could not be written (first: page %d, %s); they get "
            "corrupt_pdf rows, the other pages are sent.",
            len(unwritable),
            *unwritable[0],
        )
    return parts, too_big, unwritable


def _write(reader: object, numbers: Sequence[int]) -> bytes:
    import pypdf

    sink = io.BytesIO()
    try:
        writer = pypdf.PdfWriter()
        for n in numbers:  # copying a page resolves every object it uses: damage shows here too
            writer.add_page(reader.pages[n - 1])  # type: ignore[attr-defined]
        writer.write(sink)
    except Exception as exc:  # a page pypdf could read but not write (RecursionError included)
        where = f"page {numbers[0]}" if len(numbers) == 1 else f"pages {numbers[0]}-{numbers[-1]}"
        raise InvalidInputError(
            Reason.CORRUPT_PDF, f"{where} cannot be written into a part: {short_error(exc)}"
        ) from None
    return sink.getvalue()
