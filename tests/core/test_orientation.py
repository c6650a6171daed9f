"""Every EXIF/TIFF orientation turns a page upright exactly once, whether decoded whole or reduced.

Pillow's TIFF plugin applies the Orientation tag itself while loading (and drops the tag), JPEG
and PNG leave it to us: a page read before loading and turned again after came out rotated
twice. Each stored page here carries a dark block that is in its top-left corner only once the
page is upright, and the page is taller than wide, so all eight orientations are told apart.
The work limit is lowered so that a small picture stands in for a page over it.
"""

from __future__ import annotations

import io
import struct
import zlib

import fsspec
import pytest
from PIL import Image, PngImagePlugin

from airflow_provider_delix.core import decode_limits
from airflow_provider_delix.core.inputs import InputRef
from airflow_provider_delix.core.prepare import PreparedPage, prepare_source

# How to store an upright page so that a viewer applying each orientation shows it upright
# (the inverse of what the tag asks for).
_STORE = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}
_UPRIGHT = (120, 160)  # portrait: 76,800 decoded bytes in RGB


def _stored(orientation: int, fmt: str) -> bytes:
    page = Image.new("RGB", _UPRIGHT, "white")
    page.paste((0, 0, 0), (0, 0, _UPRIGHT[0] // 3, _UPRIGHT[1] // 4))
    turn = _STORE[orientation]
    stored = page if turn is None else page.transpose(turn)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    if fmt == "TIFF":
        stored.save(buffer, "TIFF", compression="tiff_lzw", tiffinfo={0x0112: orientation})
    elif fmt == "JPEG":
        stored.save(buffer, "JPEG", quality=95, exif=exif)
    else:
        stored.save(buffer, "PNG", exif=exif)
    return buffer.getvalue()


def _prepare(data: bytes) -> PreparedPage:
    (page,) = prepare_source(InputRef("x", fsspec.filesystem("memory"), "/x"), data).pages
    return page


def _assert_upright(page: PreparedPage) -> None:
    assert page.data is not None, page.message
    im = Image.open(io.BytesIO(page.data)).convert("L")
    width, height = im.size
    assert height > width, f"sent {width}x{height}: not portrait ({page.normalization})"
    corners = {
        "top-left": (0, 0),
        "top-right": (width - width // 6, 0),
        "bottom-left": (0, height - height // 8),
        "bottom-right": (width - width // 6, height - height // 8),
    }
    dark = [name for name, (x, y) in corners.items() if im.getpixel((x + 2, y + 2)) < 80]  # type: ignore[operator]
    assert dark == ["top-left"], f"dark corners {dark} ({page.normalization})"


@pytest.mark.parametrize("fmt", ["TIFF", "JPEG", "PNG"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_page_within_the_work_limit_is_turned_upright_once(fmt: str, orientation: int) -> None:
    page = _prepare(_stored(orientation, fmt))
    _assert_upright(page)
    # The row says it was turned, whoever turned it (Pillow turns a TIFF page while loading).
    assert ("exif_rotate" in (page.normalization or "")) == (orientation != 1), page.normalization


@pytest.mark.parametrize("fmt", ["TIFF", "JPEG", "PNG"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_page_over_the_work_limit_is_turned_upright_once(
    fmt: str, orientation: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(decode_limits, "WORK_BYTES", 30_000)
    monkeypatch.setattr(decode_limits, "STRIP_BYTES", 4_000)
    page = _prepare(_stored(orientation, fmt))
    _assert_upright(page)
    assert page.normalization is not None and "reduce_1/" in page.normalization
    assert ("exif_rotate" in page.normalization) == (orientation != 1)


def _upright_with_unused_orientation(fmt: str, where: str) -> bytes:
    """An upright page whose only orientation (3, upside down) sits where viewers ignore it."""
    page = Image.new("RGB", _UPRIGHT, "white")
    page.paste((0, 0, 0), (0, 0, _UPRIGHT[0] // 3, _UPRIGHT[1] // 4))
    xmp = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-'
        'syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="3"/>'
        "</rdf:RDF></x:xmpmeta>"
    )
    buffer = io.BytesIO()
    if fmt == "JPEG":
        page.save(buffer, "JPEG", quality=95, xmp=xmp.encode())
    else:
        info = PngImagePlugin.PngInfo()
        if where == "xmp":
            info.add_itxt("XML:com.adobe.xmp", xmp)
        else:  # ImageMagick's text chunk: the EXIF block as hex, after three header lines
            exif = Image.Exif()
            exif[0x0112] = 3
            hexed = exif.tobytes().hex()
            info.add_text("Raw profile type exif", f"\nexif\n{len(exif.tobytes())}\n{hexed}", zip=True)
        page.save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


@pytest.mark.parametrize(("fmt", "where"), [("JPEG", "xmp"), ("PNG", "xmp"), ("PNG", "raw-profile")], ids=str)
def test_an_orientation_viewers_ignore_does_not_turn_the_page(fmt: str, where: str) -> None:
    """XMP's tiff:Orientation and ImageMagick's raw EXIF text are not EXIF: the page is sent as
    stored (a viewer shows it so), not turned upside down and re-encoded."""
    data = _upright_with_unused_orientation(fmt, where)
    with Image.open(io.BytesIO(data)) as im:
        assert im.getexif().get(0x0112) == 3, "Pillow reads the orientation: the case is real"
    page = _prepare(data)
    _assert_upright(page)
    assert page.data == data and page.normalization is None, page.normalization


_XMP_UPSIDE_DOWN = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="3"/>'
    b"</rdf:RDF></x:xmpmeta>"
)


def _upright_page() -> Image.Image:
    page = Image.new("RGB", _UPRIGHT, "white")
    page.paste((0, 0, 0), (0, 0, _UPRIGHT[0] // 3, _UPRIGHT[1] // 4))
    return page


def _png_chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))


@pytest.mark.parametrize("reduced", [False, True], ids=["whole", "reduced"])
@pytest.mark.parametrize("compression", [None, "tiff_lzw"], ids=["raw", "lzw"])
def test_a_tiff_whose_only_orientation_is_xmp_is_sent_as_stored(
    reduced: bool, compression: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pillow's TIFF loader turns the page by its cached EXIF, which holds XMP's value too."""
    if reduced:
        monkeypatch.setattr(decode_limits, "WORK_BYTES", 30_000)
        monkeypatch.setattr(decode_limits, "STRIP_BYTES", 4_000)
    buffer = io.BytesIO()
    _upright_page().save(buffer, "TIFF", compression=compression, tiffinfo={700: _XMP_UPSIDE_DOWN})
    page = _prepare(buffer.getvalue())
    _assert_upright(page)
    assert "exif_rotate" not in (page.normalization or "")


@pytest.mark.parametrize("reduced", [False, True], ids=["whole", "reduced"])
def test_a_png_with_a_broken_exif_block_is_sent_on_both_paths(
    reduced: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broken eXIf chunk counts as upright, on the strip decoder's path too (not corrupt_image)."""
    if reduced:
        monkeypatch.setattr(decode_limits, "WORK_BYTES", 30_000)
        monkeypatch.setattr(decode_limits, "STRIP_BYTES", 4_000)
    buffer = io.BytesIO()
    _upright_page().save(buffer, "PNG")
    data = buffer.getvalue()
    at = data.index(b"IDAT") - 4
    data = data[:at] + _png_chunk(b"eXIf", b"garbage-not-a-tiff-header") + data[at:]
    page = _prepare(data)
    assert page.error is None, page.message
    _assert_upright(page)
