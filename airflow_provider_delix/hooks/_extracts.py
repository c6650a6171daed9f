"""The hook's extract endpoints: document extraction, extract polls and paginated contents.

Kept apart from :mod:`.delix` (the connection, the session and the one request path) because
these are what the queued document path adds on top of the request path: they only call
``_call`` and read answers. :class:`DelixHook` inherits them from :class:`ExtractEndpoints`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from airflow_provider_delix.api.errors import DelixError, DelixResponseError
from airflow_provider_delix.api.models import (
    MAX_FILES_PER_REQUEST,
    MAX_PDF_PAGES,
    Engine,
    Extract,
    ExtractFilePage,
    FileIdentifier,
    Language,
    engine_body,
    hint_int,
    read_int,
)
from airflow_provider_delix.hooks._files import RequestingHook

log = logging.getLogger(__name__)

DocumentItem = str | FileIdentifier | tuple[str, str | None]


class _Hook(RequestingHook, Protocol):
    """What these endpoints use of :class:`~airflow_provider_delix.hooks.delix.DelixHook`."""

    delix_conn_id: str
    _sleep: Callable[[float], None]

    def get_extract(self, uuid: str) -> Extract: ...


class ExtractEndpoints:
    """``extract_documents``, ``get_extract``, ``wait_for_extract``, ``iter_extract_pages``."""

    def extract_documents(
        self: _Hook,
        files: Sequence[DocumentItem],
        engine: Engine | str = Engine.DANLIN,
        language: Language | str | None = None,
        callback_url: str | None = None,
    ) -> Extract:
        """Extract text from 1 to 5 stored PDFs, optionally only some pages of each.

        Each item is a uuid, a :class:`FileIdentifier`, or ``(uuid, pages)`` with pages like
        ``"3-16"`` or ``"1,4,15"``. The answer is either finished (synchronous) or queued with
        status ``processing``: then poll :meth:`get_extract` (or :meth:`wait_for_extract`) and
        read pages with :meth:`iter_extract_pages`. ``callback_url`` only signals completion.
        """
        identifiers = [_identifier(item) for item in files]
        if not 1 <= len(identifiers) <= MAX_FILES_PER_REQUEST:
            raise ValueError(
                f"extract_documents takes 1 to {MAX_FILES_PER_REQUEST} files, got {len(identifiers)}."
            )
        body: dict[str, Any] = {
            "engine": engine_body(engine, language),
            "files": [identifier.to_api() for identifier in identifiers],
        }
        if callback_url:
            body["callback_url"] = callback_url
        what = f"the document extraction of {len(identifiers)} file(s)"
        lost = [0]
        payload = self._call("POST", "document-extraction", what, json=body, paid=True, lost=lost)
        with self._reading(what, lost):
            return dataclasses.replace(Extract.from_api(payload), lost_attempts=lost[0])

    def get_extract(self: _Hook, uuid: str) -> Extract:
        """The extract now: ``processing`` or ``processed``."""
        payload = self._call("GET", f"extracts/{uuid}", f"extract {uuid}")
        with self._reading(f"extract {uuid}"):
            return Extract.from_api(payload)

    def wait_for_extract(
        self: _Hook, uuid: str, *, poll_interval: float = 60.0, timeout: float = 3600.0
    ) -> Extract:
        """Poll until the extract is processed (the vendor suggests about once a minute)."""
        deadline = time.monotonic() + timeout
        while True:
            extract = self.get_extract(uuid)
            if extract.is_processed:
                return extract
            if time.monotonic() + poll_interval > deadline:
                raise DelixError(
                    f"Extract {uuid} was still processing after {timeout:.0f} s "
                    f"(connection '{self.delix_conn_id}'); poll it again later.",
                    conn_id=self.delix_conn_id,
                )
            self._sleep(poll_interval)

    def iter_extract_pages(self: _Hook, extract_uuid: str, file_uuid: str) -> Iterator[ExtractFilePage]:
        """All pages of one file of a finished asynchronous extract, following the pagination.

        Pages are fetched by number from this connection's host; the absolute ``next`` links in
        the answer are not followed, so the key is never sent to a host the answer names. The
        paginator's own word (``meta.last_page``, else ``links.next``) is not trusted alone: an
        inflated ``last_page`` made one request per promised page, through empty ones (see
        :func:`_past_the_end`).
        """
        endpoint = f"extracts/{extract_uuid}/files/{file_uuid}/contents"
        page = 1
        read = 0
        empty = 0  # empty pages in a row
        seen: set[int] = set()  # page numbers read so far
        while True:
            what = f"page {page} of the contents of file {file_uuid} in extract {extract_uuid}"
            payload = self._call("GET", endpoint, what, params={"page": page})
            if not isinstance(payload, Mapping) or not isinstance(payload.get("data"), list):
                raise DelixResponseError(
                    f"Delix answered {what} without a 'data' list (connection '{self.delix_conn_id}').",
                    conn_id=self.delix_conn_id,
                )
            with self._reading(what):
                pages = [ExtractFilePage.from_api(item) for item in payload["data"]]
                more = _has_next_page(payload, page)
            read += len(pages)
            empty = 0 if pages else empty + 1
            repeated = bool(pages) and all(p.number in seen for p in pages)
            seen.update(p.number for p in pages)
            yield from pages
            if not more:
                return
            if repeated or page >= MAX_CONTENT_PAGES:
                # A server (or proxy) that ignores ``?page=`` answers the same entries again: no
                # PDF has more pages than the API's 150, so neither can its contents.
                log.warning(
                    "Delix's pagination of file %s in extract %s answered page %d with %s; stopped "
                    "with %d entries read.",
                    file_uuid,
                    extract_uuid,
                    page,
                    "entries already read" if repeated else "more pages than a document can have",
                    read,
                )
                return
            if _past_the_end(payload, pages, read, empty):
                log.warning(
                    "Delix's pagination of file %s in extract %s promised more pages than it holds "
                    "(meta %s); stopped after page %d with %d entries read.",
                    file_uuid,
                    extract_uuid,
                    _meta_summary(payload),
                    page,
                    read,
                )
                return
            page += 1


# Empty contents pages in a row after which a read that ``meta.total`` says is unfinished stops.
MAX_EMPTY_PAGES = 3
# Contents pages after which a read stops whatever the paginator says: a file holds at most 150.
MAX_CONTENT_PAGES = MAX_PDF_PAGES + MAX_EMPTY_PAGES


def _has_next_page(payload: Mapping[str, Any], page: int) -> bool:
    """Laravel's paginator: ``meta.last_page`` when present, else a non-null ``links.next``."""
    meta = payload.get("meta")
    if isinstance(meta, Mapping) and meta.get("last_page") is not None:
        return page < read_int(meta["last_page"], "meta.last_page", "contents page")
    links = payload.get("links")
    return isinstance(links, Mapping) and links.get("next") is not None


