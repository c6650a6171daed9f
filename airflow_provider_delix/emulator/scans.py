"""Realistic and deliberately broken test scans, made with Pillow alone.

Why this exists: OCR accuracy tests need pages that look like what a scanner produces (off-white
paper, grey anti-aliased ink, sensor noise, a page that is never quite straight), and protocol
tests need the expected text of a page without running OCR at all. Both come from here:

* :func:`render_scan` draws a few lines of text like a 300 dpi scan, in a font found by
  ``emulator/fonts.py`` (Persian and Arabic shaped right to left by Pillow's raqm engine).
* :func:`embed_ground_truth` / :func:`read_ground_truth` (``emulator/png_text.py``) carry the
  exact expected text inside the PNG, in an ``iTXt`` chunk with keyword ``delix:text`` -- the
  chunk the emulator's ``groundtruth`` backend returns verbatim.
* :func:`make_png`, :func:`make_multipage_tiff`, :func:`make_oversize_png` and
  :func:`corrupt_png` make the small, fast, and bad inputs other tests need.

Everything is deterministic for a given seed (noise comes from :class:`random.Random`, never
from Pillow's unseeded ``effect_noise``), so committed sample files can be regenerated. Pixel
output can still differ across FreeType/HarfBuzz versions; the committed files are the truth.

The names of ``fonts`` and ``png_text`` listed in ``__all__`` are re-exported here, where tests
and scripts import them from.
"""

from __future__ import annotations

import io
import math
import random
import unicodedata

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

from airflow_provider_delix.emulator.fonts import (
    RTL_LANGUAGES,
    FontNotFoundError,
    find_font,
    guess_language,
    raqm_font,
)
from airflow_provider_delix.emulator.png_text import (
    FAIL_KEY,
    PNG_SIGNATURE,
    TEXT_KEY,
    embed_ground_truth,
    encode_png,
    png_chunk,
    png_chunks,
    read_ground_truth,
    with_text_chunks,
)

__all__ = [
    "FAIL_KEY",
    "PNG_SIGNATURE",
    "RTL_LANGUAGES",
    "TEXT_KEY",
    "FontNotFoundError",
    "corrupt_png",
    "embed_ground_truth",
    "find_font",
    "guess_language",
    "make_multipage_tiff",
    "make_oversize_png",
    "make_png",
    "read_ground_truth",
    "render_scan",
]


def _draw_lines(
    lines: list[str],
    language: str,
    font: ImageFont.FreeTypeFont,
    *,
    margin: int,
    paper: int,
    ink: int,
    min_width: int = 0,
) -> Image.Image:
    """Clean (noise-free) grayscale page with the lines drawn; RTL lines are right-aligned."""
    rtl = language in RTL_LANGUAGES
    direction = "rtl" if rtl else "ltr"
    ascent, descent = font.getmetrics()
    line_height = round((ascent + descent) * 1.35)  # roughly single-and-a-third spacing, like print
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    widths = [probe.textlength(line, font=font, direction=direction, language=language) for line in lines]
    width = max(min_width, math.ceil(max(widths, default=0)) + 2 * margin)
    height = line_height * max(len(lines), 1) + 2 * margin
    page = Image.new("L", (width, height), paper)
    draw = ImageDraw.Draw(page)
    for i, line in enumerate(lines):
        y = margin + i * line_height
        if rtl:
            draw.text(
                (width - margin, y),
                line,
                font=font,
                fill=ink,
                anchor="ra",
                direction="rtl",
                language=language,
            )
        else:
            draw.text((margin, y), line, font=font, fill=ink, anchor="la", direction="ltr", language=language)
    return page


def _gaussian_noise(size: tuple[int, int], sigma: float, rng: random.Random) -> Image.Image:
    """Zero-mean noise image centred on 128 with standard deviation ``sigma`` grey levels.

    The mean of four uniform byte images is close to gaussian (Irwin-Hall) and costs four
    ``randbytes`` calls instead of a million ``rng.gauss`` calls.
    """
    w, h = size
    layers = [Image.frombytes("L", size, rng.randbytes(w * h)) for _ in range(4)]
    mean = ImageChops.add(
        ImageChops.add(layers[0], layers[1], scale=2), ImageChops.add(layers[2], layers[3], scale=2), scale=2
    )
    spread = 255 / math.sqrt(12) / 2  # std of the mean of four uniform(0, 255)
    factor = sigma / spread
    return mean.point([max(0, min(255, round(128 + (v - 127.5) * factor))) for v in range(256)])


