"""Exactly one live writer collects each extract a dead writer left on record.

Why: writers that share an output path (mapped tasks, overlapping DAG runs) all see the
records of a writer that is gone, and deferrable tasks that resume together are exactly such
writers: each one's earlier attempt is "gone" to the others. Two of them collecting the same
extract would both write its rows. Collecting is free, so the harm is data, not money: every
page of that extract twice in the table.

The protocol is :mod:`.exclusive`'s. The marker is a copy of the record in the writer's own
ledger, named after the extract (``adopt-<hash of the extract uuid>``, the same name in every
writer's ledger, so a dead adopter's marker and the original name one extract). Because it is
a full record with the extract uuid, a writer claiming the same pages for a new request sets
them aside (:meth:`.claims.ClaimBook.check`), as it would for the original. A writer that dies
holding one leaves an ordinary record of a dead writer, which the next attempt adopts like the
original; rows another writer stored meanwhile are left out (``written_elsewhere``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable

from airflow_provider_delix.core.exclusive import Marker, decide
from airflow_provider_delix.core.ledger import ExtractLedger, ExtractRecord
from airflow_provider_delix.core.state_dir import StateDir


def marker_name(extract_uuid: str) -> str:
    """The marker's chunk id: one name per extract in every writer's ledger (safe as a file name)."""
    return "adopt-" + hashlib.sha256(extract_uuid.encode()).hexdigest()[:24]


class AdoptionClaims:
    """Takes (or yields) the right to collect a dead writer's extract; see the module docstring."""

    def __init__(
        self,
        state: StateDir,
        run_tag: str,
        ledger: ExtractLedger,
        alive: Callable[[str], bool],
        written_elsewhere: Callable[[], set[tuple[str, int]]] = set,
        *,
        poll_seconds: float = 0.2,
        decide_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self._state, self._tag, self._ledger, self._alive = state, run_tag, ledger, alive
        # Resume keys other writers of the output gave a row since this one started (their
        # journals and new parts): a collector that died before dropping the record, or one that
        # dropped it after this writer listed it, wrote them already.
        self.written_elsewhere = written_elsewhere
        self.poll_seconds, self.decide_timeout = poll_seconds, decide_timeout
        self._clock, self._sleep = clock, sleep

    def take(self, record: ExtractRecord) -> ExtractRecord | None:
        """Our decided marker for ``record``'s extract, or None: another writer collects it."""
        assert record.extract_uuid is not None, "an intent has no extract to collect"
        name = marker_name(record.extract_uuid)
        mine = dataclasses.replace(record, chunk_id=name, claimed_at=time.time(), decided=False, path="")
        self._ledger.record(mine)
        if not decide(
            (mine.claimed_at, self._tag),
            lambda: self._others(name),
            poll_seconds=self.poll_seconds,
            timeout=self.decide_timeout,
            clock=self._clock,
            sleep=self._sleep,
        ):
            self.release(mine)
            return None
        decided = dataclasses.replace(mine, decided=True)
        self._ledger.record(decided)
        return decided

    def release(self, marker: ExtractRecord) -> None:
        """Drop our marker: collected (rows durable), left waiting, or given up."""
        self._ledger.forget(marker.chunk_id)

    def _others(self, name: str) -> list[Marker]:
        out: list[Marker] = []
        for tag in sorted(self._state.tags("extracts") - {self._tag}):
            path = f"{self._state.root}/extracts/{tag}/{name}.json"
            data = self._state.read_bytes(path)
            if data is None or not self._alive(tag):
                continue
            try:
                record = ExtractRecord.from_json(data, path)
                out.append((tag, record.claimed_at, record.decided))
            except (ValueError, KeyError, TypeError):
                out.append((tag, 0.0, True))  # unreadable: a marker that exists is a claim
        return out
