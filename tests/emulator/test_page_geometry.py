"""A scanned PDF page is read as a renderer shows it: turned by /Rotate, cut by the CropBox.

The emulator reads a page whose only content is one image at that image's own pixels. Those
pixels are the page only when the page shows them as stored: scanners store a landscape page
sideways and set /Rotate to show it upright, and a CropBox can hide part of the image. The
real API reads what a viewer shows, so the emulator must too, with both backends.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image, ImageDraw

from airflow_provider_delix.emulator import pdf as emulator_pdf

from .samples import Api, jpeg, scan_pdf

ENGINE_EN = {"name": "danlin", "options": {"language": "en"}}
# PIL turns counter-clockwise: the picture to store so that a page turned clockwise by
# /Rotate shows the upright picture.
STORED_FOR = {
    0: None,
    90: Image.Transpose.ROTATE_90,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_270,
}


def upright() -> Image.Image:
    """A small grayscale picture no turn or mirror maps onto itself: a dark block top left."""
    image = Image.new("L", (48, 32), 255)
    ImageDraw.Draw(image).rectangle((2, 2, 17, 9), fill=0)
    ImageDraw.Draw(image).rectangle((30, 20, 33, 29), fill=128)
    return image


def encoded(image: Image.Image, fmt: str = "PNG") -> bytes:
    sink = io.BytesIO()
    image.save(sink, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return sink.getvalue()


def decoded(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("L")


def rendered(data: bytes) -> Image.Image:
    """The page as PDFium renders it (the emulator's renderer), at the scan's 96 dpi."""
    pgm = emulator_pdf.render_page_pgm(data, 1, dpi=96)
    return Image.open(io.BytesIO(pgm)).convert("L")


def differs(one: Image.Image, other: Image.Image) -> float:
    """Mean absolute difference of two same-sized grayscale pictures (0-255)."""
    assert one.size == other.size
    pixels = list(zip(one.tobytes(), other.tobytes(), strict=True))
    return sum(abs(a - b) for a, b in pixels) / len(pixels)


@pytest.mark.parametrize("rotate", [0, 90, 180, 270])
def test_a_scan_comes_out_turned_as_its_page_shows_it(rotate: int) -> None:
    turn = STORED_FOR[rotate]
    stored = upright() if turn is None else upright().transpose(turn)
    data = scan_pdf(encoded(stored), rotate=rotate)
    scan = emulator_pdf.page_scan(data, 1)
    assert scan is not None and scan.startswith(b"\x89PNG")
    assert decoded(scan).tobytes() == upright().tobytes() and decoded(scan).size == upright().size
    assert differs(decoded(scan), rendered(data)) < 2  # what the renderer shows
    assert Image.open(io.BytesIO(scan)).info["dpi"] == pytest.approx((96, 96), abs=0.1)


def test_a_jpeg_scan_passes_through_only_unturned() -> None:
    picture = encoded(upright().convert("RGB"), "JPEG")
    assert emulator_pdf.page_scan(scan_pdf(picture), 1) == picture
    sideways = encoded(upright().convert("RGB").transpose(Image.Transpose.ROTATE_270), "JPEG")
    data = scan_pdf(sideways, rotate=270)
    scan = emulator_pdf.page_scan(data, 1)
    assert scan is not None and scan.startswith(b"\x89PNG")
    assert decoded(scan).size == upright().size and differs(decoded(scan), upright()) < 8
    assert emulator_pdf.page_jpeg(data, 1) == sideways  # groundtruth: the text it carries is the same


@pytest.mark.parametrize(
    "geometry",
    [
        {"crop": (0, 0, 1, 0.5)},  # the bottom half only
        {"crop": (0.1, 0.1, 0.9, 0.9)},
        {"margin": 20},  # the image leaves paper around it
        {"crop": (0, 0, 1, 0.5), "rotate": 90},
    ],
)
def test_a_page_that_does_not_show_its_whole_image_is_rendered(geometry: dict[str, Any]) -> None:
    for picture in (encoded(upright()), encoded(upright().convert("RGB"), "JPEG")):
        data = scan_pdf(picture, **geometry)
        assert emulator_pdf.page_scan(data, 1) is None  # the caller renders it
        assert emulator_pdf.page_jpeg(data, 1) is None  # and groundtruth does not read the JPEG


def test_groundtruth_reads_a_packed_jpeg_only_when_the_page_shows_it(api: Api) -> None:
    shown = scan_pdf(jpeg("shown text"), rotate=90)
    hidden = scan_pdf(jpeg("hidden text"), crop=(0, 0, 1, 0.5))
    shown_id, hidden_id = api.store(shown, hidden)
    body = {"engine": ENGINE_EN, "files": [{"uuid": shown_id}, {"uuid": hidden_id}]}
    data = api.documents(body).json()["data"]
    texts = [f["pages"][0]["text"] for f in data["files"]]
    assert texts[0] == "shown text"
    assert texts[1] != "hidden text" and len(texts[1].encode()) == 64  # no text layer: the fallback


def test_a_scan_past_the_pixel_cap_is_rendered_smaller_not_decoded_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An A0 scan at 600 dpi is 558 million pixels: decoded at its own resolution it takes
    gigabytes in Pillow and Tesseract. Past MAX_OCR_PIXELS the page is rendered to fit."""
    data = scan_pdf(encoded(Image.new("L", (400, 300), 255)))
    assert emulator_pdf.page_scan(data, 1) is not None
    monkeypatch.setattr(emulator_pdf, "MAX_OCR_PIXELS", 400 * 300 - 1)
    assert emulator_pdf.page_scan(data, 1) is None, "left to the renderer"
    pgm = emulator_pdf.render_page_pgm(data, 1, dpi=300)
    width, height = (int(v) for v in pgm.split(b"\n", 2)[1].split())
    assert width * height <= 400 * 300 - 1
