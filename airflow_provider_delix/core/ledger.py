"""The write-ahead ledger of extracts: every extract uuid is on record before anything waits on it.

An extraction is paid the moment Delix accepts ``POST /*-extraction``. If the process dies
before the pages are in the table -- a crash, a SIGKILL, a deferral that hands the task to the
triggerer -- the extract is still on Delix (a queued one keeps working), and paying for it again
would be the one expensive mistake. So every request is journalled in two phases:

1. *intent*, before the request is sent: what is needed to turn its pages into rows without
   the original inputs -- each stored file's uuid and, per page of that file, the table rows
   it answers (source, content hash, page number) -- with no extract uuid yet;
2. *answered*, the moment Delix answers: the same record with the extract uuid.

The record is removed once the rows are durable in the table, or at once when Delix refused
the request (a refusal costs nothing). An intent found without a uuid means its writer died
while the request was on the wire: Delix may have charged it, and the API has no way to find
an extract by its files, so its pages are sent again and reported as possibly paid twice.

A later attempt (any writer of the same output path, once this writer's lease is gone)
re-attaches to the recorded extracts: see :mod:`airflow_provider_delix.core.adopt`.
Records live under ``_delix_state/extracts/<run tag>/<chunk id>.json``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass

from airflow_provider_delix.core.lease import WriterLease
from airflow_provider_delix.core.planning import PageTarget
from airflow_provider_delix.core.state_dir import StateDir, StateUnreadableError

LEDGER_VERSION = 1


@dataclass(frozen=True, slots=True)
class LedgerFile:
    """One stored file of an extract: its uuid, and the rows each of its pages answers."""

    uuid: str
    pages: tuple[tuple[int, tuple[PageTarget, ...]], ...]  # (page in the stored file, targets)
    # Credits (charged, refunded) each page carries from earlier tries: a pack it failed in, or
    # sends whose answer was lost (core/lost_answers.py). Added to its row when it is collected.
    carried: tuple[int, int] = (0, 0)


@dataclass(frozen=True, slots=True)
class ExtractRecord:
    """What a re-attaching run needs to finish a paid extract without its inputs."""

    chunk_id: str
    extract_uuid: str | None  # None: an intent, sent but not answered (yet)
    kind: str  # images | documents
    engine: str
    language: str | None
    files: tuple[LedgerFile, ...]
    path: str = ""  # where the record lives (filled when read)
    lost_sends: int = 0  # earlier sends of the request whose answer was lost (core/lost_answers.py)
    packed: bool = False  # a pack of images (core/packing.py): each page is one image's row
    collected: bool = False  # its rows are in the table; only its files are left to delete
    # The claim on the record's pages when other writers share the output (core/claims.py):
    # when it was made, and whether the writer has decided to send what the record still lists.
    claimed_at: float = 0.0
    decided: bool = False

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "version": LEDGER_VERSION,
                "chunk_id": self.chunk_id,
                "extract_uuid": self.extract_uuid,
                "kind": self.kind,
                "engine": self.engine,
                "language": self.language,
                "lost_sends": self.lost_sends,
                "packed": self.packed,
                "collected": self.collected,
                "files": [
                    {
                        "uuid": f.uuid,
                        "pages": [
                            [
                                number,
                                [[t.source, t.source_sha256, t.page_number, t.normalization] for t in ts],
                            ]
                            for number, ts in f.pages
                        ],
                        "carried": list(f.carried),
                    }
                    for f in self.files
                ],
                "claimed_at": self.claimed_at,
                "decided": self.decided,
            },
            ensure_ascii=False,
        ).encode()

    @classmethod
    def from_json(cls, data: bytes, path: str) -> ExtractRecord:
        body = json.loads(data)
        files = tuple(
            LedgerFile(
                uuid=str(f["uuid"]),
                pages=tuple(
                    (int(number), tuple(PageTarget(str(s), str(h), int(p), n) for s, h, p, n in targets))
                    for number, targets in f["pages"]
                ),
                carried=(int(f.get("carried", (0, 0))[0]), int(f.get("carried", (0, 0))[1])),
            )
            for f in body["files"]
        )
        return cls(
            chunk_id=str(body["chunk_id"]),
            extract_uuid=None if body.get("extract_uuid") is None else str(body["extract_uuid"]),
            kind=str(body["kind"]),
            engine=str(body["engine"]),
            language=None if body.get("language") is None else str(body["language"]),
            files=files,
            path=path,
            lost_sends=int(body.get("lost_sends", 0)),
            packed=bool(body.get("packed", False)),
            collected=bool(body.get("collected", False)),
            claimed_at=float(body.get("claimed_at", 0.0)),
            decided=bool(body.get("decided", False)),
        )

    @property
    def file_uuids(self) -> list[str]:
        return [f.uuid for f in self.files]

    @property
    def page_count(self) -> int:
        """Pages the request covers: what Delix charges for it."""
        return sum(len(f.pages) for f in self.files)

    def answered(self, extract_uuid: str, *, lost_sends: int = 0) -> ExtractRecord:
        """Phase two: the intent with the uuid Delix answered (and its sends lost before that)."""
        return dataclasses.replace(self, extract_uuid=extract_uuid, lost_sends=lost_sends)

    def keeping(self, uuids: set[str]) -> ExtractRecord:
        """The decided claim: only the files in ``uuids`` are sent (core/claims.py)."""
        return dataclasses.replace(self, files=tuple(f for f in self.files if f.uuid in uuids), decided=True)


class ExtractLedger:
    """This writer's extract records, and the records of dead writers to re-attach to."""

    def __init__(self, state: StateDir, run_tag: str, lease: WriterLease) -> None:
        self._state = state
        self._run_tag = run_tag
        self._lease = lease

    def _path(self, tag: str, chunk_id: str) -> str:
        return f"{self._state.root}/extracts/{tag}/{chunk_id}.json"

    def record(self, record: ExtractRecord) -> None:
        """Journal an intent or a paid extract; durable when this returns (one atomic write)."""
        self._state.write_bytes(self._path(self._run_tag, record.chunk_id), record.to_json())

    def forget(self, chunk_id: str) -> None:
        """The extract's rows are in the table: drop its record."""
        self._state.rm([self._path(self._run_tag, chunk_id)])

    def forget_record(self, record: ExtractRecord) -> None:
        self._state.rm([record.path])

    def collected(self, record: ExtractRecord, left: set[str]) -> None:
        """``record``'s rows are in the table and some files could not be deleted: rewrite it (where
        it is) with only those, so a later attempt deletes them and does not collect it again."""
        kept = tuple(f for f in record.files if f.uuid in left)
        self._state.write_bytes(
            record.path, dataclasses.replace(record, files=kept, collected=True).to_json()
        )

    def reread(self, record: ExtractRecord) -> ExtractRecord | None:
        """``record`` as it is on record now: None once it is gone (collected and dropped since),
        ``collected`` once another writer wrote its rows and only its files are left."""
        data = self._state.read_bytes(record.path)
        if data is None:
            return None
        try:
            return ExtractRecord.from_json(data, record.path)
        except (ValueError, KeyError, TypeError) as exc:
            raise StateUnreadableError(
                f"The extract record {record.path} cannot be read ({type(exc).__name__}): the pages of "
                "that paid extract could not be collected. Restore or remove it by hand."
            ) from None

    def orphaned(self, *, wait: bool = True) -> list[ExtractRecord]:
        """Extracts recorded by writers that are gone (crashed, killed, deferred), oldest tag first."""
        records: list[ExtractRecord] = []
        for tag in sorted(self._lease.dead_writers(wait)):
            paths = self._state.files("extracts", tag, ".json")
            for path, data in self._state.read_many(paths, missing_ok=True).items():
                try:
                    records.append(ExtractRecord.from_json(data, path))
                except (ValueError, KeyError, TypeError) as exc:
                    raise StateUnreadableError(
                        f"The extract record {path} cannot be read ({type(exc).__name__}): the pages of "
                        "that paid extract could not be collected. Restore or remove it by hand."
                    ) from None
        return records


def ledger_files(
    pairs: Sequence[tuple[str, Sequence[tuple[int, Sequence[PageTarget]]]]],
) -> tuple[LedgerFile, ...]:
    return tuple(LedgerFile(uuid, tuple((n, tuple(ts)) for n, ts in pages)) for uuid, pages in pairs)
