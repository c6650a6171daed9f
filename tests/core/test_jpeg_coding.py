"""JPEGs that are sound but that Pillow cannot decode as they are, or only after a repair.

An arithmetic-coded JPEG (SOF9-SOF15) failed as ``corrupt_image`` ("broken data stream"),
telling the user a good file was damaged: it is ``unsupported_codec``, saying what to run.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import fsspec
import pytest
from PIL import Image, ImageDraw

from airflow_provider_delix.core.codecs import jpeg_frame_marker, jpeg_header_flaw
from airflow_provider_delix.core.codes import Reason
from airflow_provider_delix.core.inputs import InputRef
from airflow_provider_delix.core.prepare import PreparedPage, prepare_source

# An 8x8 gray page, written by ``jpegtran -arithmetic`` (SOF9): a real arithmetic-coded file.
_ARITHMETIC_8X8 = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300100b0c0e0c0a100e0d0e1211101318281a181616"
    "183123251d283a333d3c3933383740485c4e404457453738506d51575f626768673e4d71797064785c656763ff"
    "c9000b080008000801011100ffcc000600101005ffda0008010100003f00d257ffd9"
)


def _page() -> Image.Image:
    im = Image.new("RGB", (600, 400), "white")
    draw = ImageDraw.Draw(im)
    for row in range(12):
        draw.text((20, 20 + row * 30), f"line {row}: arithmetic or Huffman", fill="black")
    return im


def _jpeg(**options: object) -> bytes:
    buffer = io.BytesIO()
    _page().save(buffer, "JPEG", **{"quality": 90, **options})
    return buffer.getvalue()


def _prepare(data: bytes) -> PreparedPage:
    (page,) = prepare_source(InputRef("x", fsspec.filesystem("memory"), "/x"), data).pages
    return page


def _as_sof(data: bytes, marker: int) -> bytes:
    """The file with its frame marker replaced (the header is all the check reads)."""
    at = data.index(b"\xff\xc0")
    return data[: at + 1] + bytes([marker]) + data[at + 2 :]


def test_an_arithmetic_coded_jpeg_is_an_unsupported_codec() -> None:
    page = _prepare(_ARITHMETIC_8X8)
    assert (page.error, page.data) == (Reason.UNSUPPORTED_CODEC, None)
    assert page.message is not None
    assert page.message.startswith("the JPEG uses arithmetic coding (SOF9), which Pillow cannot decode")
    assert "`jpegtran -outfile fixed.jpg file.jpg` converts it losslessly to Huffman coding" in page.message


@pytest.mark.parametrize(
    ("marker", "name"), [(0xC9, "SOF9"), (0xCA, "SOF10"), (0xCB, "SOF11"), (0xCD, "SOF13")]
)
def test_every_arithmetic_frame_type_is_named(marker: int, name: str) -> None:
    page = _prepare(_as_sof(_jpeg(), marker))
    assert page.error == Reason.UNSUPPORTED_CODEC
    assert page.message is not None and f"arithmetic coding ({name})" in page.message


@pytest.mark.skipif(shutil.which("jpegtran") is None, reason="jpegtran is not installed")
def test_a_large_arithmetic_jpeg_from_jpegtran_is_refused_and_its_conversion_accepted(tmp_path: Path) -> None:
    huffman = tmp_path / "huffman.jpg"
    huffman.write_bytes(_jpeg(subsampling=0, quality=100))  # well over Pillow's 64 KiB read block
    arithmetic, back = tmp_path / "arith.jpg", tmp_path / "back.jpg"
    subprocess.run(["jpegtran", "-arithmetic", "-outfile", str(arithmetic), str(huffman)], check=True)
    assert _prepare(arithmetic.read_bytes()).error == Reason.UNSUPPORTED_CODEC
    subprocess.run(["jpegtran", "-outfile", str(back), str(arithmetic)], check=True)  # the advice
    assert _prepare(back.read_bytes()).error is None


@pytest.mark.parametrize("options", [{}, {"progressive": True}, {"optimize": True}])
def test_huffman_jpegs_are_not_affected(options: dict[str, object]) -> None:
    data = _jpeg(**options)
    assert jpeg_frame_marker(data) == (0xC2 if options.get("progressive") else 0xC0)
    page = _prepare(data)
    assert (page.error, page.data) == (None, data)  # passed through byte for byte, as before


def test_a_header_without_a_frame_is_left_to_the_decoder() -> None:
    assert jpeg_frame_marker(b"\xff\xd8\xff\xda\x00\x08") is None
    assert jpeg_frame_marker(b"\xff\xd8\x00\x00\x00\x00") is None
    assert jpeg_frame_marker(b"\xff\xd8\xff\xe0\x7f\xff") is None  # a length past the end


@pytest.mark.parametrize(
    ("flaw", "said"),
    [(b"junk!", "stray byte(s)"), (b"\xff\x00\x00\x02", "FF 00")],
    ids=["stray-bytes", "ff00-pseudo-marker"],
)
def test_a_jpeg_whose_header_only_libjpeg_forgives_is_re_encoded(flaw: bytes, said: str) -> None:
    """Pillow decodes past stray bytes between header segments (libjpeg only warns, and Pillow
    does not pass that on); stricter decoders refuse such a file. It is re-encoded, not sent as is."""
    sound = _jpeg()
    at = sound.index(b"\xff\xdb")  # before the quantisation table, after APP0
    flawed = sound[:at] + flaw + sound[at:]
    assert jpeg_header_flaw(sound) is None and said in (jpeg_header_flaw(flawed) or "")
    Image.open(io.BytesIO(flawed)).load()  # Pillow reads it: the case is real
    page = _prepare(flawed)
    assert page.data is not None and page.data != flawed, page.message
    assert (page.normalization or "").startswith("jpeg_markers_fixed")
    assert jpeg_header_flaw(page.data) is None
    assert _prepare(sound).data == sound, "a sound JPEG still goes as it is"
