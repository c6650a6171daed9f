"""Typed resources of the Delix API (``docs/api.md``, "Endpoints").

Frozen dataclasses rather than pydantic or TypedDicts: they cost nothing to build (the
operator builds one per page, hundreds of thousands per run), mypy checks them strictly, and
the explicit ``from_api`` parsers are the one place that tolerates what the spec says may vary
(an upload answer with or without ``data``, ``text`` missing on failed pages, ``pages`` as an
array or as a URL). Unknown enum values from the server are kept as plain strings instead of
crashing: the vendor documents its enums loosely. Anything else that does not fit (a charge that
is not a number, ``files`` that is not a list, a required field missing or null) raises
:class:`DelixResponseError`, never a bare ``TypeError``: the hook names the request and the
connection on that class only, and the pipeline handles a malformed answer by it. An extract's
counts are the exception: it answers a paid request, so what the client does not need of it
never throws the text away (see :meth:`Extract.from_api`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from airflow_provider_delix.api.errors import DelixResponseError

DEFAULT_BASE_URL = "https://api.delix.ir/v1"
MAX_FILES_PER_REQUEST = 5
MAX_STORED_FILES = 30
MAX_STORED_BYTES = 100 * 1000 * 1000
MAX_IMAGE_BYTES = 2 * 1000 * 1000
MAX_PDF_BYTES = 8 * 1000 * 1000
MAX_PDF_PAGES = 150
MAX_SYNC_DOCUMENT_PAGES = 5
# Credits per page (docs/api.md, "Credits": "the examples suggest" these; there is no price list).
# Only used where Delix's own ``initial_cost`` is unknown: the emulator's prices, the charge
# assumed for a paid request whose answer was lost, and an extract that does not say its cost.
IMAGE_PAGE_PRICE = 200
PDF_PAGE_PRICE = 100


def page_price(kind: str) -> int:
    """Credits per page of a request of ``kind`` (``images`` or ``documents``, packs included)."""
    return IMAGE_PAGE_PRICE if kind == "images" else PDF_PAGE_PRICE


class Engine(StrEnum):
    """OCR engines (docs/api.md, "Engines and languages")."""

    DANLIN = "danlin"  # dense text
    TIHO = "tiho"  # sparse text
    PROBE = "probe"  # reads the embedded text layer of PDFs; takes no options


# What /image-extraction takes: probe reads a PDF's text layer, so Delix answers WRONG_FILE_TYPE.
IMAGE_EXTRACTION_ENGINES = (Engine.DANLIN, Engine.TIHO)


class Language(StrEnum):
    """Main language of the content (docs/api.md, "Engines and languages")."""

    FA = "fa"
    EN = "en"
    AR = "ar"
    TR = "tr"


class ErrorCode(StrEnum):
    """The ErrorEnum of the API (docs/api.md, "Errors")."""

    MALFORMED_FILE = "MALFORMED_FILE"
    PAGE_COUNT_LIMIT_EXCEEDED = "PAGE_COUNT_LIMIT_EXCEEDED"
    DUPLICATED_FILE = "DUPLICATED_FILE"
    EXCEEDING_FILE_PAGE = "EXCEEDING_FILE_PAGE"
    BAD_INPUT = "BAD_INPUT"
    GENERAL_EXCEPTION = "GENERAL_EXCEPTION"
    INVALID_FILE_PAGE = "INVALID_FILE_PAGE"
    NO_SUFFICIENT_CREDITS = "NO_SUFFICIENT_CREDITS"
    STORAGE_COUNT_EXCEEDED = "STORAGE_COUNT_EXCEEDED"
    STORAGE_SIZE_EXCEEDED = "STORAGE_SIZE_EXCEEDED"
    UNKNOWN_FIELD = "UNKNOWN_FIELD"
    WRONG_FILE_TYPE = "WRONG_FILE_TYPE"
    FILE_UNDER_PROCESSING = "FILE_UNDER_PROCESSING"


# What each code means, as the API's documentation puts it (docs/api.md, "Errors"): the message
# of a row that carries a code Delix answered without words (a file rejected at upload).
ERROR_MEANINGS: dict[str, str] = {
    ErrorCode.MALFORMED_FILE: "the file is damaged or of an unsupported type",
    ErrorCode.PAGE_COUNT_LIMIT_EXCEEDED: "a PDF over 150 pages",
    ErrorCode.DUPLICATED_FILE: "the same file twice in one request",
    ErrorCode.EXCEEDING_FILE_PAGE: "more pages requested than the mode allows",
    ErrorCode.BAD_INPUT: "the file could not be processed",
    ErrorCode.GENERAL_EXCEPTION: "an unexpected server failure",
    ErrorCode.INVALID_FILE_PAGE: "a page range not valid for the file",
    ErrorCode.NO_SUFFICIENT_CREDITS: "not enough credits",
    ErrorCode.STORAGE_COUNT_EXCEEDED: "the account already holds 30 files",
    ErrorCode.STORAGE_SIZE_EXCEEDED: "the account's storage would pass 100 MB",
    ErrorCode.UNKNOWN_FIELD: "a field the API does not know",
    ErrorCode.WRONG_FILE_TYPE: "a file type this endpoint does not read",
    ErrorCode.FILE_UNDER_PROCESSING: "the file is in use by a running extraction",
}


def rejection_message(reason: ErrorCode | str) -> str:
    """A readable message for a file Delix rejected at upload, which its answer gives only a code."""
    meaning = ERROR_MEANINGS.get(str(reason))
    said = f"{reason}: {meaning}" if meaning else f"{reason}, a code the API's documentation does not list"
    return f"Delix rejected the file at upload ({said})."


class ExtractStatus(StrEnum):
    PROCESSING = "processing"
    PROCESSED = "processed"


class PageStatus(StrEnum):
    PROCESSED = "processed"
    FAILED = "failed"


def _enum_or_str(enum: type[StrEnum], value: Any) -> Any:
    """Known values become enum members; unknown ones stay strings rather than failing the run."""
    try:
        return enum(value)
    except ValueError:
        return str(value)


def _require(payload: Mapping[str, Any], key: str, what: str) -> Any:
    value = payload.get(key)
    if value is None:  # missing or null: either way the answer does not say it
        raise DelixResponseError(f"Delix answered a {what} without '{key}'.")
    return value


def read_int(value: Any, key: str, what: str) -> int:
    """A count the API sends as a JSON number (or a numeric string); anything else is malformed."""
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # null, a list, "abc", Infinity
        shown = repr(value)
        shown = shown if len(shown) <= 40 else shown[:40] + "…"
        raise DelixResponseError(f"Delix answered a {what} whose '{key}' is not a number: {shown}.") from None


def hint_int(value: Any) -> int | None:
    """A count used only as a hint (an extract's totals, a paginator's ``meta``): absent, null
    or not a number is None, never an error -- nothing the client needs is thrown away for it."""
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _as_mapping(payload: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(payload, Mapping):
        raise DelixResponseError(f"Delix answered a {what} that is not a JSON object.")
    return payload


def unwrap_data(payload: Any, what: str) -> Any:
    """Return ``payload["data"]``; every success payload is wrapped in ``data`` (docs/api.md, "General")."""
    if isinstance(payload, Mapping) and "data" in payload:
        return payload["data"]
    raise DelixResponseError(f"Delix answered a {what} without the top-level 'data' key.")


@dataclass(frozen=True, slots=True)
class FileIdentifier:
    """A stored file in an extraction request; ``page`` selects pages of a PDF (``3-16``, ``1,4,15``)."""

    uuid: str
    page: str | None = None

    def to_api(self) -> dict[str, str]:
        # Only the keys the API knows (extra keys are answered with UNKNOWN_FIELD); an empty or
        # absent page means every page, so it is simply left out.
        body = {"uuid": self.uuid}
        if self.page:
            body["page"] = self.page
        return body


@dataclass(frozen=True, slots=True)
class StoredFile:
    uuid: str
    extension: str
    # None when the answer leaves it out (or null): nothing to check a PDF's page count against.
    page_count: int | None

    @property
    def status(self) -> str:
        return "stored"


@dataclass(frozen=True, slots=True)
class RejectedFile:
    reason: ErrorCode | str

    @property
    def status(self) -> str:
        return "rejected"


UploadResult = StoredFile | RejectedFile


class UploadAnswer(list[UploadResult]):
    """An upload's results, one per file in request order, and how many earlier sends of it lost
    their answer after sending (``lost_attempts``: 0 or 1, see api/retry.py).

    Client-side, not an API field, like ``Extract.lost_attempts``: each lost send may have
    stored every file of the request under a uuid no answer named (a StoredFile has no name),
    so the caller counts them as in doubt and leaves them to the orphan sweep.
    """

    def __init__(self, results: Iterable[UploadResult] = (), *, lost_attempts: int = 0) -> None:
        super().__init__(results)
        self.lost_attempts = lost_attempts


def _optional_count(value: Any) -> int | None:
    """A stored file's ``page_count``: absent or null is unknown, anything else must be a count."""
    return None if value is None else read_int(value, "page_count", "stored file")


