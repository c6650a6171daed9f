"""Files and a thin HTTP client for the emulator's conformance tests (``requests`` only).

Built here rather than imported from product helpers so these tests pin the wire format
(the groundtruth conventions, the multipart field names) independently of other modules.
"""

from __future__ import annotations

import io
import time
from typing import Any

import img2pdf
import pikepdf
import requests
from pdfs import make_pdf
from PIL import Image, PngImagePlugin

from airflow_provider_delix.emulator.testing import EmulatorHandle


def png(text: str | None = None, *, fail: bool = False, itxt: bool = True, pad: int = 0) -> bytes:
    """A 16x16 PNG; ``text`` in an iTXt (or tEXt) ``delix:text`` chunk; ``pad`` bytes of extra chunk."""
    info = PngImagePlugin.PngInfo()
    if text is not None:
        if itxt:
            info.add_itxt("delix:text", text)
        else:
            info.add_text("delix:text", text)
    if fail:
        info.add_text("delix:fail", "1")
    if pad:
        info.add_text("pad", "x" * pad)
    out = io.BytesIO()
    Image.new("L", (16, 16), 255).save(out, "PNG", pnginfo=info)
    return out.getvalue()


def png_of_size(size: int) -> bytes:
    """A valid PNG of exactly ``size`` bytes (padding grows the file byte for byte)."""
    base = len(png(pad=1))
    data = png(pad=size - base + 1)
    assert len(data) == size
    return data


def jpeg(text: str | None = None, *, fail: bool = False) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (255, 255, 255)).save(out, "JPEG")
    data = out.getvalue()
    comments = [f"delix:text={text}".encode()] if text is not None else []
    comments += [b"delix:fail=1"] if fail else []
    segments = b"".join(b"\xff\xfe" + (len(c) + 2).to_bytes(2, "big") + c for c in comments)
    return data[:2] + segments + data[2:]


def mpo(text: str) -> bytes:
    """A JPEG with an MPF segment and a second picture, as phone cameras write ("MPO" to Pillow).

    The ``delix:text`` comment is in the first picture, the one a JPEG reader decodes."""
    out = io.BytesIO()
    first, second = Image.new("RGB", (16, 16), (255, 255, 255)), Image.new("RGB", (8, 8), (0, 0, 0))
    first.save(out, "MPO", save_all=True, append_images=[second], comment=f"delix:text={text}".encode())
    data = out.getvalue()
    assert data.startswith(b"\xff\xd8\xff") and Image.open(io.BytesIO(data)).format == "MPO"
    return data


def image_bytes(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (255, 255, 255)).save(out, fmt)
    return out.getvalue()


pdf = make_pdf


def scan_pdf(
    image_file: bytes,
    *,
    rotate: int = 0,
    crop: tuple[float, float, float, float] | None = None,
    margin: float = 0,
) -> bytes:
    """One page that is the image (img2pdf), then given /Rotate, a CropBox or a wider MediaBox.

    ``crop`` is (left, bottom, right, top) in fractions of the page; ``margin`` widens the
    MediaBox right and up by that many points, leaving paper the image does not cover.
    """
    with pikepdf.open(io.BytesIO(img2pdf.convert(image_file))) as document:
        page = document.pages[0]
        if rotate:
            page.Rotate = rotate
        width, height = (float(v) for v in page.MediaBox[2:])
        if margin:
            page.MediaBox = pikepdf.Array([0, 0, width + margin, height + margin])
        if crop is not None:
            page.CropBox = pikepdf.Array(
                [crop[0] * width, crop[1] * height, crop[2] * width, crop[3] * height]
            )
        sink = io.BytesIO()
        document.save(sink)
    return sink.getvalue()


def pdf_of_size(pages: list[str], size: int) -> bytes:
    """A valid PDF of exactly ``size`` bytes."""
    pad = 10
    for _ in range(5):
        data = pdf(pages, pad=pad)
        if len(data) == size:
            return data
        pad += size - len(data)
    raise AssertionError("could not hit the size")


ENGINE_FA = {"name": "danlin", "options": {"language": "fa"}}
PROBE = {"name": "probe"}


class Api:
    """``requests`` against one emulator with its key; every call returns the raw Response."""

    def __init__(self, emulator: EmulatorHandle, key: str | None = None) -> None:
        self.emulator = emulator
        self.url = emulator.base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {key or emulator.api_key}"

    def upload(self, *files: bytes, field: str = "file[]") -> requests.Response:
        parts = [(field, (f"f{i}.bin", data)) for i, data in enumerate(files)]
        return self.session.post(f"{self.url}/files", files=parts, timeout=30)

    def store(self, *files: bytes) -> list[str]:
        """Upload files that must all be stored; their uuids in order."""
        answer = self.upload(*files)
        assert answer.status_code == 207, answer.text
        entries = answer.json()["data"]
        assert all(e["status"] == "stored" for e in entries), entries
        return [e["uuid"] for e in entries]

    def files(self) -> requests.Response:
        return self.session.get(f"{self.url}/files", timeout=30)

    def delete(self, uuid: str) -> requests.Response:
        return self.session.delete(f"{self.url}/files/{uuid}", timeout=30)

    def images(self, body: Any) -> requests.Response:
        return self.session.post(f"{self.url}/image-extraction", json=body, timeout=60)

    def documents(self, body: Any) -> requests.Response:
        return self.session.post(f"{self.url}/document-extraction", json=body, timeout=60)

    def extract(self, uuid: str) -> requests.Response:
        return self.session.get(f"{self.url}/extracts/{uuid}", timeout=30)

    def contents(self, extract: str, file: str, page: int | None = None) -> requests.Response:
        params = {} if page is None else {"page": page}
        return self.session.get(
            f"{self.url}/extracts/{extract}/files/{file}/contents", params=params, timeout=30
        )

    def wait_processed(self, uuid: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self.extract(uuid)
            assert answer.status_code == 200, answer.text
            data: dict[str, Any] = answer.json()["data"]
            if data["status"] == "processed":
                return data
            time.sleep(0.02)
        raise AssertionError(f"extract {uuid} still processing after {timeout} s")
