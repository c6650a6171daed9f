"""prepare_source end to end: files on disk or in memory -> upload-ready pages or invalid rows."""

from __future__ import annotations

import hashlib
import io
import os
import random
import re
from pathlib import Path
from typing import Any

import fsspec
import pytest
from PIL import Image, ImageDraw

from airflow_provider_delix.api.models import MAX_IMAGE_BYTES
from airflow_provider_delix.core import prepare
from airflow_provider_delix.core.inputs import InputRef, SourceTooLargeError, resolve_inputs
from airflow_provider_delix.core.prepare import PreparedSource, prepare_source

FILENAME = re.compile(r"^[0-9a-f]{12}-p\d+\.(png|jpg)$")


def _page(text: str = "صفحه ۱", size: tuple[int, int] = (300, 200), mode: str = "RGB") -> Image.Image:
    im = Image.new(mode, size, "white")
    ImageDraw.Draw(im).text((10, 10), text, fill="black")
    return im


def _encode(im: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, fmt, **options)
    return buffer.getvalue()


def _ref(source: str = "memory-only") -> InputRef:
    return InputRef(source=source, fs=fsspec.filesystem("memory"), path="/does/not/exist")


def _prepared(data: bytes) -> PreparedSource:
    return prepare_source(_ref(), data)


def _decoded(data: bytes | None) -> Image.Image:
    assert data is not None and len(data) <= MAX_IMAGE_BYTES
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def _one_error(source: PreparedSource) -> tuple[str | None, str]:
    (page,) = source.pages
    assert page.page_number == 1 and page.data is None and page.message
    assert "Traceback" not in page.message and "\n" not in page.message
    return page.error, page.message


@pytest.mark.parametrize(("fmt", "extension"), [("PNG", "png"), ("JPEG", "jpg")])
def test_valid_small_png_and_jpeg_are_uploaded_byte_for_byte(fmt: str, extension: str) -> None:
    data = _encode(_page(), fmt)
    result = _prepared(data)
    (page,) = result.pages
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert (page.data, page.normalization, page.error, page.message) == (data, None, None, None)
    assert page.filename == f"{result.sha256[:12]}-p1.{extension}"


def test_type_comes_from_bytes_not_the_file_name(tmp_path: Path) -> None:
    (tmp_path / "really-a-jpeg.png").write_bytes(_encode(_page(), "JPEG"))
    (tmp_path / "really-a-tiff.jpg").write_bytes(_encode(_page(), "TIFF"))
    (tmp_path / "notes.txt").write_bytes(_encode(_page(), "GIF"))
    pages = [prepare_source(ref).pages[0] for ref in resolve_inputs(str(tmp_path))]
    assert [p.normalization for p in pages] == ["gif_frame->png", None, "tiff_page->png"]
    assert [p.filename.rsplit(".", 1)[1] for p in pages] == ["png", "jpg", "png"]


def test_three_page_tiff_gives_three_png_pages() -> None:
    frames = [_page(f"page {n}", size=(200 + n, 100)) for n in (1, 2, 3)]
    data = _encode(frames[0], "TIFF", save_all=True, append_images=frames[1:], compression="tiff_deflate")
    result = _prepared(data)
    assert [p.page_number for p in result.pages] == [1, 2, 3]
    for number, page in enumerate(result.pages, start=1):
        assert page.normalization == "tiff_page->png" and page.error is None
        assert FILENAME.match(page.filename) and page.filename.endswith(f"-p{number}.png")
        assert _decoded(page.data).size == (200 + number, 100)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")