def parse_upload_item(item: Any) -> UploadResult:
    entry = _as_mapping(item, "upload entry")
    status = entry.get("status")
    if status == "stored":
        return StoredFile(
            uuid=str(_require(entry, "uuid", "stored file")),
            extension=str(entry.get("extension", "")),
            page_count=_optional_count(entry.get("page_count")),
        )
    if status == "rejected":
        return RejectedFile(reason=_enum_or_str(ErrorCode, entry.get("reason", "UNKNOWN")))
    raise DelixResponseError(f"Delix answered an upload entry with unknown status {status!r}.")


def parse_upload_response(payload: Any, expected: int) -> list[UploadResult]:
    """Parse a 207 upload answer, with or without the ``data`` wrapper (early drafts had none).

    An answer that cannot be read whole (the wrong number of entries, or one unreadable entry)
    raises :class:`DelixResponseError` with the uuids of every entry that says it is stored:
    those files are on the account (30 at most, shared by the key) and the caller deletes them.
    """
    items = payload["data"] if isinstance(payload, Mapping) and "data" in payload else payload
    if not isinstance(items, Sequence) or isinstance(items, str | bytes):
        raise DelixResponseError("Delix answered an upload without a list of files.")
    results: list[UploadResult] = []
    unreadable: DelixResponseError | None = None
    for item in items:
        try:
            results.append(parse_upload_item(item))
        except DelixResponseError as error:
            unreadable = unreadable or error
    if len(items) == expected and unreadable is None:
        return results
    named = tuple(uuid for uuid in map(_stored_uuid, items) if uuid is not None)
    if len(items) != expected:
        message = (
            f"Delix answered {len(items)} upload entries for {expected} files; cannot tell which is which"
        )
    else:
        message = f"{str(unreadable).rstrip('.')} (in an upload answer naming {len(named)} stored file(s))"
    raise DelixResponseError(message, uuids=named)


