"""Split a PDF's pages into files Delix takes (150 pages, 8 MB), around pages that cannot be copied.

pypdf reads some damaged documents whose pages it then cannot copy into a new file: an object
a page uses is broken (nested past Python's recursion limit), or compressed with a codec this
installation lacks (Brotli, JBIG2 without their packages). Such a page must cost its own row,
not the rows of the 149 pages written with it:

* a group of pages that fails to write is halved, like a group that comes out over 8 MB, until
  the damaged page is alone: ``corrupt_pdf``, or ``unsupported_codec`` for a missing codec;
* pypdf remembers an object that failed to load and answers every later use of it with a
  misleading "loop" error, so a page that fails alone is tried once more on a freshly opened
  document: its row gets the real reason, and a page that was only caught by that stale state
  is written after all. Opening walks the whole page tree, so this is done for the first
  :data:`MAX_REOPENS` such pages of a document; later ones keep the error they got;
* halving leaves the good pages in more, smaller files than needed (one damaged page in each
  150 pages would mean seven times the requests), so once the damaged pages are known the good
  ones are grouped and written again in a second pass, kept if it finds no new damage and
  makes fewer files;
* a document where page after page fails is not halved to its end: after
  :data:`MAX_UNWRITABLE` damaged pages, each group still queued is tried once, whole; one that
  fails is no longer halved and its pages get a row that says so.

The limits hold per document (:class:`SplitBudget`), across engines and both passes. An
encrypted document whose streams pypdf cannot decrypt here (AES without the ``cryptography``
package) fails every write the same way: that stops the split at once (:class:`CannotDecryptError`).
"""

from __future__ import annotations

import importlib.util
import io
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from airflow_provider_delix.api.models import MAX_PDF_BYTES, MAX_PDF_PAGES
from airflow_provider_delix.core.codes import Reason
from airflow_provider_delix.core.pdf_notes import pages_label, place
from airflow_provider_delix.core.validation import short_error

MAX_UNWRITABLE = 100  # damaged pages in one document before the rest are no longer tried
MAX_REOPENS = 10  # fresh openings of one document to retry a page that failed alone

Opener = Callable[[], object]  # a freshly opened (and decrypted) pypdf.PdfReader of the document


class CannotDecryptError(Exception):
    """pypdf opened the document but cannot decrypt its streams here."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _WriteError(Exception):
    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def missing_dependency(exc: BaseException, encrypted: bool) -> tuple[Reason, str]:
    """What pypdf's ``DependencyError`` means here: an encrypted document it cannot decrypt
    (no ``cryptography``), or a stream compressed with a codec whose package is missing."""
    if encrypted and not _crypto_installed():
        return Reason.ENCRYPTED_PDF, f"the PDF is encrypted and cannot be decrypted here: {short_error(exc)}"
    return Reason.UNSUPPORTED_CODEC, f"a codec the PDF uses is not installed: {short_error(exc)}"


def _crypto_installed() -> bool:
    return importlib.util.find_spec("cryptography") is not None


@dataclass(slots=True)
class SplitBudget:
    """What one document may cost in failed pages and fresh openings (see the module docstring)."""

    damaged: int = 0
    reopens: int = 0


@dataclass(slots=True)
class SplitResult:
    written: list[tuple[list[int], bytes]] = field(default_factory=list)  # (original pages, file)
    too_big: list[int] = field(default_factory=list)  # over max_bytes even alone
    unwritable: list[tuple[int, Reason, str]] = field(default_factory=list)  # (page, reason, why)


def split_pages(
    open_reader: Opener,
    numbers: Sequence[int],
    bytes_per_page: float,
    *,
    encrypted: bool = False,
    budget: SplitBudget | None = None,
    max_bytes: int = MAX_PDF_BYTES,
) -> SplitResult:
    """Files of at most 150 pages and ``max_bytes`` (8 MB, or the task's smaller storage budget)
    holding ``numbers``, in order; see the module docstring."""
    budget = budget if budget is not None else SplitBudget()
    per_part = max(1, min(MAX_PDF_PAGES, math.floor(max_bytes * 0.9 / max(bytes_per_page, 1.0))))
    first = _halving(open_reader, _groups(numbers, per_part), encrypted, budget, max_bytes)
    if not first.unwritable:
        return first
    left_out = {n for n, _, _ in first.unwritable} | set(first.too_big)
    good = [n for n in numbers if n not in left_out]
    again = _halving(
        open_reader, _groups(good, per_part), encrypted, SplitBudget(MAX_UNWRITABLE, MAX_REOPENS), max_bytes
    )
    if again.unwritable or len(again.written) >= len(first.written):
        return first  # the second pass found new damage (or saved nothing): keep the first
    return SplitResult(again.written, first.too_big + again.too_big, first.unwritable)


def _groups(numbers: Sequence[int], size: int) -> list[list[int]]:
    return [list(numbers[i : i + size]) for i in range(0, len(numbers), size)]


def _halving(
    open_reader: Opener, groups: list[list[int]], encrypted: bool, budget: SplitBudget, max_bytes: int
) -> SplitResult:
    result = SplitResult()
    reader = open_reader()
    queue = deque(groups)
    while queue:
        group = queue.popleft()
        try:
            data = _write_pages(reader, group, encrypted)
        except _WriteError as failed:
            if budget.damaged >= MAX_UNWRITABLE:  # no more halving: the group's pages say why
                why = failed.message
                if len(group) > 1:
                    why = f"not tried alone ({MAX_UNWRITABLE} pages of this PDF could not be written): {why}"
                result.unwritable.extend((n, failed.reason, why) for n in group)
                continue
            if len(group) > 1:
                half = len(group) // 2
                queue.extendleft([group[half:], group[:half]])
                continue
            last: _WriteError | None = failed
            if budget.reopens < MAX_REOPENS:
                budget.reopens += 1
                reader = open_reader()  # forget the object pypdf now reports as a loop
                try:
                    data = _write_pages(reader, group, encrypted)
                    last = None
                except _WriteError as exc:
                    last = exc
            if last is not None:
                budget.damaged += 1
                result.unwritable.append((group[0], last.reason, last.message))
                continue
        if len(data) > max_bytes:
            if len(group) == 1:
                result.too_big.append(group[0])
            else:
                half = len(group) // 2
                queue.extendleft([group[half:], group[:half]])
            continue
        result.written.append((group, data))
    return result


def _write_pages(reader: object, numbers: Sequence[int], encrypted: bool) -> bytes:
    """The pages as one new PDF; raises _WriteError (or CannotDecryptError) when pypdf cannot."""
    import pypdf
    from pypdf.errors import DependencyError

    where = f"page {numbers[0]}" if len(numbers) == 1 else f"pages {numbers[0]}-{numbers[-1]}"
    sink = io.BytesIO()
    try:
        with place(pages_label(list(numbers))):  # what pypdf says while copying, about these pages
            writer = pypdf.PdfWriter()
            for n in numbers:  # copying a page resolves every object it uses: damage shows here too
                writer.add_page(reader.pages[n - 1])  # type: ignore[attr-defined]
            writer.write(sink)
    except DependencyError as exc:
        reason, message = missing_dependency(exc, encrypted)
        if reason == Reason.ENCRYPTED_PDF:
            raise CannotDecryptError(message) from None
        raise _WriteError(reason, f"{where}: {message}") from None
    except Exception as exc:  # a page pypdf could read but not write (RecursionError included)
        raise _WriteError(
            Reason.CORRUPT_PDF, f"{where} cannot be written into a part: {short_error(exc)}"
        ) from None
    return sink.getvalue()
