"""Collect what pypdf says while one PDF is prepared, and log it once, naming the file.

pypdf reports what it repairs or skips through its own loggers (``pypdf._cmap: Got invalid
hex string``, ``pypdf._reader: Ignoring wrong pointing object``, ``pypdf._crypt_providers:
Ignoring padding error``) with no file name: a run over thousands of real PDFs left dozens of
such lines naming none of them, often the same one many times. They are routed as the image
decoders' messages are (:func:`decoder_notes.collect`: a filter on pypdf's loggers keeps a
record for the thread that is collecting, so each of the preparation threads gets its own
document's, and records from threads that are not collecting pass through unchanged); Python
warnings raised while the document is prepared are kept the same way.

What is kept is counted by form (the logger's format string: one broken CMap says ``Ignoring
final token of odd-length line b'0003'`` and 51 more with other values) and by where it was
said: reading the document (opening, listing pages), a page whose text layer was read (page 3),
or the pages written into a part (pages 1-75). When the document's preparation ends it is
logged as one WARNING line naming the source: each form once, its first message, how often it
was said and where. A line cannot hold an unbounded list, so past :data:`MAX_MESSAGES` forms
the line says how many more there were and how often they were said; whenever the line leaves
out a message (a form's other values, forms past the limit), every distinct message goes to the
DEBUG log with its count: nothing is dropped without a word.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from airflow_provider_delix.core.decoder_notes import collect

log = logging.getLogger(__name__)

MAX_MESSAGES = 12  # forms in the one line; the rest are counted there, listed at DEBUG
MAX_MESSAGE_CHARS = 300  # one message's share of the line
MAX_PLACES = 8  # places named for one message; the rest are counted
MAX_TEXTS = 1000  # distinct messages kept for the DEBUG listing; past it they are only counted

Place = int | str  # a page number, "pages 1-75" for a part, "" for the document as a whole

_local = threading.local()


@dataclass(slots=True)
class _Said:
    first: str  # the first message said in this form, shown in the line
    count: int = 0
    texts: set[str] = field(default_factory=set)  # the distinct messages said in this form
    places: dict[Place, None] = field(default_factory=dict)  # distinct, in the order first said


class DocumentNotes:
    """pypdf's messages about one document, counted by form: how often, how varied, and where."""

    def __init__(self) -> None:
        self.said: dict[str, _Said] = {}  # by form (the logger's format string), in the order first said
        self.texts: dict[str, int] = {}  # every distinct message, with how often it was said
        self.untold = 0  # messages past MAX_TEXTS distinct ones: counted, not kept

    def add(self, messages: list[str], where: Place) -> None:
        for message in messages:
            text = " ".join(message.split())
            form = " ".join(str(getattr(message, "form", message)).split())
            said = self.said.setdefault(form, _Said(text))
            said.count += 1
            said.places[where] = None
            if text in self.texts or len(self.texts) < MAX_TEXTS:  # bounded, however broken the PDF
                said.texts.add(text)
                self.texts[text] = self.texts.get(text, 0) + 1
            else:
                self.untold += 1

    def line(self, source: str) -> str | None:
        """One line naming ``source`` and each form once, with its count and places; None when quiet."""
        if not self.said:
            return None
        items = list(self.said.values())
        shown = [_describe(said) for said in items[:MAX_MESSAGES]]
        rest = items[MAX_MESSAGES:]
        if rest:
            times = sum(said.count for said in rest)
            shown.append(f"and {len(rest)} more message(s), said {times} time(s) (all at DEBUG)")
        total = sum(said.count for said in items)
        return f"pypdf said {total} thing(s) reading PDF {source}: " + "; ".join(shown)

    def in_full(self, source: str) -> str | None:
        """Every distinct message and its count, when :meth:`line` had to leave some out."""
        if len(self.said) <= MAX_MESSAGES and len(self.texts) == len(self.said) and not self.untold:
            return None
        listed = "; ".join(f"{text} ({n}x)" if n > 1 else text for text, n in self.texts.items())
        more = f"; and {self.untold} more of other texts, not kept" if self.untold else ""
        return f"pypdf's messages reading PDF {source}, in full: {listed}{more}"


def _describe(said: _Said) -> str:
    message = said.first
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 3] + "..."
    if len(said.texts) > 1:
        times = f"{said.count}x in this form, {len(said.texts)} different, first shown"
    else:
        times = f"{said.count}x" if said.count > 1 else ""
    detail = ", ".join(part for part in (times, _places(list(said.places))) if part)
    return f"{message} ({detail})" if detail else message


def _places(places: list[Place]) -> str:
    """ "page 2, pages 4-6, pages 1-75 (part)"; the document as a whole is not named."""
    pages = sorted(p for p in places if isinstance(p, int))
    named = [p for p in places if isinstance(p, str) and p]
    runs: list[list[int]] = []  # [first, last] of each run of consecutive pages
    for page in pages:
        if runs and runs[-1][1] == page - 1:
            runs[-1][1] = page
        else:
            runs.append([page, page])
    listed = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
    parts = ([f"page{'s' if len(pages) > 1 else ''} {listed}"] if runs else []) + named
    if len(parts) > MAX_PLACES:
        parts = [*parts[:MAX_PLACES], f"{len(parts) - MAX_PLACES} more place(s)"]
    return ", ".join(parts)


@contextmanager
def document(source: str) -> Iterator[DocumentNotes]:
    """Keep what pypdf says on this thread while the block prepares ``source``; log it at the end."""
    import pypdf  # its loggers must exist before the filter is put on them

    _import_submodules(pypdf)

    notes = DocumentNotes()
    outer = getattr(_local, "notes", None)
    _local.notes = notes
    try:
        with collect() as said:
            try:
                yield notes
            finally:
                notes.add(said, "")
    finally:
        _local.notes = outer
        _log(notes, source)


@functools.cache
def _import_submodules(pypdf: object) -> None:
    """Every pypdf module, imported once: the filter goes on the loggers of imported modules, and
    one pypdf imports only when it first needs it (``pypdf.filters``) would warn unnamed."""
    import importlib
    import pkgutil

    for module in pkgutil.walk_packages(getattr(pypdf, "__path__", []), "pypdf.", onerror=lambda _: None):
        try:
            importlib.import_module(module.name)
        except Exception as exc:  # an optional part (a crypto provider, a codec) this install lacks
            log.debug("pypdf module %s not imported: %s", module.name, exc)


@contextmanager
def place(where: Place) -> Iterator[None]:
    """Say that what pypdf says in the block is about ``where`` of the document being prepared.

    Outside :func:`document` (a caller that is not preparing a document) nothing is collected.
    """
    notes: DocumentNotes | None = getattr(_local, "notes", None)
    if notes is None:
        yield
        return
    with collect() as said:
        try:
            yield
        finally:
            notes.add(said, where)


def pages_label(numbers: list[int]) -> Place:
    """Where a write of ``numbers`` happens: the page, or the part's range of pages."""
    return numbers[0] if len(numbers) == 1 else f"pages {numbers[0]}-{numbers[-1]} (a part)"


def _log(notes: DocumentNotes, source: str) -> None:
    line = notes.line(source)
    if line is None:
        return
    log.warning("%s", line)
    if log.isEnabledFor(logging.DEBUG):
        full = notes.in_full(source)
        if full is not None:
            log.debug("%s", full)
