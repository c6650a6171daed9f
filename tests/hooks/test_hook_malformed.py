"""Malformed answers to applied requests (emulator ``malformed_rate``): the hook says which
request, which connection, and hands back the uuids an upload answer did name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_delix.api.errors import DelixResponseError
from airflow_provider_delix.api.models import PageStatus
from airflow_provider_delix.emulator.scans import make_png
from airflow_provider_delix.hooks.delix import DelixHook


def spoiling(emulator_factory: Callable[..., Any], kind: str) -> Any:
    return emulator_factory(malformed_rate=1.0, malformed_kinds=kind)


def test_an_upload_answer_short_of_an_entry_names_the_stored_uuids(
    emulator_factory: Callable[..., Any], connect: Callable[..., str]
) -> None:
    emulator = spoiling(emulator_factory, "upload_missing_entry")
    hook = DelixHook(connect(emulator))
    with pytest.raises(DelixResponseError) as info:
        hook.upload_files([("a.png", make_png("a")), ("b.png", make_png("b")), ("c.png", make_png("c"))])
    message = str(info.value)
    assert "2 upload entries for 3 files" in message
    assert "the upload of 3 file(s)" in message and "connection 'delix_test'" in message
    stored = {f.uuid for f in DelixHook(connect(emulator)).list_files()}
    assert len(stored) == 3 and set(info.value.uuids) < stored and len(info.value.uuids) == 2
    assert emulator.stats()["faults"] == {"upload_missing_entry": 1}


def test_an_extraction_answer_that_is_not_json_names_the_request(
    emulator_factory: Callable[..., Any], connect: Callable[..., str]
) -> None:
    emulator = spoiling(emulator_factory, "extract_not_json")
    hook = DelixHook(connect(emulator))
    (stored,) = hook.upload_files([("a.png", make_png("a"))])
    with pytest.raises(DelixResponseError, match=r"image extraction of 1 file.*connection 'delix_test'"):
        hook.extract_images([stored.uuid])  # type: ignore[union-attr]
    assert emulator.stats()["credits"]["charged"] == 200, "the request was applied and paid"


@pytest.mark.parametrize(
    ("kind", "number", "status"),
    [("page_without_status", 1, ""), ("page_number_out_of_range", 7, PageStatus.PROCESSED)],
)
def test_odd_pages_are_parsed_not_fatal(
    emulator_factory: Callable[..., Any], connect: Callable[..., str], kind: str, number: int, status: str
) -> None:
    emulator = spoiling(emulator_factory, kind)
    hook = DelixHook(connect(emulator))
    (stored,) = hook.upload_files([("a.png", make_png("a"))])
    extract = hook.extract_images([stored.uuid])  # type: ignore[union-attr]
    (page,) = extract.files[0].pages or ()
    assert (page.number, page.status) == (number, status)


def test_an_image_extract_answered_as_processing_is_finished_on_the_next_poll(
    emulator_factory: Callable[..., Any], connect: Callable[..., str]
) -> None:
    emulator = spoiling(emulator_factory, "image_processing")
    hook = DelixHook(connect(emulator))
    (stored,) = hook.upload_files([("a.png", make_png("a"))])
    extract = hook.extract_images([stored.uuid])  # type: ignore[union-attr]
    assert not extract.is_processed and extract.files == ()
    again = hook.get_extract(extract.uuid)
    assert again.is_processed and again.files[0].pages and again.files[0].pages[0].text == "a"
