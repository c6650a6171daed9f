"""Upload records: which Delix files this writer stored, so that a crash cannot leak them.

Why a module of its own: stored files take the account's few storage slots until someone
deletes them, and the API cannot list whose they are. So every upload is on record under
``_delix_state/uploads/<run tag>/<chunk id>.json`` from before the request until its files are
confirmed deleted, and a later writer deletes what a dead one left. This is bookkeeping of the
account, not of the table; the store holds one (like the extract ledger, ``core/ledger.py``) and
offers its methods under its own names, which the pipeline calls.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from airflow_provider_delix.core.lease import WriterLease
from airflow_provider_delix.core.state_dir import StateDir, StateUnreadableError, safe_name


class UploadRecords:
    """This writer's upload records, and the records of dead writers to clean up after.

    ``lock`` is the store's: a record is rewritten under the same lock as the rows it pays for.
    """

    def __init__(self, state: StateDir, run_tag: str, lease: WriterLease, lock: threading.RLock) -> None:
        self._sd = state
        self._state = state.root
        self.run_tag = run_tag
        self._lease = lease
        self._lock = lock
        self._uploads: dict[str, list[str]] = {}

    def record_upload_intent(self, chunk_id: str, files: int) -> None:
        """Before an upload request: ``files`` may be stored under uuids we are not told yet.

        If the answer never arrives (a kill, a lost connection), the next attempt knows that
        many files may sit on the account -- the API cannot list whose they are -- and reports
        them (``files_in_doubt``) instead of passing over them in silence.
        """
        self._write_uploads(chunk_id, [], pending=files)

    def record_uploaded(self, chunk_id: str, uuids: Sequence[str]) -> None:
        """Remember Delix files we stored, before using them, so a crash cannot leak them."""
        self._write_uploads(chunk_id, uuids, pending=0)

    def _write_uploads(self, chunk_id: str, uuids: Sequence[str], *, pending: int) -> None:
        path = f"{self._state}/uploads/{self.run_tag}/{safe_name(chunk_id)}.json"
        with self._lock:
            merged = self._uploads.setdefault(chunk_id, [])
            merged.extend(u for u in uuids if u not in merged)
            if not merged and not pending:
                self._uploads.pop(chunk_id, None)
                self._sd.rm([path])  # a refused upload: nothing was stored
                return
            body = {"run_tag": self.run_tag, "chunk_id": chunk_id, "uuids": merged, "pending": pending}
            self._sd.write_bytes(path, json.dumps(body).encode())

    def record_gone(self, chunk_id: str, uuids: Sequence[str]) -> None:
        """Some of the chunk's files are confirmed deleted; the others stay on record."""
        gone = set(uuids)
        with self._lock:  # re-entrant: _write_uploads takes it too
            self._uploads[chunk_id] = [u for u in self._uploads.get(chunk_id, []) if u not in gone]
            self._write_uploads(chunk_id, [], pending=0)  # removes the record once it is empty

    def record_deleted(self, chunk_id: str) -> None:
        """Every file of the chunk is confirmed deleted on Delix: forget the record."""
        with self._lock:
            self._uploads.pop(chunk_id, None)
            self._sd.rm([f"{self._state}/uploads/{self.run_tag}/{chunk_id}.json"])

    def orphaned_uploads(self, *, wait: bool = True) -> list[str]:
        """Uuids stored on Delix by crashed writers and never deleted (never a live writer's)."""
        uuids: set[str] = set()
        for _path, body in self._upload_records(wait):
            uuids.update(body.get("uuids", []))
        return sorted(uuids)

    def uploads_in_doubt(self) -> int:
        """Files dead writers were uploading when they stopped: maybe stored, uuids unknown.

        Counted once: the pending counts are cleared as they are read.
        """
        pending = 0
        for path, body in self._upload_records(wait=False):
            count = int(body.get("pending", 0))
            if not count:
                continue
            pending += count
            if body.get("uuids"):
                self._sd.write_bytes(path, json.dumps({**body, "pending": 0}).encode())
            else:
                self._sd.rm([path])
        return pending

    def forget_uploads(self, uuids: Iterable[str]) -> None:
        """Drop uuids (deleted through the API, or found gone) from crashed writers' records."""
        gone = set(uuids)
        for path, body in self._upload_records(wait=False):
            left = [u for u in body.get("uuids", []) if u not in gone]
            if not left and not body.get("pending"):
                self._sd.rm([path])
            elif len(left) != len(body.get("uuids", [])):
                self._sd.write_bytes(path, json.dumps({**body, "uuids": left}).encode())

    def _upload_records(self, wait: bool) -> list[tuple[str, dict[str, Any]]]:
        records = []
        for tag in sorted(self._lease.dead_writers(wait)):
            paths = self._sd.files("uploads", tag, ".json")
            for path, data in self._sd.read_many(paths, missing_ok=True).items():
                try:
                    records.append((path, dict(json.loads(data))))
                except ValueError:
                    raise StateUnreadableError(
                        f"The upload record {path} cannot be read: the Delix files it lists could not "
                        "be deleted. Restore or remove it by hand."
                    ) from None
        return records
