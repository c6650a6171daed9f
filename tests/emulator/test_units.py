"""Small pure pieces: page selectors, multipart framing, groundtruth chunk readers, settings."""

from __future__ import annotations

import pytest

from airflow_provider_delix.emulator.config import EmulatorConfig
from airflow_provider_delix.emulator.filetypes import sniff
from airflow_provider_delix.emulator.groundtruth import jpeg_comments, png_text_chunks
from airflow_provider_delix.emulator.multipart import MultipartError, parse_multipart
from airflow_provider_delix.emulator.pages import InvalidPages, select_pages

from .samples import jpeg, png


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        (None, [1, 2, 3, 4, 5]),
        ("", [1, 2, 3, 4, 5]),
        ("3-5", [3, 4, 5]),
        ("5,1, 3", [1, 3, 5]),
        (2, [2]),
    ],
)
def test_page_selectors(selector: object, expected: list[int]) -> None:
    assert select_pages(selector, 5) == expected


def test_page_selector_refusals() -> None:
    for bad in ("0", "6", "4-3", "x", "1,1", True, "1-2,4", "1,3-4"):  # a mix: not a documented form
        with pytest.raises(InvalidPages):
            select_pages(bad, 5)


def test_multipart_parts_in_order_with_binary_data() -> None:
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="file[]"; filename="a.png"\r\n'
        b"Content-Type: image/png\r\n\r\n\x00\r\n--Xy\r\n"
        b'--XyZ\r\nContent-Disposition: form-data; name="file"\r\n\r\n'
        b"second\r\n--XyZ--\r\n"
    )
    parts = parse_multipart("multipart/form-data; boundary=XyZ", body)
    assert [(p.name, p.filename, p.data) for p in parts] == [
        ("file[]", "a.png", b"\x00\r\n--Xy"),
        ("file", None, b"second"),
    ]
    for content_type, broken in [
        ("text/plain", body),
        ("multipart/form-data", body),
        ("multipart/form-data; boundary=XyZ", b"--XyZ\r\nno end"),
    ]:
        with pytest.raises(MultipartError):
            parse_multipart(content_type, broken)


def test_groundtruth_readers() -> None:
    assert png_text_chunks(png("نص", fail=True)) == {"delix:text": "نص", "delix:fail": "1"}
    assert png_text_chunks(png("latin", itxt=False))["delix:text"] == "latin"
    assert jpeg_comments(jpeg("متن", fail=True)) == ["delix:text=متن", "delix:fail=1"]
    assert (sniff(png()), sniff(jpeg()), sniff(b"junk%PDF-1.7"), sniff(b"GIF89a")) == (
        "png",
        "jpeg",
        "pdf",
        None,
    )


def test_settings_are_validated_and_coerced() -> None:
    config = EmulatorConfig().replace({"rate_429": 1, "per_page": "20", "log_requests": "true"})
    assert (config.rate_429, config.per_page, config.log_requests) == (1.0, 20, True)
    for bad in (
        {"rate_500": -0.1},
        {"per_page": 0},
        {"latency_delete": -1},
        {"credits": "lots"},
        {"color": 1},
    ):
        with pytest.raises(ValueError):
            EmulatorConfig().replace(bad)
