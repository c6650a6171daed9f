"""Decoder messages end up with the file they are about, on the thread that decoded it.

Before, libtiff's errors went to C stderr (``tempfile.tif: ...``) and Pillow's warnings to the
log, neither naming the scan. These tests decode real files on several threads at once and
check that each message is attached to, or logged with, its own file and nobody else's.
"""

from __future__ import annotations

import io
import logging
import threading
import warnings
from typing import Any

import fsspec
import pytest
from PIL import Image, ImageDraw

from airflow_provider_delix.core.codes import Reason
from airflow_provider_delix.core.decoder_notes import collect, libtiff
from airflow_provider_delix.core.inputs import InputRef
from airflow_provider_delix.core.pipeline_prefetch import prepare_in_parallel
from airflow_provider_delix.core.prepare import PreparedSource, prepare_source

PREPARE_LOG = "airflow_provider_delix.core.prepare"


def _encode(im: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, fmt, **options)
    return buffer.getvalue()


def _page(size: tuple[int, int] = (300, 200)) -> Image.Image:
    im = Image.new("L", size, 255)
    ImageDraw.Draw(im).text((10, 10), "scan", fill=0)
    return im


def _ref(name: str) -> InputRef:
    return InputRef(source=name, fs=fsspec.filesystem("memory"), path="/nowhere")


def _damaged_deflate_tiff() -> bytes:
    data = bytearray(_encode(_page(), "TIFF", compression="tiff_adobe_deflate"))
    for index in range(8, 64):  # the strip's zlib header: libtiff reports "incorrect header check"
        data[index] ^= 0x5A
    return bytes(data)


def _needs_libtiff() -> None:
    if libtiff() is None:
        pytest.skip("Pillow's libtiff was not found (not Linux?): its messages stay on stderr")


def test_libtiff_error_goes_to_the_row_and_the_log_not_to_stderr(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    _needs_libtiff()
    with caplog.at_level(logging.WARNING, logger=PREPARE_LOG):
        (page,) = prepare_source(_ref("archive/box 3/letter.tif"), _damaged_deflate_tiff()).pages
    assert page.error == Reason.CORRUPT_IMAGE
    assert page.message is not None and "(decoder: libtiff ZIPDecode: Decoding error" in page.message
    assert "\n" not in page.message
    (record,) = [r for r in caplog.records if r.name == PREPARE_LOG]
    assert record.getMessage().startswith("archive/box 3/letter.tif, page 1: decoder messages: libtiff")
    assert "incorrect header check" not in capfd.readouterr().err


def test_libtiff_errors_outside_a_collection_still_reach_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    _needs_libtiff()
    with collect():
        pass  # installs the handler
    with pytest.raises(OSError), Image.open(io.BytesIO(_damaged_deflate_tiff())) as im:
        im.load()
    assert "incorrect header check" in capfd.readouterr().err


def test_python_warning_is_logged_with_the_file_name(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Over MAX_IMAGE_PIXELS but under twice it: Pillow warns (DecompressionBombWarning) and reads.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50_000)
    data = _encode(_page((300, 200)), "PNG")
    with caplog.at_level(logging.WARNING, logger=PREPARE_LOG):
        (page,) = prepare_source(_ref("big/page.png"), data).pages
    assert page.error is None and page.data == data
    (record,) = [r for r in caplog.records if r.name == PREPARE_LOG]
    assert record.getMessage().startswith("big/page.png, page 1: decoder messages: DecompressionBombWarning")


def test_warnings_outside_a_collection_are_left_alone() -> None:
    with collect():
        pass  # installs the showwarning wrapper
    with pytest.warns(UserWarning, match="not about a scan"):
        warnings.warn("not about a scan", UserWarning, stacklevel=1)


def test_pillow_log_records_are_collected_instead_of_logged(caplog: pytest.LogCaptureFixture) -> None:
    with collect() as notes:
        logging.getLogger("PIL.TiffImagePlugin").error("More samples per pixel than can be decoded: %s", 9)
        logging.getLogger("PIL.TiffImagePlugin").debug("tag details")  # below WARNING: not a note
    assert notes == ["PIL.TiffImagePlugin: More samples per pixel than can be decoded: 9"]
    assert not [r for r in caplog.records if r.name.startswith("PIL") and r.levelno >= logging.WARNING]


def test_collections_nest_and_stay_on_their_thread() -> None:
    seen: dict[str, list[str]] = {}
    with collect() as outer:
        with collect() as inner:
            warnings.warn("inner note", UserWarning, stacklevel=1)

        def elsewhere() -> None:
            with collect() as mine:
                warnings.warn("other thread note", UserWarning, stacklevel=1)
            seen["thread"] = mine

        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
        warnings.warn("outer note", UserWarning, stacklevel=1)
    assert inner == ["UserWarning: inner note"]
    assert outer == ["UserWarning: outer note"]
    assert seen["thread"] == ["UserWarning: other thread note"]


def test_parallel_preparation_attributes_every_message_to_its_own_file(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _needs_libtiff()
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 60_000)
    files: dict[str, bytes] = {}
    for n in range(24):
        if n % 3 == 0:
            files[f"tiff-{n}.tif"] = _damaged_deflate_tiff()
        elif n % 3 == 1:  # a different size each: Python shows a warning text once per place
            files[f"big-{n}.png"] = _encode(_page((300 + n, 200)), "PNG")
        else:
            files[f"clean-{n}.png"] = _encode(_page((200, 100)), "PNG")
    with caplog.at_level(logging.WARNING, logger=PREPARE_LOG):
        results: list[PreparedSource] = list(
            prepare_in_parallel(
                [_ref(name) for name in files], lambda ref: prepare_source(ref, files[ref.source]), workers=4
            )
        )
    noted = {r.getMessage().split(",", 1)[0]: r.getMessage() for r in caplog.records if r.name == PREPARE_LOG}
    assert set(noted) == {name for name in files if not name.startswith("clean")}
    for name, message in noted.items():
        assert ("libtiff" in message) == name.startswith("tiff"), message
        assert ("DecompressionBombWarning" in message) == name.startswith("big"), message
    for result in results:
        (page,) = result.pages
        expected = Reason.CORRUPT_IMAGE if result.ref.source.startswith("tiff") else None
        assert page.error == expected
        if page.message:
            assert page.message.count("libtiff") == 1
