"""Several writers on one output path: every page is paid once and written once (JOIN).

Mapped tasks may share an ``output_path`` (``docs/scaling-out.md``), and two runs of a DAG
may overlap on it. Serialising them (the second waits for the first) would serialise
scale-out, so writers *join*: each page goes to exactly one of them.

The claim is the ledger intent (:mod:`.ledger`): before an extraction request is sent, its
record lists every page it answers (content hash, page number, source) and carries
``claimed_at``. After writing it, the writer looks for other writers' leases and for part
files others published since it started (a writer that already left has rows but no lease);
alone, those two listings are the whole cost (reused for ``cache_seconds``). Once others were
seen, the writer is never "alone" again in this run. When others exist, it reads their
extract records, then their journals and any part file published since it started, and for
each file of its request:

* every page already has a row (another writer's, same engine and language): the file is
  *dropped*, no row is written here;
* a page is in another writer's request that is answered or *decided*: the file is
  *deferred*;
* a page is in another writer's undecided claim: the earlier claim wins, ordered by
  ``(claimed_at, writer tag)``. The loser withdraws (defers); the winner waits until the
  loser's record says what it decided (it drops the file, or keeps it because it never saw
  the winner's claim -- then the winner defers). Exactly one of them sends;
* otherwise the file is sent; the record is rewritten without the files set aside and marked
  *decided*.

Deferred files are deleted from Delix at once (no storage is held while waiting). At the end
of the run :meth:`ClaimBook.settle_deferred` waits, while their holder's lease lives and at
most ``wait_timeout``, for their pages to get a row; what is still missing after that (the
holder died, or failed them) is sent again through the same protocol.

Why this is safe: a writer reads the others' claims only after its own is written, so of two
writers claiming one page at least one sees the other's claim, and both read the same two
records to order them. A newcomer finds the older writers' leases when it starts and waits
``cache_seconds`` before its first claim, so an older writer that still uses a cached "alone"
has written every claim it made under that cache before the newcomer reads. Assumes storage
that is read-after-write consistent for writes, deletes and listings: local disks and S3 are.
Clocks only order claims; a skewed clock changes who wins, never that exactly one sends.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_delix.core.adopt_claims import AdoptionClaims
from airflow_provider_delix.core.lease import process_gone
from airflow_provider_delix.core.ledger import ExtractLedger, ExtractRecord
from airflow_provider_delix.core.others_rows import OthersRows
from airflow_provider_delix.core.planning import ChunkFile, PageTarget
from airflow_provider_delix.core.state_dir import StateDir
from airflow_provider_delix.core.store import OutputStore

log = logging.getLogger(__name__)

Key = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What becomes of each file (by uuid) of a claimed request."""

    send: frozenset[str]
    deferred: frozenset[str] = frozenset()
    done: frozenset[str] = frozenset()
    record: ExtractRecord | None = None  # the record as sent (None: nothing is sent)


@dataclass(slots=True)
class Settled:
    """Deferred files at the end of a run: done by another writer, free to send, or still held."""

    done: list[ChunkFile] = field(default_factory=list)
    free: list[ChunkFile] = field(default_factory=list)
    held: list[ChunkFile] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Claim:
    tag: str
    record: ExtractRecord
    alive: bool
    keys: frozenset[Key]


def claim_book(store: OutputStore, engines: Iterable[str], language: str | None, **kw: Any) -> ClaimBook:
    """The claim book of ``store``'s writer; its rows count when made with these settings."""
    allowed = frozenset(engines)
    return ClaimBook(
        store.state,
        store.run_tag,
        store.ledger,
        fs=store.fs,
        path=store.path,
        own_parts=store.part_prefix,
        matches=lambda engine, lang: engine in allowed and lang == language,
        stale_after_seconds=store.stale_after_seconds,
        **kw,
    )


def _keys(targets: Iterable[PageTarget]) -> set[Key]:
    return {t.key for t in targets}


