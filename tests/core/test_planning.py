"""ChunkPlanner / ContentIndex: caps, keeping sources together, dedup, resume, invalid pages."""

from __future__ import annotations

import hashlib
import itertools

import pytest
from fakes import Page, Ref, Source, images, invalid_source, source

from airflow_provider_delix.core.planning import (
    TOO_LARGE_FOR_BUDGET,
    Chunk,
    ChunkFile,
    ChunkPlanner,
    ContentIndex,
    FileOutcome,
    PageTarget,
)

MB = 1_000_000


def planner(**kwargs: object) -> ChunkPlanner:
    ids = itertools.count(1)
    options: dict[str, object] = {"max_chunk_bytes": 100 * MB, "chunk_id": lambda: f"c{next(ids)}"}
    options.update(kwargs)
    return ChunkPlanner(**options)  # type: ignore[arg-type]


def layout(chunks: list[Chunk]) -> list[list[tuple[str, int]]]:
    return [[(f.targets[0].source, f.targets[0].page_number) for f in c.files] for c in chunks]


def plan_all(p: ChunkPlanner, sources: list[Source]) -> list[Chunk]:
    chunks: list[Chunk] = []
    for s in sources:
        chunks += p.add(s).chunks
    return chunks + p.flush()


def test_every_page_planned_once_within_the_caps() -> None:
    p = planner(max_chunk_bytes=2500)
    sources = [
        source(f"s{i}", *[f"s{i}p{j}".encode() for j in range(i % 7 + 1)], size=450) for i in range(40)
    ]
    chunks = plan_all(p, sources)
    planned = [key for c in layout(chunks) for key in c]
    expected = [(s.ref.source, page.page_number) for s in sources for page in s.pages]
    assert sorted(planned) == sorted(expected) and len(planned) == len(set(planned))
    assert all(1 <= len(c.files) <= 5 and c.nbytes <= 2500 for c in chunks)
    assert len({c.chunk_id for c in chunks}) == len(chunks)


def test_pages_of_a_source_stay_together() -> None:
    p = planner()
    chunks = plan_all(p, [source("a", b"a1", b"a2"), source("b", b"b1", b"b2", b"b3"), source("c", b"c1")])
    assert layout(chunks)[0] == [("a", 1), ("a", 2), ("b", 1), ("b", 2), ("b", 3)]
    # A 3-page source that does not fit the open chunk's 2 free slots goes whole into a new one.
    p = planner()
    chunks = plan_all(
        p, [source("x", b"x1", b"x2", b"x3"), source("y", b"y1", b"y2", b"y3"), source("z", b"z1")]
    )
    assert [("y", 1), ("y", 2), ("y", 3)] in [c[:3] for c in layout(chunks)]
    assert all(len({s for s, _ in c}) <= 2 for c in layout(chunks))


def test_a_long_source_is_cut_into_full_chunks_of_consecutive_pages() -> None:
    p = planner()
    step = p.add(source("long", *[f"p{i}".encode() for i in range(12)]))
    assert layout(step.chunks) == [[("long", i) for i in range(1, 6)], [("long", i) for i in range(6, 11)]]
    assert layout(p.flush()) == [[("long", 11), ("long", 12)]]


def test_chunk_bytes_respect_the_budget_and_oversized_pages_are_invalid() -> None:
    p = planner(max_chunk_bytes=100 * MB)
    chunks = plan_all(p, [source(f"big{i}", f"x{i}".encode(), size=40 * MB) for i in range(5)])
    assert [len(c.files) for c in chunks] == [2, 2, 1]
    step = planner(max_chunk_bytes=1000).add(source("huge", b"h", size=1001))
    assert step.chunks == [] and [i.error for i in step.invalid] == [TOO_LARGE_FOR_BUDGET]


def test_open_chunks_are_bounded() -> None:
    p = planner(open_chunks=2)
    emitted = []
    for name in "abcdef":
        emitted += p.add(
            source(name, b"1" + name.encode(), b"2" + name.encode(), b"3" + name.encode())
        ).chunks
        assert len(p.held_files()) <= 2 * 5
    assert len(emitted) >= 3


def test_resumed_and_invalid_pages_never_reach_a_chunk() -> None:
    done = source("done", b"d1", b"d2")
    p = planner(done_keys={(done.sha256, 1), (done.sha256, 2)})
    step = p.add(done)
    assert (step.resumed, step.pages, step.chunks) == (2, 2, [])
    bad = invalid_source("bad.png", error="corrupt_image")
    step = p.add(bad)
    assert [(i.target.source, i.error, i.message) for i in step.invalid] == [
        ("bad.png", "corrupt_image", "cannot decode")
    ]
    assert p.flush() == []


def test_identical_content_is_planned_once_and_fanned_out() -> None:
    index = ContentIndex()
    p = planner(index=index)
    shared = b"same scan"
    sources = [
        source("a.pdf", b"a1", shared),
        source("b.pdf", shared),
        Source(Ref("copy-of-b.pdf"), source("b.pdf", shared).sha256, (Page(1, shared.ljust(0)),)),
    ]
    chunks = plan_all(p, sources)
    files = [f for c in chunks for f in c.files]
    assert sum(f.content_sha256 == hashlib.sha256(shared).hexdigest() for f in files) == 1
    target_file = next(f for f in files if f.data == shared)
    assert [(t.source, t.page_number) for t in target_file.targets] == [
        ("a.pdf", 2),
        ("b.pdf", 1),
        ("copy-of-b.pdf", 1),
    ]


