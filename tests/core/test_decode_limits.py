"""Reduced decoding: pages over the work limit are brought down before they are ever whole.

The limits are lowered here so that small pictures stand in for huge ones; the 11000 x 16000
case itself runs through the operator in ``tests/operators/test_memory_dag.py``.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import fsspec
import pytest
from huge_images import huge_png
from PIL import Image, ImageDraw

from airflow_provider_delix.core import decode_limits
from airflow_provider_delix.core.decode_limits import _reducible, _white
from airflow_provider_delix.core.inputs import InputRef
from airflow_provider_delix.core.png_strips import png_strips, strip_layout
from airflow_provider_delix.core.prepare import PreparedPage, prepare_source


def _picture(mode: str, size: tuple[int, int] = (203, 157)) -> Image.Image:
    """Noise, gradients and text: every PNG filter type gets used, and strips must line up."""
    rng = random.Random(7)
    im = Image.frombytes("RGBA", size, bytes(rng.randrange(256) for _ in range(size[0] * size[1] * 4)))
    draw = ImageDraw.Draw(im)
    draw.rectangle((20, 20, 150, 100), fill=(255, 255, 255, 255))
    draw.text((30, 40), "strip by strip", fill=(0, 0, 0, 255))
    draw.rectangle((0, 110, 80, 150), fill=(10, 200, 30, 0))  # a see-through corner
    if mode == "P":
        return im.convert("RGB").quantize(64)
    if mode == "I;16":
        return im.convert("L").point(lambda v: v * 200, "I").convert("I;16")
    return im.convert(mode)


def _png(im: Image.Image, **options: Any) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, "PNG", **options)
    return buffer.getvalue()


def _reference(data: bytes, factor: int) -> Image.Image:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        small, _ = _white(_reducible(im).reduce(factor))
        return small


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "P", "1", "I;16"])
@pytest.mark.parametrize("rows", [1, 6, 40, 1000])
def test_strips_reduce_to_the_same_pixels_as_the_whole_decode(mode: str, rows: int) -> None:
    im = _picture(mode)
    if mode == "P":
        im.info["transparency"] = 3  # one see-through palette entry: a tRNS chunk
    data = _png(im, transparency=im.info["transparency"]) if mode == "P" else _png(im)
    layout = strip_layout(data)
    assert layout is not None
    factor = 2 if rows % 2 == 0 or rows == 1 else 3
    out, _ = decode_limits._reduce_strips(png_strips(layout, rows * factor), im.size, factor)
    expected = _reference(data, factor)
    assert out.mode == expected.mode and out.size == expected.size == (-(-203 // factor), -(-157 // factor))
    assert out.tobytes() == expected.tobytes()


def _header(data: bytes, depth: int, colour: int, interlace: int) -> bytes:
    """The PNG with other IHDR fields (its CRC is not checked by ``strip_layout``)."""
    return data[:24] + bytes([depth, colour, 0, 0, interlace]) + data[29:]


def test_interlaced_and_16bit_colour_pngs_are_not_decoded_in_strips() -> None:
    data = _png(_picture("RGB"))
    assert strip_layout(_header(data, 8, 2, 0)) is not None
    assert strip_layout(_header(data, 8, 2, 1)) is None  # Adam7: rows are not in order
    assert strip_layout(_header(data, 16, 2, 0)) is None  # 6 bytes per pixel
    assert strip_layout(_header(data, 16, 6, 0)) is None  # 8 bytes per pixel
    assert strip_layout(b"GIF89a") is None


def _prepare(data: bytes) -> PreparedPage:
    (page,) = prepare_source(InputRef("x", fsspec.filesystem("memory"), "/x"), data).pages
    return page


def _opened(page: PreparedPage) -> Image.Image:
    assert page.data is not None, page.message
    im = Image.open(io.BytesIO(page.data))
    im.load()
    return im


@pytest.fixture
def small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Work limit 16 KB, whole-decode limit 400 KB, strips of ~2 KB: a 203x157 page is 'huge'."""
    monkeypatch.setattr(decode_limits, "WORK_BYTES", 16_000)
    monkeypatch.setattr(decode_limits, "WHOLE_BYTES", 400_000)
    monkeypatch.setattr(decode_limits, "STRIP_BYTES", 2_000)


@pytest.mark.usefixtures("small_limits")
def test_over_the_limit_png_is_reduced_flattened_and_its_dpi_scaled() -> None:
    page = _prepare(_png(_picture("RGBA"), dpi=(600, 600)))
    assert page.normalization == "reduce_1/3,alpha->white,png->png"
    im = _opened(page)
    assert im.size == (68, 53) and im.mode in ("RGB", "L", "P")
    assert im.info["dpi"] == pytest.approx((200, 200), abs=0.1)
    assert decode_limits.decoded_bytes("RGB", im.size) <= 16_000


@pytest.mark.usefixtures("small_limits")
def test_over_the_limit_jpeg_is_decoded_at_a_dct_scale_and_turned_upright() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees
    buffer = io.BytesIO()
    _picture("RGB").save(buffer, "JPEG", quality=90, exif=exif)
    page = _prepare(buffer.getvalue())
    assert page.normalization is not None and page.normalization.startswith("exif_rotate,reduce_1/4,")
    assert _opened(page).size == (40, 51)  # 157/4 and 203/4, rounded up, then turned upright


@pytest.mark.usefixtures("small_limits")
def test_formats_decoded_whole_are_reduced_or_refused_by_their_size(monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = io.BytesIO()
    _picture("RGB").save(buffer, "TIFF", compression="tiff_lzw")
    page = _prepare(buffer.getvalue())
    assert page.normalization == "reduce_1/3,tiff_page->png"
    assert _opened(page).size == (68, 53)

    monkeypatch.setattr(decode_limits, "WHOLE_BYTES", 100_000)
    page = _prepare(buffer.getvalue())
    assert page.error == "too_large" and page.data is None
    assert (
        page.message is not None
        and "203x157 px" in page.message
        and "cannot be decoded reduced" in page.message
    )


@pytest.mark.usefixtures("small_limits")
def test_a_truncated_png_decoded_in_strips_is_corrupt_not_a_crash() -> None:
    data = _png(_picture("RGB"))
    page = _prepare(data[: len(data) // 2])
    assert page.error == "corrupt_image", page.message


def test_pages_within_the_limit_are_unchanged() -> None:
    data = _png(_picture("RGB"))
    assert _prepare(data).normalization is None  # passed through byte for byte, as before


def test_the_huge_png_helper_matches_what_the_memory_test_needs(tmp_path: Path) -> None:
    path = huge_png(tmp_path / "huge.png", size=(1100, 1600))
    with Image.open(path) as im:
        assert (im.size, im.mode) == ((1100, 1600), "RGBA")
        low, high = im.getchannel("A").getextrema()
        assert (low, high) == (0, 255)  # a see-through page with opaque text on it
