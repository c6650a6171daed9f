"""The end of an image run: the last budget's worth of files goes in smaller chunks.

A file holds its storage slot for U + E(k) + D, where E grows with the k pages of its
extraction request (on the benchmark's emulator 0.4 s + 0.1 s per page: 0.9 s for a chunk of
5, 0.6 s for a chunk of 2). In the body of a run k does not matter much: the budget stays
full and full chunks need the fewest requests. At the end it does: the last round of chunks
is dispatched once the round before frees its slots, and the run ends when the slowest of
them has its deletes confirmed. Cut into chunks of 2 instead of 5, that round ends 0.3 s
sooner (an image run of 600 images lasts about 22 s, so 1.4 % of it), for a few more
requests: 30 files take 15 uploads and 15 extractions instead of 6 and 6.

To know which files are the last ones without knowing the archive's size, the pipeline holds
back ``lookahead`` files (one budget's worth) of planned chunks before dispatching them; when
the input ends, what is held back is the tail and is cut again by :meth:`TailPolicy.split`.
Only file grouping changes: the files, their order, their storage budget (taken per chunk,
as before) and the 5-files-per-request cap stay as they were.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

F = TypeVar("F")


@dataclass(frozen=True, slots=True)
class TailPolicy:
    """How the last ``budget_files`` files of a run are grouped; see the module docstring."""

    budget_files: int  # files the storage budget holds (max_stored_files)
    chunk_files: int  # files per chunk in the body of the run (chunk_size_for)

    def __post_init__(self) -> None:
        if self.budget_files < 1 or not 1 <= self.chunk_files <= self.budget_files:
            raise ValueError(
                f"A tail needs 1 <= chunk_files <= budget_files, got {self.chunk_files}/{self.budget_files}."
            )

    @property
    def tail_chunk(self) -> int:
        """Files per chunk in the tail: half a body chunk (5 -> 2, 4 -> 2, 3 -> 1), at least 1."""
        return max(1, self.chunk_files // 2)

    @property
    def active(self) -> bool:
        """Whether cutting the tail changes anything (not with chunks of 1)."""
        return self.tail_chunk < self.chunk_files

    @property
    def lookahead(self) -> int:
        """Files of planned chunks held back before dispatch, so the tail is known when input ends."""
        return self.budget_files if self.active else 0

    @property
    def concurrency(self) -> int:
        """Chunk workers the tail needs to fill the budget with tail chunks, plus one ready to go."""
        return math.ceil(self.budget_files / self.tail_chunk) + 1

    def sizes(self, files: int) -> list[int]:
        """Chunk sizes, in order, for the last ``files`` files of a run.

        The last ``min(files, budget_files)`` go in chunks of :attr:`tail_chunk`; any before
        them stay in body chunks of :attr:`chunk_files`. A short remainder goes first, where it
        finishes before the files after it.
        """
        if files < 0:
            raise ValueError(f"files must be >= 0, got {files}.")
        tail = min(files, self.budget_files) if self.active else 0
        body = files - tail
        out = _cut(body, self.chunk_files)
        out.extend(_cut(tail, self.tail_chunk))
        return out

    def split(self, files: Sequence[F]) -> list[list[F]]:
        """``files`` (in dispatch order) regrouped by :meth:`sizes`."""
        groups: list[list[F]] = []
        start = 0
        for size in self.sizes(len(files)):
            groups.append(list(files[start : start + size]))
            start += size
        return groups


def _cut(files: int, size: int) -> list[int]:
    """``files`` in chunks of ``size``, the remainder (if any) first."""
    full, rest = divmod(files, size)
    return ([rest] if rest else []) + [size] * full