def test_tiff_truncated_after_the_first_page_keeps_that_page() -> None:
    frames = [_page(f"page {n}") for n in (1, 2, 3)]
    data = _encode(frames[0], "TIFF", save_all=True, append_images=frames[1:], compression="tiff_deflate")
    result = _prepared(data[: len(data) // 2])
    assert result.pages[0].error is None
    assert result.pages[-1].error == "corrupt_image"
    assert len(result.pages) < 3


@pytest.mark.parametrize(
    ("fmt", "label", "options"),
    [("BMP", "bmp->png", {}), ("WEBP", "webp->png", {"lossless": True}), ("WEBP", "webp->png", {})],
)
def test_bmp_and_webp_become_png(fmt: str, label: str, options: dict[str, Any]) -> None:
    (page,) = _prepared(_encode(_page(), fmt, **options)).pages
    assert page.normalization == label
    assert _decoded(page.data).format == "PNG"


def test_every_gif_frame_becomes_a_png_page() -> None:
    frames = [_page(f"frame {n}", mode="L").convert("P") for n in (1, 2, 3)]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    result = _prepared(data)
    assert [(p.page_number, p.normalization) for p in result.pages] == [
        (n, "gif_frame->png") for n in (1, 2, 3)
    ]
    assert all(_decoded(p.data).format == "PNG" for p in result.pages)


def test_oversized_png_is_reencoded_and_the_original_is_hashed() -> None:
    size = (1000, 840)
    noise = Image.frombytes("RGB", size, random.Random(3).randbytes(size[0] * size[1] * 3))
    data = _encode(noise, "PNG")
    assert len(data) > 2_500_000
    result = _prepared(data)
    (page,) = result.pages
    assert page.normalization == "png->jpeg_q92" and page.filename.endswith("-p1.jpg")
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert _decoded(page.data).size == size


def test_rotated_jpeg_is_turned_upright() -> None:
    im = _page(size=(60, 30))
    exif = im.getexif()
    exif[0x0112] = 8
    (page,) = _prepared(_encode(im, "JPEG", exif=exif.tobytes())).pages
    assert page.normalization == "exif_rotate,jpeg->jpeg_q92"
    assert _decoded(page.data).size == (30, 60)


def test_only_real_transparency_triggers_a_reencode() -> None:
    opaque = _encode(_page().convert("RGBA"), "PNG")
    assert _prepared(opaque).pages[0].data == opaque
    see_through = Image.new("RGBA", (50, 50), (0, 0, 0, 0))
    (page,) = _prepared(_encode(see_through, "PNG")).pages
    assert page.normalization == "alpha->white,png->png"
    assert _decoded(page.data).convert("L").getextrema() == (255, 255)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty_file"),
        (b"not an image, just notes\n", "unsupported_type"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\n%%EOF", "pdf_not_supported"),
    ],
)
def test_invalid_sources_get_one_invalid_page(data: bytes, reason: str) -> None:
    result = _prepared(data)
    assert _one_error(result)[0] == reason
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.pages[0].filename.endswith("-p1.bin")


def test_truncated_png_and_jpeg_are_corrupt() -> None:
    noise = Image.frombytes("L", (200, 200), random.Random(1).randbytes(40_000))
    for fmt in ("PNG", "JPEG"):
        data = _encode(noise, fmt)
        error, message = _one_error(_prepared(data[: len(data) - 300]))
        assert error == "corrupt_image"
        assert "truncated" in message


def test_truncated_png_with_alpha_is_corrupt_not_a_crash() -> None:
    rgba = Image.frombytes("RGBA", (120, 120), random.Random(2).randbytes(120 * 120 * 4))
    data = _encode(rgba, "PNG")
    assert _one_error(_prepared(data[: len(data) // 2]))[0] == "corrupt_image"


def test_decompression_bomb_is_too_large(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    assert _one_error(_prepared(_encode(_page(), "PNG")))[0] == "too_large"


def test_missing_and_unreadable_sources(tmp_path: Path) -> None:
    (missing,) = resolve_inputs(str(tmp_path / "gone.png"))
    result = prepare_source(missing)
    assert _one_error(result) == ("not_found", f"no such file: {tmp_path}/gone.png")
    assert (result.sha256, result.pages[0].filename) == ("", "unreadable-p1.bin")
    directory = InputRef(source="dir", fs=fsspec.filesystem("file"), path=str(tmp_path))
    assert _one_error(prepare_source(directory))[0] == "unreadable"


def test_read_failures_map_to_reasons_but_network_errors_propagate(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail_with(exc: Exception) -> None:
        def read(ref: InputRef) -> bytes:
            raise exc

        monkeypatch.setattr(prepare, "read_input", read)

    fail_with(PermissionError("denied"))
    assert _one_error(prepare_source(_ref())) == ("unreadable", "PermissionError: denied")
    fail_with(SourceTooLargeError("huge.tif is larger than 536870912 bytes"))
    assert _one_error(prepare_source(_ref()))[0] == "too_large"
    fail_with(ConnectionError("reset by peer"))
    with pytest.raises(ConnectionError):
        prepare_source(_ref())


def test_given_bytes_are_not_read_again() -> None:
    (page,) = prepare_source(_ref(), _encode(_page(), "PNG")).pages
    assert page.error is None


def test_non_utf8_local_file_name(tmp_path: Path) -> None:
    data = _encode(_page(), "PNG")
    with open(os.fsencode(tmp_path) + b"/scan-\xff.png", "wb") as handle:
        handle.write(data)
    (ref,) = resolve_inputs(str(tmp_path))
    result = prepare_source(ref)
    assert result.ref.source.endswith("scan-\\xff.png")
    assert result.pages[0].data == data
    assert FILENAME.match(result.pages[0].filename)


def test_a_page_sent_as_is_carries_the_source_hash_so_planning_does_not_hash_it_again() -> None:
    png = _encode(_page(), "PNG")
    (as_is,) = prepare_source(_ref(), png).pages
    assert as_is.data == png and as_is.data_sha256 == hashlib.sha256(png).hexdigest()
    (reencoded,) = prepare_source(_ref(), _encode(_page(mode="CMYK"), "JPEG")).pages  # re-encoded
    assert reencoded.normalization is not None and reencoded.data_sha256 is None


def _bmp_with_zero_alpha(im: Image.Image) -> bytes:
    """A 32-bit BMP with an alpha mask whose alpha bytes are all 0, as many Windows tools write
    it (BMP viewers ignore that byte); Pillow reads it as RGBA, fully transparent."""
    import struct

    width, height = im.size
    rgb = im.convert("RGB")
    rows = (
        b"".join(bytes((b, g, r, 0)) for r, g, b in (rgb.getpixel((x, y)) for x in range(width)))  # type: ignore[misc]
        for y in range(height - 1, -1, -1)
    )
    pixels = b"".join(rows)
    dib = struct.pack("<IiiHHIIiiII", 124, width, height, 1, 32, 3, len(pixels), 2835, 2835, 0, 0)
    dib += struct.pack("<IIII", 0x00FF0000, 0x0000FF00, 0x000000FF, 0xFF000000)
    dib = dib.ljust(124, b"\0")
    return b"BM" + struct.pack("<IHHI", 14 + 124 + len(pixels), 0, 0, 14 + 124) + dib + pixels


def test_a_bmp_whose_alpha_is_zero_everywhere_keeps_its_text() -> None:
    """Flattening that alpha onto white would send (and pay for) a blank page."""
    data = _bmp_with_zero_alpha(_page("SALAM 12345", size=(200, 60)))
    assert Image.open(io.BytesIO(data)).mode == "RGBA"
    (page,) = _prepared(data).pages
    assert page.normalization is not None and "zero_alpha->dropped" in page.normalization
    assert _decoded(page.data).convert("L").getextrema()[0] < 128, "the text was lost: a blank page"


def test_messages_of_damaged_files_are_the_same_on_every_run() -> None:
    """Pillow names the buffer it could not identify by its memory address: the row's message
    must not change from run to run, or rows of the same damage cannot be grouped."""
    png = _encode(_page(), "PNG")
    broken = png[:8] + b"\x00" * 40  # the signature, then no valid header
    (page,) = _prepared(broken).pages
    assert page.error == "corrupt_image" and page.message is not None
    assert " at 0x" not in page.message and "cannot identify image file <data>" in page.message
    (pdf,) = _prepared(b"%PDF-1.4\n" + bytes(300)).pages
    assert pdf.message is not None and pdf.message.startswith("a PDF whose pages cannot be counted")


def _text_scan(size: tuple[int, int]) -> Image.Image:
    im = Image.new("L", size, 255)
    draw = ImageDraw.Draw(im)
    for y in range(40, size[1] - 40, 36):
        draw.text((40, y), "The quick brown fox 0123456789 " * 6, fill=0)
    return im


def test_a_png_saved_with_little_compression_stays_lossless() -> None:
    """Over 2 MB only because its writer hardly compressed it: a default-level PNG fits, so
    the page must not go out as a lossy JPEG (neither after a 16 -> 8 bit conversion)."""
    scan = _text_scan((2000, 1600))
    stored = _encode(scan, "PNG", compress_level=0)
    assert len(stored) > MAX_IMAGE_BYTES
    (page,) = _prepared(stored).pages
    assert page.normalization == "png->png" and _decoded(page.data).format == "PNG"
    assert list(_decoded(page.data).getdata()) == list(scan.getdata()), "not lossless"
    noise = random.Random(7).randbytes(scan.width * scan.height)  # sensor noise in the low byte
    deep = Image.frombytes("I;16", scan.size, bytes(b for pair in zip(noise, scan.tobytes()) for b in pair))
    stored = _encode(deep, "PNG")  # the default level: its own size says nothing of the 8-bit page
    assert len(stored) > MAX_IMAGE_BYTES
    (page,) = _prepared(stored).pages
    assert page.normalization is not None and page.normalization.endswith("png->png")
    assert _decoded(page.data).format == "PNG"


def test_a_png_over_2_mb_only_because_of_its_metadata_stays_lossless() -> None:
    """A small scan carrying megabytes of XMP/text: its pixels fit losslessly, so the page must
    not go out as a lossy JPEG because the file is large."""
    from PIL import PngImagePlugin

    scan = _text_scan((1200, 900))
    info = PngImagePlugin.PngInfo()
    info.add_text("XML:com.adobe.xmp", "x" * (3 * MAX_IMAGE_BYTES // 2), zip=False)
    stored = _encode(scan, "PNG", pnginfo=info)
    assert len(stored) > MAX_IMAGE_BYTES
    (page,) = _prepared(stored).pages
    assert page.normalization == "png->png" and _decoded(page.data).format == "PNG"
    assert len(page.data) < MAX_IMAGE_BYTES // 4, "the metadata is dropped"
    assert list(_decoded(page.data).getdata()) == list(scan.getdata()), "not lossless"


def test_every_frame_of_an_animated_png_gets_its_page() -> None:
    """An APNG shows its first frame to a decoder that does not know APNG: sent as is, the
    other frames would be lost without a row. It is read frame by frame, like a GIF."""
    frames = [_page("frame one"), _page("frame two")]
    stored = _encode(frames[0], "PNG", save_all=True, append_images=frames[1:])
    assert prepare.animated_png(stored) and not prepare.animated_png(_encode(frames[0], "PNG"))
    pages = _prepared(stored).pages
    assert [p.page_number for p in pages] == [1, 2]
    for page, frame in zip(pages, frames, strict=True):
        assert page.error is None and page.normalization == "png->png"
        assert list(_decoded(page.data).convert("RGB").getdata()) == list(frame.getdata())


def test_an_apng_is_found_behind_many_text_chunks() -> None:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for n in range(100):
        info.add_text(f"k{n}", "v")
    frames = [_page("frame one"), _page("frame two")]
    stored = _encode(frames[0], "PNG", save_all=True, append_images=frames[1:], pnginfo=info)
    assert prepare.animated_png(stored)
    assert [p.page_number for p in _prepared(stored).pages] == [1, 2]


def test_an_apng_frame_too_large_to_decode_whole_is_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its seek would decode the previous frame whole, and the reduced decode reads the file's
    own first frame: frames past the first on such a canvas get a too_large row each."""
    from airflow_provider_delix.core import decode_limits

    frames = [_page("frame one"), _page("frame two"), _page("frame three")]
    stored = _encode(frames[0], "PNG", save_all=True, append_images=frames[1:])
    monkeypatch.setattr(decode_limits, "WORK_BYTES", 300 * 200 * 4 // 3)
    pages = _prepared(stored).pages
    assert [(p.page_number, p.error) for p in pages] == [(1, None), (2, "too_large"), (3, "too_large")]
