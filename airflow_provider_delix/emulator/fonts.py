"""Fonts for test scans: which installed font can draw a language, and how to lay it out.

Why a module of its own: font choice is the one part of making scans that depends on the
machine. Paths differ between distributions, so fonts are found at run time with fontconfig
(``fc-list``), and a missing font is a clear :class:`FontNotFoundError` naming the package to
install, not a tofu-filled image. Persian and Arabic must be shaped and laid out right to left
by Pillow's raqm engine (HarfBuzz + FriBiDi): without it the letters would be drawn isolated
and left to right, which no OCR model was trained on.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess

from PIL import ImageFont

RTL_LANGUAGES = frozenset({"fa", "ar"})
"""Delix language codes written right to left."""


# Font families in order of preference. For Persian, the farsiweb text faces come first: they
# are what fonts-farsiweb installs and look like ordinary Persian print. Homa before Nazli
# because, on the sample set, Tesseract 5.3's fas model reads Homa at about 2 % CER on every
# seed tried, while with Nazli it intermittently drops whole lines (up to 17 % CER). Titr is a bold
# headline face and only a last resort; DejaVu covers Arabic script too, as a fallback.
_FAMILIES: dict[str, tuple[str, ...]] = {
    "fa": ("Homa", "Nazli", "DejaVu Sans", "Titr"),
    "ar": ("Homa", "Nazli", "DejaVu Sans", "Titr"),
    "en": ("DejaVu Serif", "Liberation Serif", "DejaVu Sans", "Liberation Sans"),
    "tr": ("DejaVu Serif", "Liberation Serif", "DejaVu Sans", "Liberation Sans"),
}
_ARABIC_SCRIPT = re.compile("[\u0600-\u06ff\u0750-\u077f\ufb50-\ufdff\ufe70-\ufeff]")


class FontNotFoundError(RuntimeError):
    """No installed font can render the language (or fontconfig itself is missing)."""


def guess_language(text: str) -> str:
    """``fa`` when the text contains Arabic-script letters, else ``en``.

    Only for the quick helpers (:func:`make_png`...), where the caller usually does not care.
    """
    return "fa" if _ARABIC_SCRIPT.search(text) else "en"


@functools.cache
def find_font(language: str, *, bold: bool = False) -> str:
    """Path of an installed font for a Delix language code (``fa``, ``ar``, ``en``, ``tr``).

    Asks fontconfig for fonts that declare coverage of the language (``fc-list :lang=xx``) and
    picks the first preferred family present, regular weight unless ``bold``. Cached, because
    each call runs a subprocess. Raises :class:`FontNotFoundError` with an install hint.
    """
    if shutil.which("fc-list") is None:
        raise FontNotFoundError("fontconfig's fc-list is not installed: apt-get install fontconfig")
    fc_lang = {"fa": "fa", "ar": "ar", "en": "en", "tr": "tr"}.get(language, language)
    out = subprocess.run(
        ["fc-list", f":lang={fc_lang}", "family", "style", "file"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout
    # Lines look like "/path/nazli.ttf: Nazli:style=Regular" (family may list aliases, comma-separated).
    fonts: list[tuple[str, set[str], str]] = []
    for line in out.splitlines():
        path, _, rest = line.partition(": ")
        family, _, style = rest.partition(":style=")
        fonts.append((path.strip(), {f.strip() for f in family.split(",")}, style.strip()))
    for wanted in _FAMILIES.get(language, _FAMILIES["en"]):
        candidates = [f for f in fonts if wanted in f[1]]
        candidates.sort(key=lambda f: (("Bold" in f[2]) != bold, "Italic" in f[2] or "Oblique" in f[2], f[0]))
        if candidates:
            return candidates[0][0]
    hint = "fonts-farsiweb" if language in RTL_LANGUAGES else "fonts-dejavu-core"
    raise FontNotFoundError(
        f"no font for language {language!r} (wanted one of {', '.join(_FAMILIES.get(language, ()))}); "
        f"install e.g. apt-get install {hint}"
    )


@functools.cache
def raqm_font(path: str, size: int) -> ImageFont.FreeTypeFont:
    """A raqm-layout font: shaping (joined Arabic letters, ligatures) needs HarfBuzz."""
    return ImageFont.truetype(path, size, layout_engine=ImageFont.Layout.RAQM)
