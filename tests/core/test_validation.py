"""Type detection by magic bytes and the pre-upload checks, without any API call."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from airflow_provider_delix.core.validation import (
    InvalidInputError,
    Reason,
    check_supported,
    decode_errors,
    detect_kind,
    open_image,
    short_error,
)

MINIMAL_PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def _encode(fmt: str, mode: str = "RGB", **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (40, 30), "white" if mode != "P" else 0).save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fmt", "kind"),
    [
        ("PNG", "png"),
        ("JPEG", "jpeg"),
        ("TIFF", "tiff"),
        ("BMP", "bmp"),
        ("WEBP", "webp"),
        ("GIF", "gif"),
    ],
)
def test_each_image_type_is_detected_from_its_bytes(fmt: str, kind: str) -> None:
    data = _encode(fmt)
    assert detect_kind(data) == kind
    assert check_supported(data) == kind


def test_big_endian_tiff_and_pdf_with_leading_junk() -> None:
    assert detect_kind(b"MM\x00*" + b"\x00" * 20) == "tiff"
    assert detect_kind(b"\r\n" + MINIMAL_PDF) == "pdf"


def test_empty_file() -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_supported(b"")
    assert caught.value.reason is Reason.EMPTY_FILE


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (b"hello world\nsecond line\n", "text/plain"),
        ("متن فارسی، نه تصویر".encode() * 400, "text/plain"),  # multi-byte text cut by the sample
        (b"PK\x03\x04" + b"\x00" * 40, "application/zip"),
        (b"\x00\x00\x00\x18ftypavif" + b"\x00" * 40, "image/avif"),
        (bytes(range(256)), "application/octet-stream"),
        (b"P5\n128 128\n65535\n" + bytes(range(256)) * 4, "image/x-portable-anymap"),  # 16-bit PGM
        (b"\xff\x0a\xfa\x7f" + bytes(64), "image/jxl"),
        (b"\x00\x00\x01\x00\x01\x00" + bytes(64), "image/vnd.microsoft.icon"),
        (b"BM", "text/plain"),  # too short to be a BMP header
    ],
)
def test_unsupported_types_say_what_they_are(data: bytes, mime: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_supported(data)
    assert caught.value.reason is Reason.UNSUPPORTED_TYPE
    assert caught.value.message.startswith(f"{mime} is not")
    assert "\n" not in caught.value.message


def test_text_message_matches_the_documented_shape() -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_supported(b"just some notes\n")
    assert caught.value.message.startswith('text/plain is not an image: starts with "just some notes\\n"')


def test_pdf_is_refused_with_its_own_reason() -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_supported(MINIMAL_PDF)
    assert caught.value.reason is Reason.PDF_NOT_SUPPORTED
    assert "WRONG_FILE_TYPE" in caught.value.message


def test_reason_codes_are_stable() -> None:
    # Values are part of the output contract: new ones may come, none may go or change.
    assert {r.value for r in Reason} >= {
        "empty_file",
        "unsupported_type",
        "corrupt_image",
        "unsupported_codec",
        "not_found",
        "pdf_not_supported",
        "too_large",
        "unreadable",
    }


def test_decode_errors_maps_pillow_failures_to_one_line_reasons() -> None:
    with pytest.raises(InvalidInputError) as caught, decode_errors("page 2"):
        raise SyntaxError("broken PNG file\nwith a second line")
    assert caught.value.reason is Reason.CORRUPT_IMAGE
    assert caught.value.message == "page 2: SyntaxError: broken PNG file with a second line"
    with pytest.raises(InvalidInputError) as caught, decode_errors("x"):
        raise Image.DecompressionBombError("Image size (1 pixels) exceeds limit")
    assert caught.value.reason is Reason.TOO_LARGE


def test_open_image_refuses_decompression_bombs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(InvalidInputError) as caught:
        open_image(_encode("PNG"), "png")
    assert caught.value.reason is Reason.TOO_LARGE


def test_open_image_uses_only_the_detected_plugin() -> None:
    with pytest.raises(InvalidInputError) as caught:
        open_image(_encode("GIF"), "png")
    assert caught.value.reason is Reason.CORRUPT_IMAGE


def test_short_error_is_bounded() -> None:
    assert len(short_error(ValueError("x" * 1000))) == 200
    assert short_error(OSError()) == "OSError: no details"
