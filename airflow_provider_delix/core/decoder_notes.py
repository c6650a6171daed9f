"""Collect what image decoders say while one file is decoded, so it can be told with the file's name.

Without this, a damaged or exotic scan leaves lines such as ``tempfile.tif: WEBP compression
support is not configured.`` in the task log with no hint of which of a million files it was.
Three channels carry such messages, and each is routed to the thread that decodes:

* Python warnings (``TiffImagePlugin``'s "Corrupt EXIF data", ``DecompressionBombWarning``):
  ``warnings.catch_warnings`` swaps process-wide state and is not safe with the several
  preparation threads (``pipeline_prefetch``), so ``warnings.showwarning`` is wrapped instead;
  the wrapper keeps a warning only on a thread that is collecting and hands every other one to
  the previous ``showwarning``, so nothing else changes. Python's default filter still shows an
  identical warning from the same place only once, so a repeat may go unrecorded.
* Pillow's loggers (``PIL.*``, WARNING and above): a logger filter keeps the record for the
  collecting thread (and drops it there, it is reported with the file name instead). pypdf's
  loggers (``pypdf.*``) get the same filter, for the PDF path (``pdf_notes``). pypdf makes a
  module's logger only when that module first warns (``logging.getLogger(__name__)`` inside
  ``logger_warning``), too late for a filter, so one is made for every imported pypdf module.
* libtiff, which reports errors through ``TIFFError`` to C ``stderr`` (Pillow silences its
  warnings itself before each decode, ``TIFFSetWarningHandler(NULL)``, and exposes no hook for
  errors; OpenJPEG and libjpeg messages already end up in Pillow's exception text or nowhere).
  Redirecting file descriptor 2 would swallow every other thread's output too, so instead the
  libtiff that Pillow loaded is found (``/proc/self/maps``, so Linux only) and given an error
  handler through ``ctypes``; it runs on the decoding thread, so it routes messages exactly
  like the two above, and calls libtiff's previous handler (stderr) for every other thread.
  Where that library cannot be found, libtiff errors stay on stderr, as before.
"""

from __future__ import annotations

import ctypes
import logging
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

__all__ = ["Note", "collect", "libtiff", "tiff_codec_configured"]

_local = threading.local()
_install_lock = threading.Lock()
_MESSAGE_BYTES = 1024


def _sink() -> list[str] | None:
    stack: list[list[str]] | None = getattr(_local, "stack", None)
    return stack[-1] if stack else None


@contextmanager
def collect() -> Iterator[list[str]]:
    """The list filled with this thread's decoder messages while the block runs (nestable)."""
    _install()
    stack: list[list[str]] = getattr(_local, "stack", None) or []
    _local.stack = stack
    notes: list[str] = []
    stack.append(notes)
    try:
        yield notes
    finally:
        stack.pop()


# ------------------------------------------------------------------ Python warnings


def _show_warning(  # noqa: PLR0917  # the signature of warnings.showwarning
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    sink = _sink()
    if sink is not None:
        sink.append(f"{category.__name__}: {message}")
        return
    _state.previous_show(message, category, filename, lineno, file, line)


class _State:
    """What was installed, process-wide (guarded by ``_install_lock``)."""

    installed = False
    previous_show: Any = warnings.showwarning
    loggers = (-1, -1)  # how many loggers and modules existed when the filter was last added


_state = _State()


def _install_warning_hook() -> None:
    """(Re)wrap ``showwarning``: ``catch_warnings`` blocks elsewhere restore their own on exit."""
    if warnings.showwarning is not _show_warning:
        _state.previous_show = warnings.showwarning
        warnings.showwarning = _show_warning


# ------------------------------------------------------------------ Pillow's loggers


class Note(str):
    """A logged message as said, and ``form``: the same before its values were put in.

    pypdf says one thing in many forms (``Ignoring final token of odd-length line b'0003'``,
    ``... b'2000'``, 52 of them for one CMap): ``pdf_notes`` counts them by form. A ``str``,
    so a note reads as before everywhere else.
    """

    form: str

    def __new__(cls, text: str, form: str) -> Note:
        note = super().__new__(cls, text)
        note.form = form
        return note


class _DecoderRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        sink = _sink()
        if sink is None or record.levelno < logging.WARNING:
            return True
        try:
            said = record.getMessage()
        except Exception:  # arguments that do not fit the format: logging would only print it
            said = str(record.msg)
        sink.append(Note(f"{record.name}: {said}", f"{record.name}: {record.msg}"))
        return False


_PIL_FILTER = _DecoderRecords()


def _install_log_filter() -> None:
    # Logger filters apply where a record is made, not to children: each PIL module has its own.
    # pypdf's loggers are named after its modules and made on first use: made here, ahead of it.
    pypdf = [n for n in list(sys.modules) if n == "pypdf" or n.startswith("pypdf.")]
    names = pypdf + [
        n
        for n in list(logging.Logger.manager.loggerDict)
        if n == "PIL" or n.startswith(("PIL.", "pillow_heif"))
    ]
    for name in names:
        logger = logging.getLogger(name)
        if _PIL_FILTER not in logger.filters:
            logger.addFilter(_PIL_FILTER)


# ------------------------------------------------------------------ libtiff

_Handler = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)


