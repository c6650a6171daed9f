"""The ``page`` selector of a FileIdentifier: a range ``3-16`` or a list ``1,4,15``.

Those are the two forms the API documents; a mix like ``1-3,7`` is refused
(``INVALID_FILE_PAGE``), so a client that sends one is caught here rather than by Delix.
Decisions where the spec is silent: an empty string, null or a missing ``page`` means every
page (spec: "empty means all pages"); a bare integer is accepted as one page; spaces around
items are allowed; pages come back in ascending order whatever the order asked; a page named
twice (``1,1`` or ``1-3,2``), page 0, a page beyond ``page_count``, a reversed range (``5-3``)
and anything else unreadable are ``INVALID_FILE_PAGE``: silently de-duplicating could hide a
client that pays twice for the same page.
"""

from __future__ import annotations

import re
from typing import Any

_ITEM = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


class InvalidPages(ValueError):
    """The selector is not valid for the file."""


def select_pages(selector: Any, page_count: int) -> list[int]:
    """The 1-based page numbers selected, ascending."""
    if selector is None or selector == "":
        return list(range(1, page_count + 1))
    if isinstance(selector, bool):
        raise InvalidPages("page must be a string")
    if isinstance(selector, int):
        selector = str(selector)
    if not isinstance(selector, str):
        raise InvalidPages("page must be a string")
    chosen: list[int] = []
    items = selector.split(",")
    if len(items) > 1 and "-" in selector:
        raise InvalidPages("a page selection is a range (3-16) or a list (1,4,15), not a mix")
    for item in items:
        match = _ITEM.match(item)
        if match is None:
            raise InvalidPages(f"unreadable page item {item!r}")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if first < 1 or last > page_count or last < first:
            raise InvalidPages(f"page item {item.strip()!r} is outside 1-{page_count} or reversed")
        chosen.extend(range(first, last + 1))
    if len(set(chosen)) != len(chosen):
        raise InvalidPages("a page is selected twice")
    return sorted(chosen)
