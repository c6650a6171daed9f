"""What an image's dictionary says about how a renderer paints it, read with pypdf.

The emulator reads a scanned page at the image's own pixels (``pdf.page_scan``), which stands
for what a viewer shows only when the image is painted as its samples say. Some dictionary
entries change that: a soft mask (``/SMask``) or a mask (``/Mask``, a stencil or a colour-key
range) lets part of the page show through, and an image mask (``/ImageMask``) is a stencil
painted in the current fill colour, not a picture. PDFium's public API gives an image
object's pixels, filters and matrix but not its dictionary, and the pixels it gives ignore
all three (``FPDFPageObj_HasTransparency`` only sees the graphics state), so the dictionary
is read here. pypdf is already a dependency of the package and reads one page's resources
without parsing the rest of the document; it is not thread-hostile, so no lock is held.

``/Decode`` is different: PDFium's pixels already apply it, but the bytes of an embedded JPEG
do not, so such a JPEG is decoded instead of passed through.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any, NamedTuple


class PageImages(NamedTuple):
    """How the images a page's resources name are painted."""

    masked: bool  # some image is masked or is a stencil: its pixels are not what is shown
    recoded: bool  # some image has a /Decode: its embedded bytes are not what is shown


# What nothing known about a page's images means: render it, which is always right.
UNKNOWN = PageImages(masked=True, recoded=True)


def page_images(data: bytes, indexes: Iterable[int]) -> dict[int, PageImages]:
    """How each page in ``indexes`` (0-based) paints its image XObjects; :data:`UNKNOWN` when unsure.

    One pypdf reader for all of them: the groundtruth backend asks about every scanned page
    of a pack at once, and opening the document per page made a 150-page pack take seconds.
    """
    from pypdf import PdfReader  # light imports: only when a scanned page is read

    wanted = list(indexes)
    try:
        pages = PdfReader(io.BytesIO(data), strict=False).pages
    except Exception:  # pypdf cannot read what PDFium opened: nothing known, render them
        return dict.fromkeys(wanted, UNKNOWN)
    return {index: _one_page(pages, index) for index in wanted}


def _one_page(pages: Any, index: int) -> PageImages:
    """Every image XObject in the page's resources is looked at, drawn or not: a page PDFium
    calls a scan draws exactly one image, and an unused masked one only costs a render. A
    page with no image XObject draws an inline image (``BI``...``EI``), whose ``/IM`` and
    ``/D`` are not looked for: unknown. So is a page pypdf cannot read.
    """
    try:
        page = pages[index]
        xobjects = _resolved(_resolved(page.get("/Resources") or {}).get("/XObject") or {})
        images = [_resolved(x) for x in xobjects.values()]
        images = [x for x in images if hasattr(x, "get") and x.get("/Subtype") == "/Image"]
        if not images:
            return UNKNOWN
        return PageImages(
            masked=any(_masked(image) for image in images),
            recoded=any(_recoded(image) for image in images),
        )
    except Exception:  # a page pypdf cannot read: nothing known, render it
        return UNKNOWN


def _masked(image: Any) -> bool:
    if _resolved(image.get("/SMask")) is not None or _resolved(image.get("/Mask")) is not None:
        return True
    return bool(_resolved(image.get("/ImageMask", False)))


def _recoded(image: Any) -> bool:
    """A /Decode other than the default ``[0 1 0 1 ...]`` (an explicit default changes nothing)."""
    decode = _resolved(image.get("/Decode"))
    if decode is None:
        return False
    values = [float(_resolved(v)) for v in decode]
    return values != [0.0, 1.0] * (len(values) // 2) or len(values) % 2 == 1


def _resolved(value: Any) -> Any:
    """An indirect object's target (pypdf's ``NullObject`` as None); other values unchanged."""
    from pypdf.generic import NullObject

    value = value.get_object() if hasattr(value, "get_object") else value
    return None if isinstance(value, NullObject) else value