class _Libtiff:
    """The libtiff Pillow decodes with, and our error handler installed in it."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib
        lib.TIFFIsCODECConfigured.argtypes = [ctypes.c_uint16]
        lib.TIFFIsCODECConfigured.restype = ctypes.c_int
        lib.TIFFSetErrorHandler.argtypes = [ctypes.c_void_p]
        lib.TIFFSetErrorHandler.restype = ctypes.c_void_p
        libc = ctypes.CDLL(None)
        self.vsnprintf = libc.vsnprintf
        self.vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
        self.previous: Any = None
        self.handler = _Handler(self._on_error)  # kept referenced: libtiff holds only the pointer

    def install(self) -> None:
        old = self.lib.TIFFSetErrorHandler(ctypes.cast(self.handler, ctypes.c_void_p))
        self.previous = _Handler(old) if old else None

    def _on_error(self, module: bytes | None, fmt: bytes | None, args: int | None) -> None:
        sink = _sink()
        if sink is None:
            if self.previous is not None:
                self.previous(module, fmt, args)
            return
        buffer = ctypes.create_string_buffer(_MESSAGE_BYTES)
        if fmt:
            self.vsnprintf(buffer, _MESSAGE_BYTES, fmt, args)
        text = buffer.value.decode("utf-8", "replace").strip()
        where = (module or b"").decode("utf-8", "replace")
        # The module is a libtiff function ("ZIPDecode") or Pillow's placeholder file name.
        sink.append(f"libtiff {where}: {text}" if where and where != "tempfile.tif" else f"libtiff: {text}")


_libtiff_lock = threading.Lock()
_found: list[_Libtiff | None] = []  # filled once; holds the handler libtiff calls for the process


def libtiff() -> _Libtiff | None:
    """The libtiff already loaded by Pillow (same handle: ``dlopen`` of a loaded path), if found.

    Found once under a lock and kept for good: libtiff keeps only a pointer to our handler, so
    the object holding it must never be collected.
    """
    with _libtiff_lock:
        if not _found:
            _found.append(_find_libtiff())
        return _found[0]


def _find_libtiff() -> _Libtiff | None:
    from PIL import Image  # noqa: F401  # loads _imaging and, with it, libtiff

    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = sorted({parts[-1] for line in maps if len(parts := line.split()) >= 6})
    except OSError:
        return None
    candidates = [p for p in paths if p.rsplit("/", 1)[-1].startswith("libtiff") and ".so" in p]
    # A wheel's own copy first (pillow.libs): that is the one its _imaging links.
    candidates.sort(key=lambda p: "pillow" not in p.lower())
    for path in candidates:
        try:
            return _Libtiff(ctypes.CDLL(path))
        except (OSError, AttributeError):
            continue
    return None


def tiff_codec_configured(scheme: int) -> bool | None:
    """Whether Pillow's libtiff can decode TIFF compression ``scheme``; None when it cannot say."""
    lib = libtiff()
    return None if lib is None else bool(lib.lib.TIFFIsCODECConfigured(scheme))


def _install() -> None:
    with _install_lock:
        if not _state.installed:
            from PIL import Image

            Image.init()  # imports every plugin, so each one's logger exists for the filter
            lib = libtiff()
            if lib is not None:
                lib.install()
            _state.installed = True
        _install_warning_hook()
        counts = (len(logging.Logger.manager.loggerDict), len(sys.modules))
        if counts != _state.loggers:
            # Again whenever loggers or modules were added: a plugin registered later has its own.
            _state.loggers = counts
            _install_log_filter()