def _optional_meta(payload: Mapping[str, Any], key: str) -> int | None:
    """A paginator count used only as a stop hint: absent or unreadable is None, never an error."""
    meta = payload.get("meta")
    return hint_int(meta.get(key)) if isinstance(meta, Mapping) else None


def _past_the_end(
    payload: Mapping[str, Any], pages: Sequence[ExtractFilePage], read: int, empty: int
) -> bool:
    """Whether a page the paginator says is not the last is the last all the same.

    A paginator fills every page but the last, so: an empty page once ``meta.total`` entries
    are read (or with no ``total``) is past the end, and so is a short page (fewer entries than
    ``meta.per_page``) once ``total`` entries are read. While ``total`` says entries are still
    to come, an empty page is a glitch, not the end: stopping there would leave paid pages
    without text (``no_result``, paid again by the next run); the read goes on to ``last_page``,
    or gives up after ``MAX_EMPTY_PAGES`` empty pages in a row (a paginator with only ``next``
    links could otherwise lead on for ever). A full page (or one of unknown size) is never taken
    as the end, even once ``total`` is reached: a ``total`` below what the pages hold must not
    lose entries, and the next request tells (empty, or more). So an inflated ``last_page``
    costs at most one request more.
    """
    total = _optional_meta(payload, "total")
    if not pages:
        return total is None or read >= total or empty >= MAX_EMPTY_PAGES
    if total is None or read < total:
        return False
    per_page = _optional_meta(payload, "per_page")
    return per_page is not None and len(pages) < per_page


def _meta_summary(payload: Mapping[str, Any]) -> str:
    meta = payload.get("meta")
    shown = {k: meta.get(k) for k in ("last_page", "total", "per_page")} if isinstance(meta, Mapping) else {}
    return ", ".join(f"{k}={v!r}" for k, v in shown.items()) or "none"


def _identifier(item: DocumentItem) -> FileIdentifier:
    if isinstance(item, FileIdentifier):
        return item
    if isinstance(item, tuple):
        return FileIdentifier(uuid=item[0], page=item[1])
    return FileIdentifier(uuid=item)
