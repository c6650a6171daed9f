"""TailPolicy: how the first and last budget's worth of an image run is cut into chunks."""

from __future__ import annotations

import pytest

from airflow_provider_delix.core.tail import TailPolicy


@pytest.mark.parametrize(
    ("budget", "chunk", "tail_chunk", "lookahead", "concurrency"),
    [(30, 5, 2, 30, 16), (8, 4, 2, 8, 5), (7, 3, 1, 7, 8), (3, 1, 1, 0, 4)],
)
def test_tail_chunks_are_half_a_body_chunk_and_get_workers_to_fill_the_budget(
    budget: int, chunk: int, tail_chunk: int, lookahead: int, concurrency: int
) -> None:
    policy = TailPolicy(budget, chunk)
    assert policy.tail_chunk == tail_chunk
    assert policy.lookahead == lookahead
    assert policy.concurrency == concurrency
    assert policy.active == (lookahead > 0)


@pytest.mark.parametrize(
    ("files", "sizes"),
    [
        (0, []),
        (1, [1]),
        (7, [1, 2, 2, 2]),
        (30, [2] * 15),
        (43, [3, 5, 5, *[2] * 15]),  # 13 body files before the 30 of the tail, remainder first
        (65, [5] * 7 + [2] * 15),
    ],
)
def test_the_last_budget_of_files_goes_in_tail_chunks(files: int, sizes: list[int]) -> None:
    assert TailPolicy(30, 5).sizes(files) == sizes


def test_chunks_of_one_are_left_alone() -> None:
    policy = TailPolicy(3, 1)
    assert not policy.active and policy.sizes(5) == [1] * 5


@pytest.mark.parametrize("files", range(0, 70))
def test_split_keeps_every_file_once_in_order_and_never_exceeds_a_body_chunk(files: int) -> None:
    items = list(range(files))
    groups = TailPolicy(30, 5).split(items)
    assert [x for g in groups for x in g] == items
    assert all(1 <= len(g) <= 5 for g in groups)


@pytest.mark.parametrize(("budget", "chunk"), [(0, 1), (5, 0), (4, 5)])
def test_impossible_policies_are_refused(budget: int, chunk: int) -> None:
    with pytest.raises(ValueError, match="chunk_files"):
        TailPolicy(budget, chunk)


def test_negative_file_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="files"):
        TailPolicy(30, 5).sizes(-1)
