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

What pypdf logs while a document is prepared (repairs, skipped objects) is kept per document
and logged as one line naming it (``pdf_notes``): pypdf's own lines name no file.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_delix.api.models import MAX_PDF_BYTES, MAX_PDF_PAGES, Engine
from airflow_provider_delix.core.codes import Reason
from airflow_provider_delix.core.inputs import InputRef
from airflow_provider_delix.core.options import AUTO_ENGINE, RunOptions, page_selector
from airflow_provider_delix.core.pdf_notes import document, place
from airflow_provider_delix.core.pdf_split import (
    CannotDecryptError,
    Opener,
    SplitBudget,
    missing_dependency,
    split_pages,
)
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
    page_count: int  # pages in this file: Delix's upload answer must count as many


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
        data = read_source(ref)  # outside the notes: a storage client's warnings are not pypdf's
        sha256 = hashlib.sha256(data).hexdigest()
        with document(ref.source):
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
    locked_why = "the PDF is encrypted with a password; decrypt it before OCR"
    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        encrypted = reader.is_encrypted
        try:
            locked = encrypted and not reader.decrypt("")
        except DependencyError as exc:  # AES without the cryptography package
            locked = True
            locked_why = f"the PDF is encrypted and cannot be decrypted here: {short_error(exc)}"
        # A locked page tree cannot be walked: its /Count is read from the bytes (0: unknown).
        count = _page_count(reader, data) if locked else len(reader.pages)
    except FileNotDecryptedError as exc:
        raise InvalidInputError(Reason.ENCRYPTED_PDF, short_error(exc)) from None
    except DependencyError as exc:  # the page tree is in a stream whose codec is not installed
        raise InvalidInputError(*missing_dependency(exc, _claims_encryption(data))) from None
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
        inside = [n for n in wanted if not count or n <= count]
        return PreparedDocument(
            ref, sha256, (*invalid, *_invalid(sha256, inside, Reason.ENCRYPTED_PDF, locked_why)), ()
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
            lambda: _open(data, encrypted),
            reader,
            data=data,
            sha256=sha256,
            count=count,
            todo=todo,
            encrypted=encrypted,
            engine_setting=options.engine,
            # A part must fit Delix (8 MB) and the task's storage budget, or it is never sent.
            max_bytes=min(MAX_PDF_BYTES, options.max_stored_bytes),
            parts=parts,
            bad=bad,
        )
    except CannotDecryptError as exc:  # decrypted, but its streams need what is not installed
        parts, bad = [], list(_invalid(sha256, todo, Reason.ENCRYPTED_PDF, exc.message))
    return PreparedDocument(ref, sha256, (*invalid, *bad, *resumed), tuple(parts))


def _claims_encryption(data: bytes) -> bool:
    """Whether the file names an /Encrypt dictionary (asked when pypdf failed before saying)."""
    return b"/Encrypt" in data


def _open(data: bytes, encrypted: bool) -> object:
    """The document opened again (decrypted): pdf_split asks for a fresh one after a failure."""
    import pypdf

    reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
    if encrypted:
        reader.decrypt("")
    return reader


