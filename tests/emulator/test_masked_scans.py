"""A page that is one image is read at the image's pixels only when those pixels are what is shown.

A viewer paints an image through its soft mask (``/SMask``) or mask (``/Mask``), paints an
``/ImageMask`` as a stencil in the fill colour, blends it by the graphics state's alpha, and
stretches it to the rectangle it is drawn in. The image's stored pixels know none of that:
ocrmypdf's ``aspect.pdf`` (a 1000x400 purple rectangle whose soft mask carries the text,
drawn on a 360x288 pt page) read as a scan gave Tesseract a purple rectangle and no text.
Such pages are rendered, as a viewer and the real API read them; ordinary scans keep the
fast path, and a JPEG whose /Decode recolours it is decoded instead of passed through.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable

import pikepdf
import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageDraw

from airflow_provider_delix.emulator import pdf as emulator_pdf

from .samples import scan_pdf
from .test_page_geometry import decoded, differs, encoded, rendered, upright

Edit = Callable[[pikepdf.Pdf, pikepdf.Stream], None]


def edited(image_file: bytes, edit: Edit) -> bytes:
    """A scan (img2pdf, 96 dpi) whose one image XObject and page ``edit`` changes."""
    with pikepdf.open(io.BytesIO(scan_pdf(image_file))) as document:
        edit(document, document.pages[0].Resources.XObject.Im0)
        sink = io.BytesIO()
        document.save(sink)
    return sink.getvalue()


def _mask(document: pikepdf.Pdf, pixels: bytes, size: tuple[int, int], *, stencil: bool) -> pikepdf.Stream:
    """An image XObject for a mask: 8-bit gray (a soft mask), or 1 bit a pixel (a stencil)."""
    kind = {"ImageMask": True, "BitsPerComponent": 1} if stencil else {"BitsPerComponent": 8}
    mask = pikepdf.Stream(document, zlib.compress(pixels), Filter=pikepdf.Name.FlateDecode, **kind)
    mask.Type, mask.Subtype, mask.Width, mask.Height = pikepdf.Name.XObject, pikepdf.Name.Image, *size
    if not stencil:
        mask.ColorSpace = pikepdf.Name.DeviceGray
    return mask


def stored_pixels(data: bytes) -> Image.Image:
    """The page's one image as stored, which is what the fast path gave Tesseract."""
    page = pdfium.PdfDocument(data)[0]
    (image,) = page.get_objects()
    return image.get_bitmap(render=False).to_pil().convert("L")


def soft_mask(document: pikepdf.Pdf, image: pikepdf.Stream) -> None:
    image.SMask = _mask(document, bytes([0] * 48 * 16 + [255] * 48 * 16), (48, 32), stencil=False)


def stencil_mask(document: pikepdf.Pdf, image: pikepdf.Stream) -> None:
    stencil = bytes([0xFF] * 6 * 16 + [0] * 6 * 16)  # one bit a pixel: 1 is masked out
    image.Mask = _mask(document, stencil, (48, 32), stencil=True)


def colour_key_mask(document: pikepdf.Pdf, image: pikepdf.Stream) -> None:
    image.Mask = pikepdf.Array([0, 10] * (3 if image.ColorSpace == "/DeviceRGB" else 1))  # dark: unpainted


def image_mask(document: pikepdf.Pdf, image: pikepdf.Stream) -> None:
    """The image becomes a stencil painted in red: the stored bits are not the colours shown."""
    stencil = Image.new("1", (48, 32), 1)
    ImageDraw.Draw(stencil).rectangle((2, 2, 17, 9), fill=0)
    image.write(zlib.compress(stencil.tobytes()), filter=pikepdf.Name.FlateDecode)
    for key in ("/ColorSpace", "/DecodeParms"):
        if key in image:
            del image[key]
    image.ImageMask, image.BitsPerComponent = True, 1
    page = document.pages[0]
    page.Contents = document.make_stream(b"1 0 0 rg " + page.Contents.read_bytes())


def half_alpha(document: pikepdf.Pdf, image: pikepdf.Stream) -> None:
    """Drawn at 50% opacity by the graphics state: paler on the page than stored."""
    page = document.pages[0]
    page.Resources.ExtGState = pikepdf.Dictionary(GS0=pikepdf.Dictionary(ca=0.5, CA=0.5))
    page.Contents = document.make_stream(b"/GS0 gs " + page.Contents.read_bytes())


def stretched(factor: float) -> Edit:
    """The image drawn ``factor`` times wider than its pixels are square at, page to match."""

    def edit(document: pikepdf.Pdf, image: pikepdf.Stream) -> None:
        page = document.pages[0]
        width, height = (float(v) for v in page.MediaBox[2:])
        page.MediaBox = pikepdf.Array([0, 0, width * factor, height])
        page.Contents = document.make_stream(b"q %f 0 0 %f 0 0 cm /Im0 Do Q" % (width * factor, height))

    return edit


def png_and_jpeg() -> list[bytes]:
    return [encoded(upright()), encoded(upright().convert("RGB"), "JPEG")]


