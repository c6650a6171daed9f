"""The ``tesseract`` backend reads real rendered text (few, small images: OCR is slow on 2 cores)."""

from __future__ import annotations

import io
import subprocess
from typing import Any

import pytest
from PIL import Image, ImageDraw, ImageFont

from airflow_provider_delix.emulator.tesseract import TesseractBackend

from .samples import Api, pdf, scan_pdf

pytestmark = pytest.mark.tesseract


def _font(language: str) -> str:
    out = subprocess.run(
        ["fc-list", f":lang={language}", "file"], capture_output=True, text=True, check=True
    ).stdout
    files = sorted(line.split(":")[0] for line in out.splitlines() if line.strip())
    preferred = [f for f in files if f.endswith(("nazli.ttf", "DejaVuSans.ttf"))]
    return (preferred or files)[0]


def render_line(text: str, language: str, size: int = 44) -> bytes:
    """One line of black text on white, shaped by raqm (right to left for Persian)."""
    face = ImageFont.truetype(_font(language), size, layout_engine=ImageFont.Layout.RAQM)
    direction = "rtl" if language in {"fa", "ar"} else "ltr"
    left, top, right, bottom = face.getbbox(text, direction=direction, language=language)
    image = Image.new("L", (right - left + 2 * size, bottom - top + 2 * size), 255)
    ImageDraw.Draw(image).text(
        (size - left, size - top), text, font=face, fill=0, direction=direction, language=language
    )
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def test_ocr_image_reads_english_and_persian() -> None:
    backend = TesseractBackend()
    assert backend.ocr_image(render_line("Hello from the emulator", "en"), "en") == "Hello from the emulator"
    persian = backend.ocr_image(render_line("کتابخانه ملی ایران", "fa"), "fa")
    assert persian.split() == ["کتابخانه", "ملی", "ایران"]


def test_tesseract_emulator_over_http_images_and_rendered_pdf(emulator_factory: Any) -> None:
    api = Api(emulator_factory(ocr="tesseract"))
    image, document = api.store(render_line("Quiet river town", "en"), pdf(["Scanned PDF page"]))
    engine = {"name": "danlin", "options": {"language": "en"}}
    data = api.images({"engine": engine, "files": [{"uuid": image}]}).json()["data"]
    assert data["files"][0]["pages"][0]["text"] == "Quiet river town"
    data = api.documents({"engine": engine, "files": [{"uuid": document}]}).json()["data"]
    assert data["files"][0]["pages"][0]["text"].strip().lower() == "scanned pdf page"  # 24 pt Helvetica


def test_tesseract_reads_a_scan_as_its_page_shows_it(emulator_factory: Any) -> None:
    """Scans stored turned and shown upright by /Rotate read; a CropBox hiding the text reads nothing.

    Sideways (/Rotate 270) is what scanners write for landscape pages; upside down (/Rotate
    180) is the turn Tesseract's layout analysis does not undo on its own.
    """
    line = Image.open(io.BytesIO(render_line("Quiet river town", "en")))
    framed = Image.new("L", (line.width, line.height * 3), 255)
    framed.paste(line, (0, 0))  # the text in the top third, blank paper below
    files = [
        scan_pdf(_png(line.transpose(Image.Transpose.ROTATE_270)), rotate=270),  # stored turned clockwise
        scan_pdf(_png(line.transpose(Image.Transpose.ROTATE_180)), rotate=180),
        scan_pdf(_png(framed), crop=(0, 0, 1, 0.6)),
    ]
    api = Api(emulator_factory(ocr="tesseract"))
    uuids = api.store(*files)
    engine = {"name": "danlin", "options": {"language": "en"}}
    data = api.documents({"engine": engine, "files": [{"uuid": u} for u in uuids]}).json()["data"]
    texts = [f["pages"][0].get("text") for f in data["files"]]
    assert texts == ["Quiet river town", "Quiet river town", ""]


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()