def _stored_uuid(item: Any) -> str | None:
    """The uuid of an upload entry that says it is stored, however unreadable the rest of it."""
    if isinstance(item, Mapping) and item.get("status") == "stored":
        uuid = item.get("uuid")
        if isinstance(uuid, str | int) and not isinstance(uuid, bool) and str(uuid):
            return str(uuid)
    return None


def parse_stored_files(payload: Any) -> list[StoredFile]:
    items = unwrap_data(payload, "file list")
    if not isinstance(items, Sequence):
        raise DelixResponseError("Delix answered a file list that is not a list.")
    files = []
    for item in items:
        parsed = parse_upload_item(item)
        if isinstance(parsed, StoredFile):
            files.append(parsed)
    return files


@dataclass(frozen=True, slots=True)
class ExtractFilePage:
    number: int
    status: PageStatus | str
    text: str | None

    @classmethod
    def from_api(cls, item: Any) -> ExtractFilePage:
        """A page as answered; a page without a usable number (0) or status ("") stays, so that
        one odd page fails alone instead of the whole answer (see ``core.collect``)."""
        entry = _as_mapping(item, "page")
        text = entry.get("text")
        try:
            number = int(entry.get("number", 0))
        except (TypeError, ValueError):
            number = 0
        status = entry.get("status")
        return cls(
            number=number,
            status="" if status is None else _enum_or_str(PageStatus, status),
            text=None if text is None else str(text),
        )