def render_scan(
    lines: list[str],
    language: str,
    *,
    seed: int,
    noise: float = 0.03,
    skew_degrees: float = 0.6,
    dpi: int = 300,
    font_pt: float = 12.0,
    grey_levels: int = 64,
) -> Image.Image:
    """Render ``lines`` as a grayscale scan of part of a printed page.

    ``language`` is a Delix code; ``fa``/``ar`` are shaped and laid out right to left with
    raqm. ``noise`` is the standard deviation of the sensor noise as a fraction of full scale
    (0.03 is about 8 grey levels, a clean office scanner); ``skew_degrees`` rotates the page
    counter-clockwise, as a sheet laid slightly crooked on the glass. ``dpi`` scales the
    rendering and is stored in the image (``info["dpi"]``) so PNGs carry it: Tesseract
    guesses badly without a resolution. ``font_pt`` is the body size, 12 pt like most
    letters and forms.
    ``grey_levels`` quantises the result (64 = 6 significant bits, about what the noise
    floor of a flatbed leaves): invisible, and it halves the PNG size of noisy paper.

    The image is only as large as the text plus margins (a strip of a page, about 1-2
    megapixels at 300 dpi), so a PNG of it stays a few hundred kilobytes despite the noise.
    Same arguments and fonts, same pixels.
    """
    rng = random.Random(seed)  # noqa: S311 -- reproducible test pixels, not secrets
    font = raqm_font(find_font(language), max(6, round(font_pt * dpi / 72)))
    paper = 236 + rng.randint(0, 12)  # recycled-grey to bright-white office paper
    ink = 28 + rng.randint(0, 22)  # toner is dark grey, not 0
    margin = round(0.3 * dpi)
    page = _draw_lines(lines, language, font, margin=margin, paper=paper, ink=ink)

    # The glass optics and the toner spread soften edges slightly.
    page = page.filter(ImageFilter.GaussianBlur(radius=0.35 * dpi / 300))
    if skew_degrees:
        page = page.rotate(skew_degrees, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=paper)

    # Uneven illumination: a faint shadow towards one side, as from a lid not fully closed.
    shade = Image.linear_gradient("L").resize(page.size)
    if rng.random() < 0.5:
        shade = shade.transpose(Image.Transpose.ROTATE_90).resize(page.size)
    depth = rng.randint(3, 9)
    page = ImageChops.subtract(page, shade.point([v * depth // 255 for v in range(256)]))

    # A few specks of dust in the margins, where they do not touch the letters.
    draw = ImageDraw.Draw(page)
    w, h = page.size
    for _ in range(rng.randint(2, 6)):
        x = rng.randrange(w)
        y = rng.choice((rng.randrange(max(1, margin // 2)), h - 1 - rng.randrange(max(1, margin // 2))))
        r = rng.uniform(0.6, 1.8) * dpi / 300
        draw.ellipse((x - r, y - r, x + r, y + r), fill=ink + rng.randint(40, 120))

    if noise > 0:
        page = ImageChops.add(page, _gaussian_noise(page.size, noise * 255, rng), scale=1.0, offset=-128)
    if 2 <= grey_levels < 256:
        step = 256 / grey_levels
        page = page.point([min(255, round((v // step) * step + step / 2)) for v in range(256)])
    page.info["dpi"] = (dpi, dpi)
    return page


# --- quick and bad inputs -----------------------------------------------------------------


def _quick_page(text: str, language: str | None, size_px: int) -> Image.Image:
    """A small clean image of the text's first lines; blank paper if no font is installed.

    The quick helpers are for protocol tests, where only the embedded text matters, so they
    must not fail on a machine without Persian fonts.
    """
    lang = language or guess_language(text)
    lines = [line[:60] for line in text.splitlines() if line.strip()][:3] or [" "]
    try:
        font = raqm_font(find_font(lang), size_px)
    except FontNotFoundError:
        return Image.new("L", (320, 48 * len(lines)), 250)
    return _draw_lines(lines, lang, font, margin=size_px // 2, paper=250, ink=20, min_width=64)


def make_png(
    text: str,
    *,
    fail: bool = False,
    language: str | None = None,
    size_px: int = 24,
) -> bytes:
    """A tiny PNG showing (the start of) ``text``, with ``text`` embedded as ground truth.

    Fast (no noise, no skew, milliseconds) for tests that need many valid uploads. With
    ``fail`` a tEXt chunk ``delix:fail`` = ``1`` is added, which makes the emulator's
    ``groundtruth`` backend fail the page. ``language`` defaults to :func:`guess_language`.
    """
    data = embed_ground_truth(encode_png(_quick_page(text, language, size_px), compress_level=6), text)
    if fail:
        data = with_text_chunks(data, [png_chunk(b"tEXt", FAIL_KEY.encode("latin-1") + b"\x001")], {FAIL_KEY})
    return data


def make_multipage_tiff(pages: list[str], *, language: str | None = None) -> bytes:
    """A multi-page TIFF, one small page image per string (deflate-compressed).

    Each page's text is also stored in its ImageDescription tag. For the "TIFF is one file
    of many pages" paths of the API (page counting, per-page results).
    """
    if not pages:
        raise ValueError("a TIFF needs at least one page")
    images = [_quick_page(text, language, 24) for text in pages]
    for image, text in zip(images, pages, strict=True):
        image.encoderinfo = {"description": unicodedata.normalize("NFC", text)}
    buf = io.BytesIO()
    images[0].save(
        buf,
        "TIFF",
        save_all=True,
        append_images=images[1:],
        compression="tiff_deflate",
        description=pages[0],
    )
    return buf.getvalue()


def make_oversize_png(
    target_bytes: int = 2_500_000,
    *,
    text: str = "این صفحه عمداً از دو مگابایت بزرگ‌تر است.\nمتن آن همچنان خواناست.",
    language: str = "fa",
    seed: int = 0,
) -> bytes:
    """A PNG larger than ``target_bytes`` that is still a readable page with ground truth.

    The text is rendered like :func:`render_scan`; the paper is then replaced by coarse,
    incompressible grain: uniform noise between grey levels 236 and 255. The band is narrow on
    purpose: Otsu binarisation (Tesseract's) splits a wider band (205-255 was tried) into
    black and white speckles and OCR reads thousands of junk characters; this one stays
    white, so OCR still sees clean text. The page grows until the file exceeds the target:
    for upload-size limits (HTTP 413) and their error messages.
    """
    rng = random.Random(seed)  # noqa: S311 -- reproducible test pixels, not secrets
    lines = text.splitlines()
    base = render_scan(lines, language, seed=seed, noise=0.0, skew_degrees=0.0)
    width = max(base.width, 2000)
    grain_lut = [236 + v * 20 // 256 for v in range(256)]
    # About 4.5 bits per pixel survive compression: start there, grow until big enough.
    height = max(base.height, math.ceil(target_bytes * 8 / 4.5 / width))
    while True:
        grain = Image.frombytes("L", (width, height), rng.randbytes(width * height)).point(grain_lut)
        page = Image.new("L", (width, height), 255)
        page.paste(base, ((width - base.width) // 2, 0))
        page = ImageChops.darker(page, grain)
        page.info["dpi"] = base.info.get("dpi", (300, 300))
        data = embed_ground_truth(encode_png(page, compress_level=6), text)
        if len(data) > target_bytes:
            return data
        height = math.ceil(height * 1.15)


def corrupt_png() -> bytes:
    """Bytes with a valid PNG signature and IHDR whose image data is cut off mid-stream.

    Decoders accept the header (so type sniffing says PNG) and then fail while loading
    pixels: the "upload accepted, page unreadable" path.
    """
    data = encode_png(_quick_page("corrupt", "en", 24))
    chunks = png_chunks(data)
    idat = b"".join(body for ctype, body in chunks if ctype == b"IDAT")
    ihdr = chunks[0][1]
    # Keep the first half of the compressed data in a well-formed IDAT chunk, then stop: no
    # more IDAT, no IEND. A checksum error would be a different (also useful) failure mode.
    return PNG_SIGNATURE + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat[: max(1, len(idat) // 2)])
