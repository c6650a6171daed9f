"""The normalisation ladder and the OCR-friendly mode conversions."""

from __future__ import annotations

import io
import random

import pytest
from PIL import Image, ImageChops, ImageDraw

from airflow_provider_delix.api.models import MAX_IMAGE_BYTES
from airflow_provider_delix.core import normalize
from airflow_provider_delix.core.normalize import (
    MIN_LONG_SIDE,
    encode_page,
    needs_rework,
    reduce_lossless,
    to_ocr_mode,
)
from airflow_provider_delix.core.validation import InvalidInputError, Reason


def _noise(mode: str, size: tuple[int, int], seed: int = 7) -> Image.Image:
    """Incompressible content: the worst case for every encoder."""
    bands = len(mode)
    return Image.frombytes(mode, size, random.Random(seed).randbytes(size[0] * size[1] * bands))


def _png_bytes(im: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, "PNG", **options)
    return buffer.getvalue()


def _decoded(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def test_oversized_png_is_brought_under_the_limit_and_stays_readable() -> None:
    im = _noise("RGB", (1000, 840))
    original = _png_bytes(im)
    assert len(original) > 2_500_000
    page = encode_page(im, "png", original_size=len(original))
    assert len(page.data) <= MAX_IMAGE_BYTES
    assert page.normalization == "png->jpeg_q92"
    assert page.extension == "jpg"
    assert _decoded(page.data).size == (1000, 840)


def test_gray_content_in_rgb_is_reduced_losslessly_before_any_lossy_step() -> None:
    gray = _noise("L", (1000, 1000))
    im = gray.convert("RGB")
    original = _png_bytes(im)
    assert len(original) > MAX_IMAGE_BYTES
    page = encode_page(im, "png", original_size=len(original))
    assert page.normalization == "png->png"
    out = _decoded(page.data)
    assert out.mode == "L"
    assert ImageChops.difference(out, gray).getbbox() is None  # pixel-exact


def test_exact_palette_and_bilevel_reductions() -> None:
    colours = Image.new("RGB", (64, 64), (200, 30, 30))
    ImageDraw.Draw(colours).rectangle((10, 10, 40, 40), fill=(20, 20, 220))
    reduced, steps = reduce_lossless(colours)
    assert (reduced.mode, steps) == ("P", ["rgb->palette"])
    assert ImageChops.difference(reduced.convert("RGB"), colours).getbbox() is None
    page = Image.new("L", (64, 64), 255)
    ImageDraw.Draw(page).text((5, 5), "abc", fill=0)
    assert reduce_lossless(page.point(lambda v: 0 if v < 128 else 255))[0].mode == "1"
    assert reduce_lossless(_noise("RGB", (64, 64)))[1] == []  # nothing exact to gain


def test_optimised_png_is_tried_when_it_can_close_the_gap(monkeypatch: pytest.MonkeyPatch) -> None:
    page = Image.new("L", (600, 400), 255)
    draw = ImageDraw.Draw(page)
    for y in range(0, 400, 12):
        draw.text((4, y), "Delix OCR سطر متن " * 6, fill=random.Random(y).randint(0, 90))
    plain = len(_png_bytes(page))
    best = len(_png_bytes(page, optimize=True, compress_level=9))
    assert best < plain
    monkeypatch.setattr(normalize, "MAX_IMAGE_BYTES", (plain + best) // 2)
    assert encode_page(page, "tiff").normalization == "tiff_page->png_opt"


def test_downscaling_records_the_factor_and_keeps_the_minimum_size() -> None:
    im = _noise("RGB", (2400, 1800))
    page = encode_page(im, "jpeg")
    label = page.normalization or ""
    assert label.startswith("jpeg->jpeg_q75,downscale_")
    factor = float(label.rsplit("_", 1)[1])
    out = _decoded(page.data)
    assert len(page.data) <= MAX_IMAGE_BYTES
    assert max(out.size) >= MIN_LONG_SIDE
    assert abs(out.width - 2400 * factor) < 13  # the label rounds the factor to 2 decimals


def test_too_large_when_even_the_smallest_allowed_size_does_not_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(normalize, "MAX_IMAGE_BYTES", 20_000)
    with pytest.raises(InvalidInputError) as caught:
        encode_page(_noise("L", (1300, 900)), "bmp")
    assert caught.value.reason is Reason.TOO_LARGE
    assert "1000 px" in caught.value.message


def test_dpi_is_kept_and_scaled_with_the_page() -> None:
    im = _noise("L", (300, 200))
    im.info["dpi"] = (300, 300)
    out = _decoded(encode_page(im, "bmp").data)
    assert out.info["dpi"] == pytest.approx((300, 300), abs=0.1)
    big = _noise("RGB", (2400, 1800))
    big.info["dpi"] = (400, 400)
    page = encode_page(big, "jpeg")
    factor = float((page.normalization or "").rsplit("_", 1)[1])
    assert _decoded(page.data).info["dpi"][0] == pytest.approx(400 * factor, rel=0.02)


def test_cmyk_becomes_rgb() -> None:
    im, steps = to_ocr_mode(Image.new("CMYK", (10, 10), (0, 0, 0, 255)))
    assert (im.mode, steps) == ("RGB", ["cmyk->rgb"])
    assert im.getpixel((0, 0)) == (0, 0, 0)


def test_16bit_is_stretched_by_its_range_not_clipped() -> None:
    im = Image.new("I;16", (10, 10), 4095)  # a 12-bit scanner's white
    im.putpixel((0, 0), 0)
    out, steps = to_ocr_mode(im)
    assert (out.mode, steps) == ("L", ["16bit->8bit"])
    assert out.getextrema() == (0, 255)
    floats, steps = to_ocr_mode(Image.new("F", (4, 4), 0.5))
    assert (floats.mode, steps) == ("L", ["f->8bit"])


def test_transparency_is_flattened_onto_white() -> None:
    rgba = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    rgba.putpixel((5, 5), (0, 0, 0, 255))
    out, steps = to_ocr_mode(rgba)
    assert (out.mode, steps) == ("RGB", ["alpha->white"])
    assert out.getpixel((0, 0)) == (255, 255, 255)
    assert out.getpixel((5, 5)) == (0, 0, 0)
    la, steps = to_ocr_mode(Image.new("LA", (4, 4), (0, 0)))
    assert (la.mode, la.getpixel((0, 0)), steps) == ("L", 255, ["alpha->white"])
    opaque, steps = to_ocr_mode(Image.new("RGBA", (4, 4), (9, 9, 9, 255)))
    assert (opaque.mode, steps) == ("RGB", [])
    palette = Image.new("P", (4, 4), 3)
    palette.info["transparency"] = 3
    assert to_ocr_mode(palette)[1] == ["alpha->white"]


def test_exif_orientation_is_applied() -> None:
    im = Image.new("L", (40, 20), 255)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    buffer = io.BytesIO()
    im.save(buffer, "JPEG", exif=exif.tobytes())
    rotated = Image.open(io.BytesIO(buffer.getvalue()))
    assert needs_rework(rotated)
    out, steps = to_ocr_mode(rotated)
    assert (out.size, steps) == ((20, 40), ["exif_rotate"])
    assert not needs_rework(Image.new("RGB", (4, 4)))


def test_a_re_encoded_page_carries_no_colour_key() -> None:
    """A source's colour key (tRNS in an RGB image) is not written again: a page in OCR mode is
    opaque, and once RGB -> gray the key would land on a colour the page has."""
    page = Image.new("RGB", (300, 200), (255, 255, 255))
    ImageDraw.Draw(page).text((10, 80), "gray text", fill=(76, 76, 76))
    page.info["transparency"] = (255, 0, 0)  # red: no pixel has it
    encoded = encode_page(page, "png")
    sent = Image.open(io.BytesIO(encoded.data))
    assert "transparency" not in sent.info and sent.mode in ("L", "1", "P")
