"""The key registry: which Delix files the writers on one API key hold, so the rest can be swept.

Delix cannot say whose a stored file is (``GET /files`` gives uuid, status, extension and page
count: no name, no upload time), and every uploader on a key shares its 30 files / 100 MB.
So every writer (one task attempt) on the key keeps, in one shared place the connection names
(``registry_path``), a lease with a heartbeat and one small *claims* file:

* an **intent** before each ``POST /files`` is sent (how many files it may store);
* resolved the moment the answer arrives: the uuids it names become **claims**; a request that
  definitely failed (refused, 4xx) leaves nothing; a **lost** answer (timeout, dropped
  connection, 502/504, an unreadable answer) leaves files that nobody claims, if any were stored;
* claims of deleted files are dropped in memory and leave the file with its next rewrite (a
  claim of a file that is gone is harmless: it is never in a listing).

:mod:`.orphan_sweep` lists the account, reads this registry, waits for the intents in flight,
and takes whatever no live writer claims as an orphan. Layout under ``<registry_path>/<account>``
(the account is a truncated sha256 of base URL and key, never the key)::

    writers/<tag>.json   the lease (core/lease.py), rewritten by the heartbeat
    claims/<tag>.json    {"intents": {id: files}, "claims": [uuid, ...]}, rewritten on change
    seen.json            uuid -> first time a sweep saw it unclaimed (for the expiry report)

Writes per upload: two small files (intent, answer); measured in ``docs/cleanup.md``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_delix.core.fspath import open_location
from airflow_provider_delix.core.lease import WriterLease, lease_dead
from airflow_provider_delix.core.state_dir import StateDir, StateUnreadableError

log = logging.getLogger(__name__)

DEFAULT_SUBDIR = os.path.join("delix", "registry")


def default_registry_path() -> str:
    """``$AIRFLOW_HOME/delix/registry``: right when every task on the key runs on this host."""
    home = os.environ.get("AIRFLOW_HOME") or os.path.join(os.path.expanduser("~"), "airflow")
    return os.path.join(home, DEFAULT_SUBDIR)


def account_fingerprint(base_url: str, api_key: str) -> str:
    """Names the account's folder: the same key on the same API, never the key itself."""
    digest = hashlib.sha256(f"{base_url.rstrip('/')}\n{api_key}".encode()).hexdigest()
    return digest[:24]


@dataclass(frozen=True, slots=True)
class WriterView:
    """One writer as a sweep sees it."""

    tag: str
    live: bool
    intents: Mapping[str, int]  # pending intent id -> files it may store
    claims: frozenset[str]


@dataclass(frozen=True, slots=True)
class RegistryView:
    writers: Mapping[str, WriterView] = field(default_factory=dict)

    def claimed_by_live(self) -> set[str]:
        return {u for w in self.writers.values() if w.live for u in w.claims}

    def claimed_by_dead(self) -> set[str]:
        return {u for w in self.writers.values() if not w.live for u in w.claims}

    def live_besides(self, tag: str | None) -> int:
        """Live writers other than ``tag``: the tasks sharing the key with it."""
        return sum(1 for w in self.writers.values() if w.live and w.tag != tag)

    def pending(self) -> set[tuple[str, str]]:
        """(writer, intent) of every live writer's upload whose answer is not in yet."""
        return {(w.tag, i) for w in self.writers.values() if w.live for i in w.intents}


class KeyRegistry:
    """The registry folder of one account on any fsspec storage (local by default)."""

    def __init__(
        self,
        location: Any,
        fingerprint: str,
        *,
        foreign_uploaders: bool = False,
        storage_options: Mapping[str, Any] | None = None,
        heartbeat_seconds: float = 10.0,
        stale_after_seconds: float = 45.0,
    ) -> None:
        fs, root = open_location(location, storage_options)
        self.location = location
        self.fingerprint = fingerprint
        self.foreign_uploaders = foreign_uploaders
        self.heartbeat_seconds = heartbeat_seconds
        self.stale_after_seconds = stale_after_seconds
        # No fsync: a claim matters only while its writer lives, and a host crash ends the writer.
        self.state = StateDir(fs, f"{root}/{fingerprint}", fsync=False)
        self.state.mkdirs(f"{self.state.root}/claims")

    def writer(self, tag: str) -> RegistryWriter:
        """Join the registry as a writer (a lease that beats until :meth:`RegistryWriter.close`)."""
        return RegistryWriter(self, tag)

    # ------------------------------------------------------------------ reading
    def _claims_path(self, tag: str) -> str:
        return f"{self.state.root}/claims/{tag}.json"

    def _lease_path(self, tag: str) -> str:
        return f"{self.state.root}/writers/{tag}.json"

    def read(self) -> RegistryView:
        """Every writer with a lease or claims, judged live or dead now (no waiting)."""
        sd = self.state
        tags = {_tag(p) for p in sd.ls(f"{sd.root}/claims")} | {_tag(p) for p in sd.ls(f"{sd.root}/writers")}
        paths = [self._claims_path(t) for t in tags] + [self._lease_path(t) for t in tags]
        found = sd.read_many(paths, missing_ok=True)
        now = time.time()
        writers = {}
        for tag in sorted(tags):
            lease = _json(found.get(self._lease_path(tag)))
            claims = _json(found.get(self._claims_path(tag)), strict_path=self._claims_path(tag)) or {}
            live = lease is not None and not lease_dead(lease, now, self.stale_after_seconds)
            writers[tag] = WriterView(
                tag=tag,
                live=live,
                intents={str(k): int(v) for k, v in dict(claims.get("intents", {})).items()},
                claims=frozenset(str(u) for u in claims.get("claims", [])),
            )
        return RegistryView(writers)

    def forget_writer(self, tag: str) -> None:
        """Drop a dead writer's records once none of its claimed files is left on the account."""
        self.state.rm([self._claims_path(tag), self._lease_path(tag)])

    # ------------------------------------------------------------------ first seen (reports)
    def first_seen(self, unclaimed: Iterable[str], now: float) -> dict[str, float]:
        """When a sweep first saw each unclaimed uuid (now for new ones); others are forgotten.

        Two sweeps racing on this file can only make a first-seen time later than the truth,
        which keeps ``first seen + 24 h`` an upper bound of the file's expiry.
        """
        path = f"{self.state.root}/seen.json"
        try:
            before = {str(k): float(v) for k, v in (_json(self.state.read_bytes(path)) or {}).items()}
        except (TypeError, ValueError):
            before = {}
        seen = {u: before.get(u, now) for u in sorted(set(unclaimed))}
        if seen != before:
            if seen:
                self.state.write_bytes(path, json.dumps(seen).encode())
            else:
                self.state.rm([path])
        return seen


