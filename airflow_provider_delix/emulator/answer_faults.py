"""Malformed answers: the request was applied (files stored, extraction charged), the answer is bad.

Unlike the HTTP faults of :mod:`.faults`, which hit a request before it is handled, these
change the *answer* of a request that succeeded, which is what a buggy gateway, a truncated
proxy response or an API change looks like from the client. One seeded RNG draws once per
successful upload or extraction; ``malformed_rate`` is the chance that the answer is spoiled,
with one of the ``malformed_kinds`` that fit the endpoint, chosen at random. For tests that
must see every kind, ``malformed_every`` = *n* spoils every *n*-th answer of each endpoint
instead, cycling through the kinds that fit it:

* ``upload_missing_entry``: the upload answer lists one entry fewer than the files sent (all
  of them stay stored);
* ``extract_not_json``: the extraction's 201 answer is not JSON (it was charged);
* ``page_without_status``: one page of an image extraction answer has no ``status``;
* ``page_number_out_of_range``: the first page of an image extraction answer says page 7;
* ``image_processing``: an image extraction answers ``processing`` without its files (the extract
  itself is finished: ``GET /extracts/{uuid}`` returns it).
"""

from __future__ import annotations

import random
import threading
from typing import Any

from airflow_provider_delix.emulator.config import EmulatorConfig

UPLOAD = "POST /files"
IMAGE = "POST /image-extraction"
DOCUMENT = "POST /document-extraction"
KINDS: dict[str, tuple[str, ...]] = {
    "upload_missing_entry": (UPLOAD,),
    "extract_not_json": (IMAGE, DOCUMENT),
    "page_without_status": (IMAGE,),
    "page_number_out_of_range": (IMAGE,),
    "image_processing": (IMAGE,),
}
NOT_JSON = b"<html><body><h1>502 Bad Gateway</h1></body></html>"


def parse_kinds(value: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in value.split(",") if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown malformed_kinds {unknown}; known: {', '.join(KINDS)}")
    return kinds


class AnswerFaults:
    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed + 1)  # noqa: S311 (reproducible test faults, not crypto)
        self._lock = threading.Lock()
        self._answers: dict[str, int] = {}

    def reseed(self, seed: int) -> None:
        """Start afresh (reset, new seed): a test relies on which answers get spoiled, so the
        ``malformed_every`` counts restart with the draws, as a fresh emulator's would."""
        with self._lock:
            self._rng = random.Random(seed + 1)  # noqa: S311
            self._answers.clear()

    def draw(self, endpoint: str, config: EmulatorConfig) -> str | None:
        """The kind of spoiling for this answer, or None to leave it alone."""
        if config.malformed_rate <= 0 and config.malformed_every <= 0:
            return None
        fitting = [k for k in parse_kinds(config.malformed_kinds) if endpoint in KINDS[k]]
        if not fitting:
            return None
        with self._lock:
            if config.malformed_every > 0:
                seen = self._answers[endpoint] = self._answers.get(endpoint, 0) + 1
                if seen % config.malformed_every:
                    return None
                return fitting[(seen // config.malformed_every - 1) % len(fitting)]
            if self._rng.random() >= config.malformed_rate:
                return None
            return self._rng.choice(fitting)


def spoil(kind: str, body: Any) -> Any:
    """The answer ``body`` (``{"data": ...}``) spoiled as ``kind``; bytes for a non-JSON body."""
    if kind == "extract_not_json":
        return NOT_JSON
    data = body["data"]
    if kind == "upload_missing_entry":
        return {"data": data[:-1]}
    extract = dict(data)
    if kind == "image_processing":
        for key in ("files", "failed_pages", "returned_credits"):
            extract.pop(key, None)
        extract["status"] = "processing"
        return {"data": extract}
    files = [dict(f) for f in extract.get("files", [])]
    if files and isinstance(files[0].get("pages"), list) and files[0]["pages"]:
        pages = [dict(p) for p in files[0]["pages"]]
        if kind == "page_without_status":
            pages[0].pop("status", None)
        else:
            pages[0]["number"] = 7
        files[0]["pages"] = pages
    extract["files"] = files
    return {"data": extract}
