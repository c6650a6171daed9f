"""Turn one input into upload-ready pages, or into invalid rows that say why not.

This is what the operator's prefetch workers run, so it never raises for bad content (every
problem becomes a page with ``error``/``message``) and keeps at most one decoded page in memory
at a time. Only infrastructure failures propagate: a ``ConnectionError``/``TimeoutError`` while
reading is not a property of the file, and recording it as an invalid row would silently drop
the file from the run instead of letting the task retry.

What the decoders say while a page is decoded (Python warnings, Pillow's log, libtiff's errors)
is collected per page (``decoder_notes``) and logged with the source's name, and an invalid
page's message ends with it: otherwise those lines reach the task log naming no file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from PIL import Image

from airflow_provider_delix.api.models import MAX_IMAGE_BYTES
from airflow_provider_delix.core.codecs import jpeg_header_flaw
from airflow_provider_delix.core.codes import Reason
from airflow_provider_delix.core.decode_limits import large_page, load_reduced, reduction
from airflow_provider_delix.core.decoder_notes import collect
from airflow_provider_delix.core.inputs import InputRef, SourceTooLargeError, read_input
from airflow_provider_delix.core.normalize import (
    drop_zero_alpha,
    encode_page,
    needs_rework,
    orientation,
    png_deflated_size,
    to_ocr_mode,
)
from airflow_provider_delix.core.png_strips import png_chunks
from airflow_provider_delix.core.validation import (
    ImageKind,
    InvalidInputError,
    check_pixels,
    check_supported,
    codec_problem,
    decode_errors,
    detect_kind,
    open_image,
    short_error,
)

__all__ = ["PreparedPage", "PreparedSource", "prepare_source", "read_source", "resumed_page"]

# Whether a page (content hash, source name, page number) already has a row: skip its work.
SkipCheck = Callable[[str, str, int], bool]

log = logging.getLogger(__name__)

# A guard against page chains that loop forever; far above any real scan batch.
_MAX_PAGES = 100_000
_MULTI_PAGE_KINDS: frozenset[ImageKind] = frozenset({"tiff", "gif", "webp", "heic"})
_NOTES_IN_MESSAGE = 300  # characters of decoder messages an invalid row's message may end with


@dataclass(frozen=True, slots=True)
class PreparedPage:
    """One page of a source: bytes to upload, or the reason it will not be uploaded."""

    page_number: int  # 1-based within the source
    data: bytes | None  # upload-ready PNG/JPEG bytes (<= MAX_IMAGE_BYTES), None when invalid
    filename: str  # ASCII-safe upload file name with the right extension, e.g. "<sha12>-p3.png"
    normalization: str | None  # what was done, None if uploaded as is
    error: str | None  # reason code when this page is invalid
    message: str | None  # human explanation when invalid
    data_sha256: str | None = None  # set when ``data`` is the source's own bytes: not hashed twice

    @property
    def valid(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class PreparedSource:
    """A source and its pages; a source that cannot be read at all has one invalid page."""

    ref: InputRef
    sha256: str  # of the ORIGINAL bytes (hex); "" if unreadable
    pages: tuple[PreparedPage, ...]


def _filename(sha256: str, page_number: int, extension: str) -> str:
    # Content-derived and ASCII: the source name may be Persian or not even valid UTF-8, and
    # the API's multipart parser is not documented to cope with either.
    return f"{sha256[:12] or 'unreadable'}-p{page_number}.{extension}"


def _invalid(sha256: str, page_number: int, error: InvalidInputError) -> PreparedPage:
    return PreparedPage(
        page_number=page_number,
        data=None,
        filename=_filename(sha256, page_number, "bin"),
        normalization=None,
        error=str(error.reason),
        message=error.message,
    )


def read_source(ref: InputRef) -> bytes:
    """Read the source, mapping I/O failures to reasons (transient network errors propagate)."""
    try:
        return read_input(ref)
    except (ConnectionError, TimeoutError):
        raise
    except FileNotFoundError:
        raise InvalidInputError(Reason.NOT_FOUND, f"no such file: {ref.source}") from None
    except SourceTooLargeError as exc:
        raise InvalidInputError(Reason.TOO_LARGE, str(exc)) from None
    except OSError as exc:  # permission denied, is a directory, ...
        raise InvalidInputError(Reason.UNREADABLE, short_error(exc)) from None


def _single_page(data: bytes, kind: ImageKind, sha256: str) -> PreparedPage:
    """A PNG or JPEG: pass the original bytes through when the API can take them as they are."""
    im = open_image(data, kind)
    try:
        with large_page(im):
            return _single_page_work(im, data, kind, sha256)
    finally:
        im.close()


def _single_page_work(im: Image.Image, data: bytes, kind: ImageKind, sha256: str) -> PreparedPage:
    unchanged = False  # the source's pixels, as they are, go to the ladder
    flaw = jpeg_header_flaw(data) if kind == "jpeg" else None
    with decode_errors(f"the {kind.upper()} does not decode"):
        if reduction(im.mode, im.size) > 1:  # asked of the header, before anything is decoded
            page, steps = load_reduced(im, data, kind, "the image")
            page, more = to_ocr_mode(page)
            steps += more
        # Checking for transparency decodes a PNG; a truncated one must fail in here.
        elif len(data) <= MAX_IMAGE_BYTES and not needs_rework(im) and not flaw:
            if kind == "jpeg":
                # Decoding at 1/8 scale still runs the whole entropy-coded stream, so a
                # truncated or damaged file fails here, at a fraction of the cost.
                im.draft(None, (max(1, im.width // 8), max(1, im.height // 8)))
            im.load()
            return PreparedPage(
                1, data, _filename(sha256, 1, "jpg" if kind == "jpeg" else "png"), None, None, None, sha256
            )
        else:
            im.load()
            page, steps = to_ocr_mode(im)
            unchanged = not steps  # else new pixels (16 -> 8 bit, flattened, rotated)
            if flaw:  # decodable, but its markers would trip a strict decoder: new bytes
                steps.insert(0, "jpeg_markers_fixed")
    # The pixels' deflated size stands for a default-level re-encode only for the source's own
    # pixels, deflated at the default level or above.
    original_size = png_deflated_size(data) if unchanged and kind == "png" else None
    with decode_errors("re-encoding failed"):
        encoded = encode_page(page, kind, pre_steps=steps, original_size=original_size)
    return PreparedPage(
        1, encoded.data, _filename(sha256, 1, encoded.extension), encoded.normalization, None, None
    )


def _pdf_pages(data: bytes, sha256: str, source: str) -> tuple[PreparedPage, ...]:
    """A PDF given to image extraction: an invalid row for each of its real pages.

    Counted (cheaply, without rendering) so the counts and ``max_failed_ratio`` see every page
    of work not done, not one row for a 137-page document. What pypdf says while counting is
    logged naming the file, as for documents (``pdf_notes``).
    """
    from airflow_provider_delix.core.pdf_notes import document
    from airflow_provider_delix.core.prepare_pdf import count_pdf_pages  # it imports this module

    with document(source):
        counted = count_pdf_pages(data)  # 0: damaged, the document operator says how; one row here
    what = f"a PDF of {counted} page(s)" if counted else "a PDF whose pages cannot be counted"
    error = InvalidInputError(
        Reason.PDF_NOT_SUPPORTED,
        f"{what}: use DocumentExtractionOperator for PDFs (image extraction answers WRONG_FILE_TYPE)",
    )
    return tuple(_invalid(sha256, n, error) for n in range(1, (counted or 1) + 1))


def resumed_page(sha256: str, page_number: int) -> PreparedPage:
    """A page that already has a row: no bytes, no reason; the planner counts it as resumed."""
    return PreparedPage(page_number, None, _filename(sha256, page_number, "bin"), None, None, None)


def _noted(page: PreparedPage, notes: list[str], source: str) -> PreparedPage:
    """Log the decoders' messages about a page with its file's name; an invalid row keeps them too."""
    if not notes:
        return page
    text = "; ".join(dict.fromkeys(notes))  # libtiff repeats itself once per strip or attempt
    log.warning("%s, page %d: decoder messages: %s", source, page.page_number, text)
    if page.error is None:
        return page
    if len(text) > _NOTES_IN_MESSAGE:
        text = text[: _NOTES_IN_MESSAGE - 3] + "..."
    return dataclasses.replace(page, message=f"{page.message} (decoder: {text})")


def _decoded(source: str, sha256: str, work: Callable[[], PreparedPage]) -> PreparedPage:
    """Run ``work`` (page 1 of a single-page file) collecting decoder messages, never raising."""
    with collect() as notes:
        try:
            page = work()
        except InvalidInputError as exc:
            page = _invalid(sha256, 1, exc)
    return _noted(page, notes, source)


def _frame(
    im: Image.Image, index: int, *, data: bytes, kind: ImageKind, sha256: str, done: Callable[[int], bool]
) -> tuple[PreparedPage | None, bool]:
    """Page ``index`` converted (or why not) and whether it is the last; ``None`` past the end."""
    number = index + 1
    if kind == "png" and index > 0 and reduction(im.mode, im.size) > 1:
        return _large_apng_frame(im, index, sha256)
    try:
        # A page whose compression Pillow does not know fails here, while its tags are read.
        with decode_errors(f"page {number} cannot be located", codec=lambda: codec_problem(data, kind, im)):
            try:
                im.seek(index)
            except EOFError:
                if index > 0:
                    return None, True  # the normal end of the page sequence
                raise
    except InvalidInputError as exc:
        return _invalid(sha256, number, exc), True
    if done(number):
        return resumed_page(sha256, number), False
    try:
        # Asked before decoding: a codec libtiff lacks would only fail with "decoder error -2".
        problem = codec_problem(data, kind, im)
        if problem is not None:
            raise InvalidInputError(Reason.UNSUPPORTED_CODEC, f"page {number}: {problem}")
        with large_page(im):
            with decode_errors(f"page {number} does not decode"):
                check_pixels(im, f"page {number}")
                steps: list[str] = []
                if reduction(im.mode, im.size) > 1:  # asked of the header, before anything is decoded
                    page, steps = load_reduced(im, data, kind, f"page {number}")
                else:
                    stored = orientation(im)
                    im.load()
                    page = im
                    if stored != 1 and orientation(page) == 1:  # Pillow turned a TIFF page upright
                        steps.append("exif_rotate")
                if kind == "bmp":
                    page, dropped = drop_zero_alpha(page)
                    steps += dropped
                page, more = to_ocr_mode(page)
            with decode_errors(f"page {number} could not be re-encoded"):
                encoded = encode_page(page, kind, pre_steps=steps + more)
            del page
    except InvalidInputError as exc:
        return _invalid(sha256, number, exc), False
    filename = _filename(sha256, number, encoded.extension)
    return PreparedPage(number, encoded.data, filename, encoded.normalization, None, None), False


def animated_png(data: bytes) -> bool:
    """Whether a PNG is an APNG of more than one frame (an ``acTL`` chunk before the pixels).

    Decoders that do not know APNG show its first frame only; its other frames are pages the
    OCR would never see, so it is prepared frame by frame, like a GIF.
    """
    for tag, start, length in png_chunks(data):  # acTL comes before the first IDAT
        if start + 4 > len(data) or tag == b"IDAT":
            return False
        if tag == b"acTL":
            return length >= 4 and int.from_bytes(data[start : start + 4], "big") > 1
    return False


def _large_apng_frame(im: Image.Image, index: int, sha256: str) -> tuple[PreparedPage | None, bool]:
    """An APNG frame past the first on a canvas too large to decode whole: not read.

    Its seek would decode the previous frame whole, and the reduced decode reads the file's own
    pixels (its first frame). The frame count is the ``acTL`` chunk's: nothing is decoded.
    """
    if index >= getattr(im, "n_frames", 1):
        return None, True
    why = f"frame {index + 1} of an animated PNG is too large to decode"
    return _invalid(sha256, index + 1, InvalidInputError(Reason.TOO_LARGE, why)), False


def _frames(
    data: bytes, kind: ImageKind, sha256: str, done: Callable[[int], bool], source: str
) -> Iterator[PreparedPage]:
    """Every page of a TIFF / frame of a GIF, WebP, HEIC or animated PNG, each converted and
    released in turn.

    A damaged page becomes an invalid row and the pages before it are kept; a page that cannot
    even be located (broken page chain) ends the source there. Decoder messages are collected
    around each page's work, never across a ``yield`` (the consumer's code runs there).
    """
    failure: PreparedPage | None = None
    with collect() as notes:
        try:
            im = open_image(data, kind)
        except InvalidInputError as exc:
            failure = _invalid(sha256, 1, exc)
    if failure is not None:
        yield _noted(failure, notes, source)
        return
    carried = notes  # what the header said belongs to the first page
    try:
        # Seek page by page instead of asking ``n_frames`` first: counting walks the whole page
        # chain, so a file truncated after a few good pages would otherwise lose all of them.
        for index in range(_MAX_PAGES if kind in _MULTI_PAGE_KINDS or kind == "png" else 1):
            with collect() as notes:
                page, last = _frame(im, index, data=data, kind=kind, sha256=sha256, done=done)
            if page is None:
                return
            yield _noted(page, carried + notes, source)
            carried = []
            if last:
                return
    finally:
        im.close()


def prepare_source(
    ref: InputRef, data: bytes | None = None, *, skip: SkipCheck | None = None
) -> PreparedSource:
    """Validate and normalise one source; reads it when ``data`` is None. Never raises for content.

    ``skip(sha256, source, page)`` says a page already has a row: it is neither decoded nor
    re-encoded (a retry of a finished archive only reads and hashes it).
    """
    sha256 = ""

    def done(page_number: int) -> bool:
        return skip is not None and skip(sha256, ref.source, page_number)

    try:
        if data is None:
            data = read_source(ref)
        sha256 = hashlib.sha256(data).hexdigest()
        if detect_kind(data) == "pdf":
            return PreparedSource(ref=ref, sha256=sha256, pages=_pdf_pages(data, sha256, ref.source))
        kind = check_supported(data)
        single = kind == "jpeg" or (kind == "png" and not animated_png(data))
        if single and done(1):
            pages: tuple[PreparedPage, ...] = (resumed_page(sha256, 1),)
        elif single:
            png_or_jpeg = kind
            pages = (_decoded(ref.source, sha256, lambda: _single_page(data, png_or_jpeg, sha256)),)
        else:  # a multi-page format, or an animated PNG: a row per frame, as for a GIF
            pages = tuple(_frames(data, kind, sha256, done, ref.source))
    except InvalidInputError as exc:
        return PreparedSource(ref=ref, sha256=sha256, pages=(_invalid(sha256, 1, exc),))
    if not pages:  # a multi-page file claiming zero pages
        empty = InvalidInputError(Reason.CORRUPT_IMAGE, "the file contains no pages")
        pages = (_invalid(sha256, 1, empty),)
    return PreparedSource(ref=ref, sha256=sha256, pages=pages)
