"""JPEG 2000 and HEIC scans, and files whose codec this build lacks, built for real in each test.

The codec cases are files a user's archive really had (a WebP-compressed TIFF, a JPEG-compressed
BMP): they are well-formed, so they must say ``unsupported_codec`` and name the codec, never
``corrupt_image``. Pillow cannot write them here, so a valid file's compression field is patched.
"""

from __future__ import annotations

import io
import struct
import sys
from typing import Any

import fsspec
import pytest
from PIL import Image, ImageChops, ImageDraw

from airflow_provider_delix.core.codes import Reason
from airflow_provider_delix.core.decoder_notes import tiff_codec_configured
from airflow_provider_delix.core.inputs import InputRef
from airflow_provider_delix.core.prepare import PreparedSource, prepare_source
from airflow_provider_delix.core.validation import InvalidInputError, check_supported, detect_kind

WEBP_TIFF = 50001
JPEG2000_TIFF = 34712


def _page(text: str = "JPEG 2000 ۱۲۳", size: tuple[int, int] = (320, 200)) -> Image.Image:
    im = Image.new("RGB", size, "white")
    ImageDraw.Draw(im).text((10, 10), text, fill=(20, 30, 160))
    return im


def _encode(im: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, fmt, **options)
    return buffer.getvalue()


def _prepared(data: bytes, name: str = "scans/x") -> PreparedSource:
    return prepare_source(InputRef(source=name, fs=fsspec.filesystem("memory"), path="/nowhere"), data)


def _decoded(data: bytes | None) -> Image.Image:
    assert data is not None
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def _tiff_with_compression(data: bytes, value: int, page: int = 1) -> bytes:
    """A little-endian classic TIFF with tag 259 of IFD number ``page`` set to ``value``."""
    patched = bytearray(data)
    assert patched[:4] == b"II*\x00"
    offset = struct.unpack_from("<I", patched, 4)[0]
    for _ in range(page - 1):
        count = struct.unpack_from("<H", patched, offset)[0]
        offset = struct.unpack_from("<I", patched, offset + 2 + 12 * count)[0]
    count = struct.unpack_from("<H", patched, offset)[0]
    for index in range(count):
        entry = offset + 2 + 12 * index
        if struct.unpack_from("<H", patched, entry)[0] == 259:
            struct.pack_into("<H", patched, entry + 8, value)
            return bytes(patched)
    raise AssertionError("no compression tag")


# ------------------------------------------------------------------ JPEG 2000


@pytest.mark.parametrize(
    ("options", "signature"),
    [({}, b"\x00\x00\x00\x0cjP  \r\n\x87\n"), ({"no_jp2": True}, b"\xff\x4f\xff\x51")],
)
def test_jpeg2000_is_converted_to_png_without_loss(options: dict[str, Any], signature: bytes) -> None:
    original = _page()
    data = _encode(original, "JPEG2000", irreversible=False, **options)  # the reversible 5/3 wavelet
    assert data.startswith(signature) and detect_kind(data) == "jpeg2000"
    (page,) = _prepared(data).pages
    assert (page.error, page.normalization) == (None, "jpeg2000->png")
    assert page.filename.endswith("-p1.png")
    assert ImageChops.difference(_decoded(page.data).convert("RGB"), original).getbbox() is None


def test_sixteen_bit_jpeg2000_is_stretched_to_eight_bits() -> None:
    deep = Image.new("I;16", (200, 100), 0)
    ImageDraw.Draw(deep).rectangle((20, 20, 120, 60), fill=4000)  # a 12-bit scan's white
    (page,) = _prepared(_encode(deep, "JPEG2000", irreversible=False)).pages
    assert page.normalization == "16bit->8bit,jpeg2000->png"
    assert _decoded(page.data).convert("L").getextrema() == (0, 255)


