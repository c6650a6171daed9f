"""A PNG with transparency is not packed: img2pdf would decode it and add a soft mask.

Neither lossless nor the page a scan is, and a renderer may paint a masked page otherwise (the
emulator renders it instead of reading its pixels; a tester's scan with an opaque alpha channel
read worse packed than alone). Such an image goes alone, as the image path sends it.
"""

from __future__ import annotations

import io
from pathlib import Path

import fsspec
import pytest
from fakes import FakeDelix
from PIL import Image
from test_packing import archive, rows, run

from airflow_provider_delix.core.inputs import InputRef
from airflow_provider_delix.core.packing import png_transparency

pytestmark = pytest.mark.timeout(120)


def _png(mode: str, **save: object) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (64, 48), 200 if mode in ("L", "LA") else (200, 200, 200, 255)[: len(mode)]).save(
        buffer, "PNG", **save
    )
    return buffer.getvalue()


def test_transparency_is_read_from_the_chunk_headers() -> None:
    assert png_transparency(_png("RGBA")) and png_transparency(_png("LA"))
    assert png_transparency(_png("RGB", transparency=(1, 2, 3))), "a colour key (tRNS)"
    assert not png_transparency(_png("RGB")) and not png_transparency(_png("L"))
    assert not png_transparency(b"\xff\xd8\xff\xe0 a JPEG")


def test_an_opaque_alpha_png_goes_alone_and_the_others_are_packed(tmp_path: Path) -> None:
    refs = archive(tmp_path / "scans", 12)
    opaque = tmp_path / "scans" / "opaque-alpha.png"
    opaque.write_bytes(_png("RGBA"))
    refs.append(InputRef(source=str(opaque), fs=fsspec.filesystem("file"), path=str(opaque)))
    fake = FakeDelix()
    run(fake, str(tmp_path / "out"), refs, packing="pdf")
    got = rows(str(tmp_path / "out"))
    assert len(got) == 13 and {v[0] for v in got.values()} == {"processed"}
    assert fake.calls["extract_images"] == 1, "the opaque-alpha PNG, alone"
    assert fake.calls["extract_documents"] >= 1, "the JPEGs, packed"
    assert fake.stored == {}
