"""The page selector: what users may write, and the two forms the API documents that we send."""

from __future__ import annotations

import random
import re

import pytest

from airflow_provider_delix.core.options import page_selector, parse_page_selection


def test_page_selectors_sent_are_a_range_or_a_list_and_read_back() -> None:
    """The API documents ``3-16`` and ``1,4,15``; a mix like ``1-3,7`` is never sent."""
    rng = random.Random(7)
    for _ in range(500):
        pages = sorted(rng.sample(range(1, 40), rng.randint(1, 12)))
        selector = page_selector(pages)
        assert re.fullmatch(r"\d+-\d+|\d+(,\d+)*", selector), selector
        assert parse_page_selection(selector) == tuple(pages)
    assert page_selector([3, 4, 5]) == "3-5" and page_selector([7]) == "7"
    assert page_selector([1, 2, 3, 7]) == "1,2,3,7"


@pytest.mark.parametrize(
    ("written", "pages"),
    [("1-3,7", (1, 2, 3, 7)), (" 4 , 2 ", (2, 4)), ("", None), (None, None), ("5-5", (5,))],
)
def test_users_may_write_a_mix(written: str | None, pages: tuple[int, ...] | None) -> None:
    assert parse_page_selection(written) == pages


@pytest.mark.parametrize("written", ["0", "3-2", "1,1", "1-3,2", "a", "1,,2"])
def test_selections_the_api_would_refuse_are_refused_before_any_call(written: str) -> None:
    with pytest.raises(ValueError, match="pages"):
        parse_page_selection(written)