class RegistryWriter:
    """One writer's lease and claims; thread-safe (chunk workers upload in parallel)."""

    def __init__(self, registry: KeyRegistry, tag: str) -> None:
        self.registry = registry
        self.tag = tag
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._intents: dict[str, int] = {}
        self._claims: set[str] = set()
        self._closed = False
        self._write_lock = threading.Lock()  # one rewrite at a time, outside the state lock
        self._version = self._written = 0  # changes made / changes on storage
        self.writes = 0
        self.lost_files = 0  # files of uploads whose answer was lost (maybe stored, unclaimed)
        self._lease = WriterLease(
            registry.state,
            tag,
            heartbeat_seconds=registry.heartbeat_seconds,
            stale_after_seconds=registry.stale_after_seconds,
        )

    def intend(self, files: int) -> str:
        """Before ``POST /files`` is sent: this request may store ``files`` files (on record on return)."""
        with self._lock:
            intent = f"i{next(self._ids)}"
            self._intents[intent] = files
            version = self._changed()
        self._commit(version)
        return intent

    def answered(self, intent: str, uuids: Iterable[str]) -> None:
        """The answer arrived: its stored files are ours (an empty list: nothing was stored)."""
        with self._lock:
            self._intents.pop(intent, None)
            self._claims.update(uuids)
            version = self._changed()
        self._commit(version)

    def lost(self, intent: str, named: Iterable[str] = ()) -> None:
        """The answer was lost (maybe applied): files it stored, if any, are nobody's now."""
        with self._lock:
            files = self._intents.pop(intent, 0)
            named = set(named)
            self._claims |= named
            self.lost_files += max(files - len(named), 0)
            version = self._changed()
        self._commit(version)

    def dropped(self, uuids: Iterable[str]) -> None:
        """Files deleted (or found gone): forgotten with the next rewrite, not one write each."""
        with self._lock:
            self._claims.difference_update(uuids)

    def claims(self) -> set[str]:
        with self._lock:
            return set(self._claims)

    def close(self) -> None:
        """The writer ends: its claims file and lease go (whatever it still claims becomes an orphan)."""
        with self._write_lock:  # no rewrite in progress can bring the file back
            with self._lock:
                if self._closed:
                    return
                self._closed = True
            self.registry.state.rm([self.registry._claims_path(self.tag)])
        self._lease.release()

    def _changed(self) -> int:
        self._version += 1
        return self._version

    def _commit(self, version: int) -> None:
        """Group commit: one rewrite carries every change made so far, so threads that changed the
        record while another was writing share the next write (on S3 a PUT is tens of ms) instead of
        queueing one each. Returns once a write containing ``version`` is done."""
        with self._write_lock:
            if self._written >= version:
                return
            with self._lock:
                if self._closed:
                    return
                latest = self._version
                body = {"intents": dict(self._intents), "claims": sorted(self._claims)}
            self.registry.state.write_bytes(self.registry._claims_path(self.tag), json.dumps(body).encode())
            self._written = latest
            self.writes += 1


def _tag(path: str) -> str:
    return path.rsplit("/", 1)[-1].removesuffix(".json")


def _json(data: bytes | None, *, strict_path: str | None = None) -> dict[str, Any] | None:
    if data is None:
        return None
    try:
        value = json.loads(data)
    except ValueError:
        if strict_path is not None:  # a claims file that cannot be read could hide a live claim
            raise StateUnreadableError(
                f"The registry file {strict_path} cannot be read: no file is swept while it is "
                "unreadable. Remove it by hand once its writer is gone."
            ) from None
        return None
    return value if isinstance(value, dict) else None
