"""Reading the paginated contents of an asynchronous extract, when the paginator's counts lie.

Pages are fetched by number from the connection's own host; ``meta.last_page`` alone must not
decide how many requests are made (an inflated one walked through empty pages), nor may a
``meta.total`` below what the pages hold lose entries.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
from loopback_servers import RawServer, answer_json

from airflow_provider_delix.hooks._extracts import MAX_EMPTY_PAGES
from airflow_provider_delix.hooks.delix import DelixHook


def _paginator(
    entries: int, *, per_page: int, last_page: int, total: int, empty: frozenset[int] = frozenset()
) -> Callable[..., None]:
    """Answers ``?page=N`` with that slice of ``entries`` pages, and the (lying) meta given;
    the pages in ``empty`` come back empty (a glitch of the server)."""

    def reply(sock: socket.socket, request_line: str) -> None:
        target = request_line.split(" ")[1]
        page = int(parse_qs(urlsplit(target).query)["page"][0])
        numbers = range((page - 1) * per_page + 1, min(page * per_page, entries) + 1)
        numbers = range(0) if page in empty else numbers
        data = [{"number": n, "status": "processed", "text": f"p{n}"} for n in numbers]
        meta = {"current_page": page, "last_page": last_page, "per_page": per_page, "total": total}
        answer_json(sock, 200, {"data": data, "links": {"next": "http://elsewhere.example/x"}, "meta": meta})

    return reply


def _read(connect: Callable[..., str], reply: Callable[..., None]) -> tuple[list[int], int]:
    with RawServer(reply) as server:
        hook = DelixHook(connect(SimpleNamespace(base_url=server.base_url, api_key="k-1"), max_retries=0))
        numbers = [p.number for p in hook.iter_extract_pages("E", "F")]
        return numbers, len(server.received)


def test_an_inflated_last_page_stops_once_total_entries_are_read(
    connect: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        numbers, requests = _read(connect, _paginator(20, per_page=15, last_page=40, total=20))
    assert numbers == list(range(1, 21))
    assert requests == 2, "page 2 is short and ends the 20 entries: no walk through empty pages"
    assert "promised more pages than it holds" in caplog.text and "extract E" in caplog.text


@pytest.mark.parametrize("total", [5, 0], ids=["total-too-low", "total-zero"])
def test_a_total_below_the_entries_present_loses_none_of_them(
    connect: Callable[..., str], total: int
) -> None:
    numbers, requests = _read(connect, _paginator(20, per_page=15, last_page=40, total=total))
    assert numbers == list(range(1, 21)), "every entry the pages hold is read"
    assert requests == 2


def test_an_inflated_last_page_with_an_inflated_total_stops_after_a_few_empty_pages(
    connect: Callable[..., str],
) -> None:
    numbers, requests = _read(connect, _paginator(30, per_page=15, last_page=40, total=99))
    assert numbers == list(range(1, 31))
    assert requests == 2 + MAX_EMPTY_PAGES, "two full pages, then a few empty ones, not 38"


def test_an_empty_page_before_total_entries_are_read_does_not_end_the_read(
    connect: Callable[..., str],
) -> None:
    """An honest paginator whose page 2 came back empty: pages 3 and 4 still hold paid text."""
    reply = _paginator(50, per_page=15, last_page=4, total=50, empty=frozenset({2}))
    numbers, requests = _read(connect, reply)
    assert numbers == [*range(1, 16), *range(31, 51)] and requests == 4


def test_an_honest_paginator_is_read_to_its_last_page(connect: Callable[..., str]) -> None:
    numbers, requests = _read(connect, _paginator(30, per_page=15, last_page=2, total=30))
    assert numbers == list(range(1, 31)) and requests == 2


def test_a_server_that_ignores_the_page_number_does_not_lead_the_read_on_for_ever(
    connect: Callable[..., str],
) -> None:
    """The same full page again and again, ``links.next`` always set, no ``last_page``."""

    def same_page(sock: socket.socket, request_line: str) -> None:
        data = [{"number": n, "status": "processed", "text": f"p{n}"} for n in range(1, 16)]
        answer_json(sock, 200, {"data": data, "links": {"next": "http://elsewhere.example/x"}})

    numbers, requests = _read(connect, same_page)
    assert requests == 2 and numbers == [*range(1, 16)] * 2, "stopped once a page brought nothing new"