def test_truncated_jpeg2000_is_a_corrupt_image() -> None:
    data = _encode(_page(), "JPEG2000", irreversible=False)
    (page,) = _prepared(data[: len(data) // 2]).pages
    assert page.error == Reason.CORRUPT_IMAGE


# ------------------------------------------------------------------ HEIC


@pytest.mark.parametrize(
    ("brands", "kind"),
    [
        (b"heic\x00\x00\x00\x00mif1heic", "heic"),
        (b"heix\x00\x00\x00\x00mif1heix", "heic"),
        (b"hevc\x00\x00\x00\x00msf1hevc", "heic"),
        (b"mif1\x00\x00\x00\x00mif1heic", "heic"),
        (b"mif1\x00\x00\x00\x00mif1avif", None),  # an AVIF still image, not HEVC
        (b"avif\x00\x00\x00\x00mif1avif", None),
        (b"isom\x00\x00\x00\x00isomiso2", None),  # an MP4 video
    ],
)
def test_heic_is_detected_by_its_ftyp_brands(brands: bytes, kind: str | None) -> None:
    box = (8 + len(brands)).to_bytes(4, "big") + b"ftyp" + brands
    assert detect_kind(box + b"\x00" * 32) == kind


def test_heic_is_read_when_pillow_heif_is_installed() -> None:
    pillow_heif = pytest.importorskip("pillow_heif", reason="the heic extra (pillow-heif) is not installed")
    if not pillow_heif.libheif_info().get("HEIF"):
        pytest.skip("this libheif has no HEVC encoder, so no HEIC can be written for the test")
    original = _page("phone scan", size=(400, 300))
    heif = pillow_heif.from_pillow(original)
    buffer = io.BytesIO()
    heif.save(buffer, format="HEIF", quality=-1)  # -1: lossless, so the pixels can be compared
    data = buffer.getvalue()
    assert detect_kind(data) == "heic" and check_supported(data) == "heic"
    (page,) = _prepared(data, "phone/IMG_0001.HEIC").pages
    assert (page.error, page.normalization) == (None, "heic->png")
    assert _decoded(page.data).size == (400, 300)


def test_heic_without_the_plugin_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # import pillow_heif -> ImportError
    data = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    with pytest.raises(InvalidInputError) as caught:
        check_supported(data)
    assert caught.value.reason is Reason.UNSUPPORTED_TYPE
    assert caught.value.message.startswith("image/heic needs the pillow-heif plugin")
    assert "airflow-provider-delix[heic]" in caught.value.message
    (page,) = _prepared(data).pages
    assert page.error == Reason.UNSUPPORTED_TYPE


# ------------------------------------------------------------------ codecs this build lacks


def _webp_tiff_expectation() -> bool:
    configured = tiff_codec_configured(WEBP_TIFF)
    if configured is None:
        pytest.skip("Pillow's libtiff was not found (not Linux?): its codecs cannot be queried")
    return configured


def test_webp_compressed_tiff_is_an_unsupported_codec_not_a_corrupt_image() -> None:
    if _webp_tiff_expectation():
        # This libtiff has WebP: a real one must convert. (Pillow then writes one too.)
        (page,) = _prepared(_encode(_page(), "TIFF", compression="webp", quality=100)).pages
        assert (page.error, page.normalization) == (None, "tiff_page->png")
        return
    data = _tiff_with_compression(_encode(_page(), "TIFF", compression="tiff_deflate"), WEBP_TIFF)
    (page,) = _prepared(data).pages
    assert page.error == Reason.UNSUPPORTED_CODEC
    assert (
        page.message
        == "page 1: TIFF compression 50001 (WebP) is not configured in this Pillow build's libtiff"
    )


def test_only_the_page_with_the_missing_codec_is_refused() -> None:
    if _webp_tiff_expectation():
        pytest.skip("this libtiff decodes WebP")
    pages = [_page(f"page {n}") for n in (1, 2, 3)]
    data = _encode(pages[0], "TIFF", save_all=True, append_images=pages[1:], compression="tiff_deflate")
    result = _prepared(_tiff_with_compression(data, WEBP_TIFF, page=2))
    assert [(p.page_number, p.error) for p in result.pages] == [
        (1, None),
        (2, Reason.UNSUPPORTED_CODEC),
        (3, None),
    ]


def test_tiff_compression_pillow_does_not_know_is_named() -> None:
    data = _tiff_with_compression(_encode(_page(), "TIFF", compression="tiff_deflate"), JPEG2000_TIFF)
    (page,) = _prepared(data).pages
    assert page.error == Reason.UNSUPPORTED_CODEC
    assert (
        page.message == "not a readable TIFF: TIFF compression 34712 (JPEG 2000) is not one Pillow can decode"
    )


@pytest.mark.parametrize(("value", "name"), [(4, "BI_JPEG"), (5, "BI_PNG")])
def test_jpeg_or_png_compressed_bmp_is_an_unsupported_codec(value: int, name: str) -> None:
    data = bytearray(_encode(_page(), "BMP"))
    struct.pack_into("<I", data, 30, value)  # biCompression of the BITMAPINFOHEADER
    (page,) = _prepared(bytes(data)).pages
    assert page.error == Reason.UNSUPPORTED_CODEC
    assert page.message == f"not a readable BMP: BMP compression {value} ({name}) cannot be decoded by Pillow"


def test_damaged_data_with_an_available_codec_stays_a_corrupt_image() -> None:
    data = bytearray(_encode(_page(), "TIFF", compression="tiff_adobe_deflate"))
    for index in range(8, 64):  # the first strip starts right after the header
        data[index] ^= 0x5A
    (page,) = _prepared(bytes(data)).pages
    assert page.error == Reason.CORRUPT_IMAGE
    truncated = _encode(_page(), "BMP")[:-500]
    (page,) = _prepared(truncated).pages
    assert page.error == Reason.CORRUPT_IMAGE


def test_a_later_page_with_a_scheme_pillow_does_not_know_ends_the_source_there() -> None:
    pages = [_page(f"page {n}") for n in (1, 2, 3)]
    data = _encode(pages[0], "TIFF", save_all=True, append_images=pages[1:], compression="tiff_deflate")
    result = _prepared(_tiff_with_compression(data, JPEG2000_TIFF, page=2))
    assert [(p.page_number, p.error) for p in result.pages] == [(1, None), (2, Reason.UNSUPPORTED_CODEC)]
    assert result.pages[1].message == (
        "page 2 cannot be located: TIFF compression 34712 (JPEG 2000) is not one Pillow can decode"
    )