def test_finished_content_is_reused_from_the_cache_and_failures_are_not() -> None:
    index = ContentIndex(cache_size=1)
    p = planner(index=index)
    first = plan_all(p, [source("a", b"X")])[0].files[0]
    outcome = FileOutcome("processed", "text", None, None, "u1", "e1")
    assert [t.source for t in index.complete(first, outcome)] == ["a"]
    step = p.add(source("b", b"X"))
    assert step.chunks == [] and p.flush() == []
    assert [(t.source, o, e) for t, o, e in step.reused] == [("b", outcome, None)]
    # No outcome (a transient failure): the next page with that content is sent again.
    again = plan_all(p, [source("c", b"Y")])[0].files[0]
    index.complete(again, None)
    assert len(plan_all(p, [source("d", b"Y")])) == 1
    # The cache is bounded (one entry here): once "Z" finishes, "X" is sent again.
    z = plan_all(p, [source("e", b"Z")])[0].files[0]
    index.complete(z, outcome)
    assert len(plan_all(p, [source("f", b"X")])) == 1


def test_a_late_duplicate_attaches_until_completion() -> None:
    index = ContentIndex()
    target = PageTarget("a", "sha-a", 1, None)
    new = index.claim("h", target, "a.png", b"data")
    assert new is not None and not isinstance(new, FileOutcome)
    assert index.claim("h", PageTarget("b", "sha-b", 1, None), "b.png", b"data") is None
    assert [t.source for t in index.complete(new, None)] == ["a", "b"]
    assert index.live_count() == 0


def test_configuration_is_checked() -> None:
    with pytest.raises(ValueError, match="1 to 5"):
        planner(max_files=6)
    with pytest.raises(ValueError):
        planner(max_chunk_bytes=0)
    assert len(plan_all(planner(max_files=2), images(5))) == 3


def test_unreadable_sources_are_keyed_by_name_so_two_missing_files_never_share_a_key() -> None:
    from airflow_provider_delix.core.planning import PageTarget

    a = PageTarget("missing-a.png", "", 1, None)
    b = PageTarget("missing-b.png", "", 1, None)
    assert a.key != b.key
    assert PageTarget("x.png", "abc", 2, None).key == ("abc", 2)


def _part(source: str, key: str = "abc:danlin:1,2") -> ChunkFile:
    targets = [PageTarget(source, "sha-of-the-pdf", n, None) for n in (1, 2)]
    return ChunkFile(key, "x.pdf", b"%PDF-", page_map=((1, targets[0]), (2, targets[1])), engine="danlin")


def test_identical_pdf_parts_share_one_request_while_live_and_reuse_it_once_finished() -> None:
    index = ContentIndex()
    first = _part("a.pdf")
    assert index.join(first) is None  # placed: uploaded and extracted
    assert index.join(_part("b.pdf")) == []  # live: its pages ride on the first one's request
    sources = [(n, [t.source for t in ts]) for n, ts in index.pending_rows(first)]
    assert sources == [(1, ["a.pdf", "b.pdf"]), (2, ["a.pdf", "b.pdf"])]  # what the ledger records
    done = FileOutcome("processed", "text", None, None, "file-uuid", "extract-uuid")
    settled = index.settle(first, lambda n: done)
    assert [(n, [t.source for t in ts]) for n, ts in settled] == sources
    reused = index.join(_part("c.pdf"))  # finished: every page's answer is reused, no request
    assert reused is not None and [(t.source, t.page_number, o) for t, o in reused] == [
        ("c.pdf", 1, done),
        ("c.pdf", 2, done),
    ]


def test_a_pdf_part_with_a_page_left_unanswered_is_sent_again() -> None:
    index = ContentIndex()
    first = _part("a.pdf")
    assert index.join(first) is None
    done = FileOutcome("processed", "text", None, None, "file-uuid", "extract-uuid")
    index.settle(first, lambda n: done if n == 1 else None)  # page 2: no result
    assert index.join(_part("b.pdf")) is None
    assert index.join(_part("c.pdf", key="abc:danlin:2")) is None  # other pages: another request


def test_a_reused_pdf_part_says_which_engine_read_it() -> None:
    """In an ``engine="auto"`` run a part is read by probe or danlin; a copy answered from the
    finished part must carry that engine to its rows, not the run's ``auto``."""
    from dataclasses import dataclass

    @dataclass
    class Part:
        data: bytes = b"%PDF-typed"
        filename: str = "typed.pdf"
        page_map: tuple[tuple[int, int], ...] = ((1, 1),)
        selection: str | None = None
        engine: str = "probe"
        normalization: str | None = None
        page_count: int = 1

    @dataclass
    class Document:
        ref: Ref
        sha256: str = "sha-of-the-pdf"
        pages: tuple[Page, ...] = ()
        parts: tuple[Part, ...] = (Part(),)

    index = ContentIndex()
    p = planner(index=index)
    (chunk,) = p.add(Document(Ref("a.pdf"))).chunks + p.flush()
    done = FileOutcome("processed", "typed text", None, None, "file-uuid", "extract-uuid")
    index.settle(chunk.files[0], lambda n: done)
    step = p.add(Document(Ref("b.pdf")))
    assert [(t.source, o, e) for t, o, e in step.reused] == [("b.pdf", done, "probe")]
