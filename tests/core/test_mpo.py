"""Phone photos carrying a multi-picture (MPF) segment: a JPEG on every path of the client.

Many phone cameras write MPF (a depth map, a second view, thumbnails) into their JPEGs; Pillow
opens such a file as format ``MPO``. It is still a JPEG file: it starts with a JPEG SOI and its
first picture decodes as a plain JPEG, which is what Delix reads of it.
"""

from __future__ import annotations

import hashlib
import io

import fsspec
import pypdf
from PIL import Image, ImageDraw

from airflow_provider_delix.core.inputs import InputRef
from airflow_provider_delix.core.packing import pack_pdf
from airflow_provider_delix.core.prepare import prepare_source

FIRST_SIZE = (300, 200)


def _mpo() -> bytes:
    """A first picture with text and a second, smaller one, as a camera's MPF file."""
    first = Image.new("RGB", FIRST_SIZE, "white")
    ImageDraw.Draw(first).text((10, 10), "عکس", fill="black")
    second = Image.new("RGB", (120, 80), "gray")
    out = io.BytesIO()
    first.save(out, "MPO", save_all=True, append_images=[second])
    data = out.getvalue()
    assert data.startswith(b"\xff\xd8\xff") and Image.open(io.BytesIO(data)).format == "MPO"
    return data


def _jpeg(shade: int) -> bytes:
    out = io.BytesIO()
    Image.new("L", (64, 48), shade).save(out, "JPEG")
    return out.getvalue()


def test_an_mpo_named_jpg_is_uploaded_byte_for_byte_as_a_jpeg() -> None:
    data = _mpo()
    ref = InputRef(source="phone/IMG_0001.jpg", fs=fsspec.filesystem("memory"), path="/does/not/exist")
    (page,) = prepare_source(ref, data).pages
    assert (page.data, page.normalization, page.error) == (data, None, None)
    assert page.filename == f"{hashlib.sha256(data).hexdigest()[:12]}-p1.jpg"


def test_a_pack_gives_an_mpo_one_page_its_first_picture() -> None:
    # Page i answers image i: a page for the MPO's second picture would shift every later image
    # onto its neighbour's text and pay for a page nobody asked for.
    mpo = _mpo()
    reader = pypdf.PdfReader(io.BytesIO(pack_pdf([_jpeg(10), mpo, _jpeg(200)])))
    assert len(reader.pages) == 3
    (xobject,) = [x.get_object() for x in reader.pages[1]["/Resources"]["/XObject"].values()]
    embedded = xobject.get_data()
    assert mpo.startswith(embedded)  # the first picture's bytes as they are: nothing re-encoded
    assert Image.open(io.BytesIO(embedded)).size == FIRST_SIZE
