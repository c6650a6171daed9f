"""Reading an extraction body into a typed request, refusing what Delix would refuse.

Only the shape of the body is checked here (no stored state is looked at), in this order:

1. ``UNKNOWN_FIELD`` for any key the API does not know: top level (``engine``, ``files``, and
   ``callback_url`` on ``/document-extraction`` only), inside ``engine`` (``name``,
   ``options``), inside ``options`` (``language``) and inside a FileIdentifier (``uuid``,
   ``page``). ``page`` is known on ``/image-extraction`` too and ignored there (the spec says
   it "is not used for images").
2. Laravel-style validation, all fields at once: ``errors.engine`` (missing or unknown name,
   missing or unknown language for danlin/tiho, any ``options`` key for probe, even empty),
   ``errors.files`` (missing, not a list, empty, more than 5, an item without a string uuid),
   ``errors.callback_url`` (not an http(s) URL).
3. ``DUPLICATED_FILE`` when one uuid appears twice.

A body that is not a JSON object is treated like an empty form: the validation errors say
``engine`` and ``files`` are required.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow_provider_delix.api.models import MAX_FILES_PER_REQUEST, ErrorCode, Language
from airflow_provider_delix.emulator.apierrors import enum_error, validation_error
from airflow_provider_delix.emulator.config import ENGINES

IMAGE = "image"
DOCUMENT = "document"
_TOP_KEYS = {IMAGE: {"engine", "files"}, DOCUMENT: {"engine", "files", "callback_url"}}
_ENGINE_KEYS = {"name", "options"}
_OPTION_KEYS = {"language"}
_FILE_KEYS = {"uuid", "page"}
LANGUAGES = tuple(lang.value for lang in Language)


@dataclass(frozen=True)
class FileRequest:
    uuid: str
    page: Any  # the raw selector; checked against the stored file later (pages.select_pages)


@dataclass(frozen=True)
class ExtractionRequest:
    kind: str  # IMAGE or DOCUMENT
    engine: str
    language: str | None
    files: list[FileRequest]
    callback_url: str | None


def _unknown_fields(body: dict[str, Any], kind: str) -> list[str]:
    unknown = [k for k in body if k not in _TOP_KEYS[kind]]
    engine = body.get("engine")
    if isinstance(engine, dict):
        unknown += [f"engine.{k}" for k in engine if k not in _ENGINE_KEYS]
        options = engine.get("options")
        if isinstance(options, dict):
            unknown += [f"engine.options.{k}" for k in options if k not in _OPTION_KEYS]
    files = body.get("files")
    if isinstance(files, list):
        for i, item in enumerate(files):
            if isinstance(item, dict):
                unknown += [f"files.{i}.{k}" for k in item if k not in _FILE_KEYS]
    return unknown


def _engine_errors(engine: Any) -> list[str]:  # noqa: PLR0911 (one answer per rule)
    if engine is None:
        return ["The engine field is required."]
    if not isinstance(engine, dict):
        return ["The engine must be an object."]
    name = engine.get("name")
    if name not in ENGINES:
        return [f"The engine name must be one of {', '.join(ENGINES)}."]
    if name == "probe":
        return ["The probe engine takes no options."] if "options" in engine else []
    options = engine.get("options")
    if not isinstance(options, dict) or "language" not in options:
        return [f"The engine {name} needs options.language."]
    if options["language"] not in LANGUAGES:
        return [f"The language must be one of {', '.join(LANGUAGES)}."]
    return []


def _files_errors(files: Any) -> list[str]:
    if files is None:
        return ["The files field is required."]
    if not isinstance(files, list) or not files:
        return ["The files field must be a non-empty array."]
    if len(files) > MAX_FILES_PER_REQUEST:
        return [f"The files may not have more than {MAX_FILES_PER_REQUEST} items."]
    for i, item in enumerate(files):
        if not isinstance(item, dict) or not isinstance(item.get("uuid"), str) or not item["uuid"]:
            return [f"The files.{i}.uuid field is required and must be a string."]
    return []


def parse_extraction(body: Any, kind: str) -> ExtractionRequest:
    """The typed request, or an ``ApiError`` (422) for the first kind of problem found."""
    if not isinstance(body, dict):
        body = {}
    unknown = _unknown_fields(body, kind)
    if unknown:
        raise enum_error(ErrorCode.UNKNOWN_FIELD, ", ".join(unknown))
    errors: dict[str, list[str]] = {}
    if engine_errors := _engine_errors(body.get("engine")):
        errors["engine"] = engine_errors
    if files_errors := _files_errors(body.get("files")):
        errors["files"] = files_errors
    callback = body.get("callback_url")
    if callback is not None and (
        not isinstance(callback, str) or not callback.startswith(("http://", "https://"))
    ):
        errors["callback_url"] = ["The callback url must be a valid http(s) URL."]
    if errors:
        raise validation_error(errors)
    files = [FileRequest(uuid=item["uuid"], page=item.get("page")) for item in body["files"]]
    uuids = [f.uuid for f in files]
    if len(set(uuids)) != len(uuids):
        raise enum_error(ErrorCode.DUPLICATED_FILE)
    engine = body["engine"]
    language = None if engine["name"] == "probe" else engine["options"]["language"]
    return ExtractionRequest(
        kind=kind, engine=engine["name"], language=language, files=files, callback_url=callback
    )