def _plan_parts(
    open_reader: Opener,
    reader: object,
    *,
    data: bytes,
    sha256: str,
    count: int,
    todo: list[int],
    encrypted: bool,
    engine_setting: str,
    max_bytes: int,
    parts: list[PreparedPart],
    bad: list[PreparedPage],
) -> None:
    if todo:
        by_engine = _engines(reader, todo, engine_setting)
        budget = SplitBudget()  # one for the document, whatever its engines
        # A page tree whose /Count says other than the pages it holds is read one way by pypdf
        # (it walks the tree) and another by a renderer that believes /Count: Delix would charge,
        # refuse (over 150 pages) or fail pages we never listed. Rewritten parts count right.
        tree_ok = page_tree_counts_match(reader, count)
        fits = count <= MAX_PDF_PAGES and len(data) <= max_bytes and not encrypted and tree_ok
        for engine, numbers in by_engine.items():
            if fits:
                select = None if len(numbers) == count else page_selector(numbers)
                parts.append(
                    PreparedPart(
                        data,
                        f"{sha256[:12]}.pdf",
                        tuple((n, n) for n in numbers),
                        select,
                        engine,
                        None,
                        page_count=count,
                    )
                )
            else:
                split = split_pages(
                    open_reader,
                    numbers,
                    len(data) / count,
                    encrypted=encrypted,
                    budget=budget,
                    max_bytes=max_bytes,
                )
                normalization = "split" + (", decrypted" if encrypted else "")
                normalization += "" if tree_ok else ", page count repaired"
                parts.extend(
                    PreparedPart(
                        data=written,
                        filename=f"{sha256[:12]}-p{group[0]}-{group[-1]}.pdf",
                        page_map=tuple((i + 1, n) for i, n in enumerate(group)),
                        selection=None,
                        engine=engine,
                        normalization=normalization,
                        page_count=len(group),
                    )
                    for group, written in split.written
                )
                bad.extend(_invalid(sha256, split.too_big, *_too_big(max_bytes)))
                for n, reason, message in split.unwritable:
                    bad.extend(_invalid(sha256, [n], reason, message))
                if split.unwritable:
                    log.warning(
                        "%d page(s) of a PDF could not be written into a part (first: page %d, %s); their "
                        "rows say why, the pages that could be written are sent.",
                        len(split.unwritable),
                        split.unwritable[0][0],
                        split.unwritable[0][2],
                    )


def page_tree_counts_match(reader: Any, count: int) -> bool:
    """Whether every /Pages node's /Count is the number of pages under it, ``count`` at the root.

    False for a tree that cannot be checked (a missing or odd /Count, a loop): rewriting such a
    document costs a little time, sending it as is may cost credits for pages it does not have.
    """
    from pypdf.errors import PyPdfError

    try:
        return _leaves(reader.root_object["/Pages"], set(), 0) == count
    except (_Mismatch, PyPdfError, KeyError, TypeError, ValueError, AttributeError, RecursionError):
        return False


class _Mismatch(Exception):
    """A /Pages node whose /Count is not the number of pages under it (or a loop in the tree)."""


def _leaves(node: Any, seen: set[int], depth: int) -> int:
    """Pages under a /Pages node, checking its /Count on the way; nodes are told apart as pypdf
    does when it lists the pages (``/Type``, else a node with ``/Kids`` is a /Pages node)."""
    if id(node) in seen or depth > 64:
        raise _Mismatch
    seen.add(id(node))
    total = 0
    for i in range(len(node["/Kids"]) if "/Kids" in node else 0):
        child = node["/Kids"][i]  # an IndirectObject forwards get, in and [] to what it names
        kind = child.get("/Type") or ("/Pages" if "/Kids" in child else "/Page")
        total += _leaves(child, seen, depth + 1) if kind == "/Pages" else 1
    if int(node["/Count"]) != total:
        raise _Mismatch
    return total


# A /Count read from the bytes is believed up to this many pages (rows are made per page).
MAX_COUNTED_PAGES = 100_000
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
    count = max(counts, default=0)
    return count if count <= MAX_COUNTED_PAGES else 0  # not believed: one row, not a row per "page"


def _engines(reader: object, numbers: Sequence[int], engine: str) -> dict[str, list[int]]:
    """Pages by the engine that reads them: one engine, or probe/danlin per page for ``auto``."""
    if engine != AUTO_ENGINE:
        return {engine: list(numbers)}
    groups: dict[str, list[int]] = {}
    for n in numbers:
        with place(n):  # reading a text layer is where broken fonts and cmaps are found
            page = reader.pages[n - 1]  # type: ignore[attr-defined]
            chosen = Engine.PROBE.value if _has_text(page) else Engine.DANLIN.value
        groups.setdefault(chosen, []).append(n)
    return groups


def _too_big(max_bytes: int) -> tuple[Reason, str]:
    """Why a page over ``max_bytes`` on its own is not sent: Delix's limit, or the task's budget."""
    if max_bytes >= MAX_PDF_BYTES:
        return Reason.TOO_LARGE, f"a single page is over {MAX_PDF_BYTES} bytes"
    return (
        Reason.OVER_BUDGET,
        f"a single page is over {max_bytes} bytes, the task's max_stored_bytes (Delix takes PDFs up to "
        f"{MAX_PDF_BYTES} bytes): raise max_stored_bytes and run again",
    )