class ClaimBook:
    """This writer's view of the other writers of its output path (see the module docstring)."""

    def __init__(
        self,
        state: StateDir,
        run_tag: str,
        ledger: ExtractLedger,
        *,
        fs: Any,
        path: str,
        own_parts: str,
        matches: Callable[[str | None, str | None], bool],
        stale_after_seconds: float,
        cache_seconds: float = 1.0,
        poll_seconds: float = 0.2,
        decide_timeout: float = 30.0,
        wait_timeout: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self._state, self._tag, self._ledger = state, run_tag, ledger
        self._stale = stale_after_seconds
        self.cache_seconds, self.poll_seconds = cache_seconds, poll_seconds
        self.decide_timeout, self.wait_timeout = decide_timeout, wait_timeout
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._seen = False  # another writer was seen: for the rest of the run, never "alone"
        self._alone_at: float | None = None  # when a listing last found nobody else
        self._rows = OthersRows(state, run_tag, fs=fs, path=path, own_parts=own_parts, matches=matches)
        self.deferred_files = 0

    # ------------------------------------------------------------------ alone?

    def join(self) -> None:
        """Called once before the first claim: a newcomer waits out the others' cached "alone"."""
        if self._list_others():
            log.info(
                "Other writers share this output path: pages are claimed so each is paid once "
                "(waiting %.1f s before the first claim).",
                self.cache_seconds,
            )
            self._sleep(self.cache_seconds)

    def _list_others(self) -> bool:
        started = self._clock()
        leases = self._state.ls(f"{self._state.root}/writers")
        others = any(p.rsplit("/", 1)[-1] != f"{self._tag}.json" for p in leases) or self._rows.new_parts()
        with self._lock:
            self._seen = self._seen or others
            if not self._seen:
                self._alone_at = started
            return self._seen

    def alone(self) -> bool:
        """No other writer, now or since this run started (looked at most ``cache_seconds`` ago).

        A writer that left counts: its lease is gone but its rows are not, and a page it wrote
        must be dropped here, not paid again. Once another writer was seen, every claim is
        checked for the rest of the run."""
        with self._lock:
            if self._seen:
                return False  # nothing to list: the answer cannot change back
            at = self._alone_at
        if at is not None and self._clock() - at < self.cache_seconds:
            return True
        return not self._list_others()

    # ------------------------------------------------------------------ one request

    def check(self, record: ExtractRecord) -> Verdict:
        """Decide which files of ``record`` (already written) this writer sends; see the module."""
        uuids = frozenset(f.uuid for f in record.files)
        if self.alone():
            return Verdict(send=uuids, record=record)
        keys = {f.uuid: {k for _, ts in f.pages for k in _keys(ts)} for f in record.files}
        mine = (record.claimed_at, self._tag)
        deadline = self._clock() + self.decide_timeout
        while True:
            claims = self._claims(set().union(*keys.values()))
            done = self._rows.settled_keys()
            deferred, dropped, waiting = set(), set(), set()
            for uuid, wanted in keys.items():
                if wanted <= done:
                    dropped.add(uuid)
                    continue
                for claim in claims:
                    if not claim.keys & (wanted - done):
                        continue
                    rec = claim.record
                    if not claim.alive and rec.extract_uuid is None:
                        continue  # a dead writer's unanswered intent: its pages are sent again
                    if not claim.alive or rec.extract_uuid is not None or rec.decided:
                        deferred.add(uuid)
                    elif (rec.claimed_at, claim.tag) < mine:
                        deferred.add(uuid)  # the earlier claim wins: withdraw
                    else:
                        waiting.add(uuid)  # ours wins: wait for the other to withdraw or not
            waiting -= deferred
            if not waiting or self._clock() >= deadline:
                deferred |= waiting
                break
            self._sleep(self.poll_seconds)
        send = uuids - deferred - dropped
        kept = record.keeping(set(send))
        if send:
            self._ledger.record(kept)
        else:
            self._ledger.forget(record.chunk_id)
        with self._lock:
            self.deferred_files += len(deferred)
        if deferred or dropped:
            log.info(
                "Another writer of this output has or is doing %d file(s) of request %s: %d deferred, "
                "%d already done.",
                len(deferred) + len(dropped),
                record.chunk_id,
                len(deferred),
                len(dropped),
            )
        return Verdict(send, frozenset(deferred), frozenset(dropped), kept if send else None)

    def precheck(self, keys: Sequence[set[Key]]) -> list[str | None]:
        """Before upload: "done" / "deferred" for files another writer has or holds, else None.

        Writes nothing and never lets a file through that :meth:`check` would stop: it only
        saves the upload (and the storage slot) of a file the claim would set aside anyway.
        """
        if self.alone():
            return [None] * len(keys)
        claims = self._claims(set().union(*keys) if keys else set())
        done = self._rows.settled_keys()
        out: list[str | None] = []
        for wanted in keys:
            left = wanted - done
            held = any(c.keys & left and (c.alive or c.record.extract_uuid) for c in claims)
            out.append("done" if not left else "deferred" if held else None)
        return out

    def keep_rows(self, keys: Sequence[Key]) -> list[bool]:
        """Which rows to write: False for a page another writer already wrote (counted)."""
        return self._rows.keep_rows(keys)

    def know(self, retry_ids: Container[tuple[Any, ...]]) -> None:
        """The retryable rows this run's resume index read: others' other ones are fresh tries."""
        self._rows.known = retry_ids

    @property
    def dropped_rows(self) -> int:
        """Rows not written because another writer had written them."""
        return self._rows.dropped_rows

    def adoption_claims(self) -> AdoptionClaims:
        """The same protocol for whole extracts dead writers left (:mod:`.adopt_claims`)."""
        return AdoptionClaims(
            self._state,
            self._tag,
            self._ledger,
            self._alive,
            self._rows.done_keys,
            poll_seconds=self.poll_seconds,
            decide_timeout=self.decide_timeout,
            clock=self._clock,
            sleep=self._sleep,
        )

    # ------------------------------------------------------------------ end of the run

    def settle_deferred(
        self,
        files: Sequence[ChunkFile],
        keys_of: Callable[[ChunkFile], set[Key]],
        *,
        aborting: Callable[[], bool],
    ) -> Settled:
        """Wait (bounded) for deferred files' pages to get a row from their holder; sort them."""
        deadline = self._clock() + self.wait_timeout
        wanted = {id(f): keys_of(f) for f in files}
        while True:
            claims = self._claims(set().union(*wanted.values()) if wanted else set())
            done = self._rows.settled_keys()
            out = Settled()
            for f in files:
                keys = wanted[id(f)] - done
                live = [c for c in claims if c.keys & keys and c.alive]
                paid = [c for c in claims if c.keys & keys and not c.alive and c.record.extract_uuid]
                if not keys:
                    out.done.append(f)
                elif live:
                    out.held.append(f)
                elif paid:
                    out.held.append(f)  # paid by a writer that died: the next run collects it
                else:
                    out.free.append(f)
            live_left = any(c.alive for c in claims for f in out.held if c.keys & (wanted[id(f)] - done))
            if not live_left or self._clock() >= deadline or aborting():
                return out
            self._sleep(self.poll_seconds)

    # ------------------------------------------------------------------ reading the others

    def _alive(self, tag: str) -> bool:
        data = self._state.read_bytes(f"{self._state.root}/writers/{tag}.json")
        if data is None:
            return False
        try:
            lease = json.loads(data)
            fresh = time.time() - float(lease["heartbeat"]) <= self._stale
        except (ValueError, KeyError, TypeError):
            return True  # being rewritten: a lease that exists is treated as alive
        return fresh and not process_gone(lease)

    def _claims(self, wanted: set[Key]) -> list[_Claim]:
        """Other writers' extract records that name any of ``wanted`` (read before the rows)."""
        out: list[_Claim] = []
        for tag in sorted(self._state.tags("extracts") - {self._tag}):
            paths = self._state.files("extracts", tag, ".json")
            records = []
            for path, data in self._state.read_many(paths, missing_ok=True).items():
                try:
                    records.append(ExtractRecord.from_json(data, path))
                except (ValueError, KeyError, TypeError):
                    continue  # half a record is not a claim; the writer rewrites it whole
            alive: bool | None = None
            for rec in records:
                if rec.collected:  # its rows are written: no claim, only files left to delete
                    continue
                keys = frozenset(k for f in rec.files for _, ts in f.pages for k in _keys(ts)) & wanted
                if keys:
                    alive = self._alive(tag) if alive is None else alive
                    out.append(_Claim(tag, rec, alive, keys))
        return out