@pytest.mark.parametrize(
    "mask",
    [soft_mask, stencil_mask, colour_key_mask, half_alpha, pytest.param(stretched(2.0), id="stretched")],
)
def test_a_masked_blended_or_stretched_image_is_rendered_not_read_raw(mask: Edit) -> None:
    for picture in png_and_jpeg():
        data = edited(picture, mask)
        pixels, shown = stored_pixels(data), rendered(data)
        if pixels.size == shown.size:  # the case matters: the page shown is not the stored pixels
            assert differs(pixels, shown) > 5
        assert emulator_pdf.page_scan(data, 1) is None  # the caller renders it
        assert emulator_pdf.page_jpeg(data, 1) is None  # and groundtruth does not read the JPEG as it


def test_an_image_mask_is_rendered_in_its_fill_colour() -> None:
    data = edited(encoded(upright()), image_mask)
    assert emulator_pdf.page_scan(data, 1) is None
    assert rendered(data).getpixel((5, 5)) not in (0, 255)  # red, seen in gray: not the stored black


@pytest.mark.parametrize("factor", [1.004, 0.996])
def test_a_page_size_rounded_by_its_writer_is_still_a_scan(factor: float) -> None:
    """Writers round page sizes to a point or a millimetre: pixels that far from square are a scan."""
    for picture in png_and_jpeg():
        data = edited(picture, stretched(factor))
        assert emulator_pdf.page_scan(data, 1) is not None


def test_a_jpeg_recoloured_by_decode_is_decoded_not_passed_through() -> None:
    """/Decode [1 0 ...] inverts the picture on the page; the embedded JPEG bytes do not know."""
    picture = encoded(upright().convert("RGB"), "JPEG")

    def inverted(document: pikepdf.Pdf, image: pikepdf.Stream) -> None:
        image.Decode = pikepdf.Array([1, 0] * 3)

    data = edited(picture, inverted)
    scan = emulator_pdf.page_scan(data, 1)
    assert scan is not None and scan.startswith(b"\x89PNG")  # still the fast path, decoded
    assert differs(decoded(scan), rendered(data)) < 8 and differs(decoded(scan), upright()) > 100
    assert emulator_pdf.page_jpeg(data, 1) == picture  # the text a JPEG carries is not its colours

    def default(document: pikepdf.Pdf, image: pikepdf.Stream) -> None:
        image.Decode = pikepdf.Array([0, 1] * 3)  # written out but changes nothing

    assert emulator_pdf.page_scan(edited(picture, default), 1) == picture


@pytest.mark.tesseract
def test_tesseract_reads_the_text_a_soft_mask_draws_on_a_stretched_image() -> None:
    """ocrmypdf's aspect.pdf, rebuilt: a flat colour with a black bar, the text only in its
    soft mask, 1000x400 pixels drawn on 360x288 pt. Read raw it has no text."""
    from airflow_provider_delix.emulator.ocr import PageJob
    from airflow_provider_delix.emulator.tesseract import TesseractBackend

    from .test_tesseract import render_line

    line = Image.open(io.BytesIO(render_line("This should be a perfect circle", "en")))
    width = min(1000, 2 * line.width * 120 // line.height)  # stored twice as wide as shown
    alpha = Image.new("L", (1000, 400), 0)
    alpha.paste(
        Image.eval(line.convert("L"), lambda v: 255 - v).resize(
            (width, width * line.height // line.width // 2)
        ),
        (0, 100),
    )
    colour = Image.new("RGB", (1000, 400), (128, 0, 128))
    ImageDraw.Draw(colour).rectangle((0, 350, 999, 399), fill=0)

    def aspect(document: pikepdf.Pdf, image: pikepdf.Stream) -> None:
        image.SMask = _mask(document, alpha.tobytes(), (1000, 400), stencil=False)
        page = document.pages[0]
        page.MediaBox = pikepdf.Array([0, 0, 360, 288])
        page.Contents = document.make_stream(b"q 360 0 0 288 0 0 cm /Im0 Do Q")

    data = edited(encoded(colour), aspect)
    job = PageJob(data=data, kind="pdf", sha256="aspect", number=1)
    read = TesseractBackend().read(job, "danlin", "en", None)  # type: ignore[arg-type]
    assert read is not None and "perfect circle" in read


def test_a_document_is_read_by_pypdf_once_for_all_its_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Tesseract backend asks page by page; a reader per page made a 150-page scan take
    seconds (its page tree walked for each page)."""
    import img2pdf

    page = io.BytesIO()
    Image.new("L", (200, 300), 255).save(page, "PNG")
    data = img2pdf.convert([page.getvalue()] * 12)
    calls: list[int] = []
    real = emulator_pdf.page_images

    def counted(data: bytes, indexes: object) -> object:
        calls.append(1)
        return real(data, indexes)  # type: ignore[arg-type]

    monkeypatch.setattr(emulator_pdf, "page_images", counted)
    scans = [emulator_pdf.page_scan(data, n) for n in range(1, 13)]
    assert all(scan is not None for scan in scans) and len(calls) == 1