@dataclass(frozen=True, slots=True)
class ExtractFile:
    """One file of an extract: ``pages`` when synchronous, ``pages_url`` when asynchronous."""

    uuid: str
    pages: tuple[ExtractFilePage, ...] | None
    pages_url: str | None

    @classmethod
    def from_api(cls, item: Any) -> ExtractFile:
        entry = _as_mapping(item, "extract file")
        pages = entry.get("pages")
        uuid = str(_require(entry, "uuid", "extract file"))
        if isinstance(pages, str):
            return cls(uuid=uuid, pages=None, pages_url=pages)
        if isinstance(pages, Sequence):
            return cls(uuid=uuid, pages=tuple(ExtractFilePage.from_api(p) for p in pages), pages_url=None)
        raise DelixResponseError("Delix answered an extract file whose 'pages' is neither a list nor a URL.")


@dataclass(frozen=True, slots=True)
class Extract:
    uuid: str
    status: ExtractStatus | str
    file_type: str
    engine: str
    language: str | None
    # Informational: None when the answer leaves them out, null or unreadable.
    total_files: int | None
    total_file_pages: int | None
    total_processing_pages: int | None
    # None: the answer did not say (missing or null); the collector then records an estimate.
    initial_cost: int | None
    failed_pages: int | None
    returned_credits: int | None
    files: tuple[ExtractFile, ...]
    # Client-side, not an API field: earlier sends of the request that returned this extract
    # whose answer was lost after sending (0 or 1, see api/retry.py). Delix may have charged them.
    lost_attempts: int = 0

    @property
    def is_processed(self) -> bool:
        return self.status == ExtractStatus.PROCESSED

    @classmethod
    def from_api(cls, payload: Any) -> Extract:
        """Parse an Extract, wrapped in ``data`` or bare (the docs show both).

        It answers a paid request: ``initial_cost`` missing or null is None (unknown: the
        collector records an estimate and says so), not an error that threw the text and the
        extract uuid away, nor a 0 that hid the charge. The ``total_*`` counts are never used:
        missing, null or unreadable, they are None. A non-number cost is still malformed.
        """
        if isinstance(payload, Mapping) and "data" in payload and isinstance(payload["data"], Mapping):
            payload = payload["data"]
        entry = _as_mapping(payload, "extract")

        def optional_int(key: str) -> int | None:
            value = entry.get(key)
            return None if value is None else read_int(value, key, "extract")

        files = entry.get("files") or ()
        if not isinstance(files, Sequence) or isinstance(files, str | bytes):
            raise DelixResponseError("Delix answered an extract whose 'files' is not a list.")
        language = entry.get("language")
        return cls(
            uuid=str(_require(entry, "uuid", "extract")),
            status=_enum_or_str(ExtractStatus, _require(entry, "status", "extract")),
            file_type=str(entry.get("file_type", "")),
            engine=str(entry.get("engine", "")),
            language=None if language is None else str(language),
            total_files=hint_int(entry.get("total_files")),
            total_file_pages=hint_int(entry.get("total_file_pages")),
            total_processing_pages=hint_int(entry.get("total_processing_pages")),
            initial_cost=optional_int("initial_cost"),
            failed_pages=optional_int("failed_pages"),
            returned_credits=optional_int("returned_credits"),
            files=tuple(ExtractFile.from_api(f) for f in files),
        )


def engine_body(engine: Engine | str, language: Language | str | None) -> dict[str, Any]:
    """The ``engine`` object of an extraction body; ``probe`` takes no options.

    See docs/api.md, "Engines and languages".
    """
    name = Engine(engine)
    if name is Engine.PROBE:
        return {"name": name.value}
    if language is None:
        raise ValueError(f"Engine {name.value!r} needs a language: one of fa, en, ar, tr.")
    try:
        lang = Language(language)
    except ValueError:
        raise ValueError(f"Unknown language {language!r}: use one of fa, en, ar, tr.") from None
    return {"name": name.value, "options": {"language": lang.value}}
