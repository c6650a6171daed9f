"""The orphan finder: which files on a Delix account nobody on the key still needs, and their deletion.

The rule (``docs/cleanup.md`` states it with its assumptions):

1. list the account (``GET /files``) at t0: the snapshot;
2. read the key registry (:mod:`.key_registry`) after t0;
3. wait, bounded, until every intent of a *live* writer that was pending at that read has been
   answered (or its writer died): a file in the snapshot was stored before t0, so the upload
   that stored it had recorded its intent before t0 -- once that intent is answered, the file is
   claimed or it is nobody's;
4. every uuid of the snapshot that no live writer claims is an orphan. Claims of dead writers
   are ours and are deleted even when the key has foreign uploaders; files nobody claims are
   deleted only when it has none (``foreign_uploaders`` off), else reported with their expiry.

A delete answered ``FILE_UNDER_PROCESSING`` means a queued extract still reads the file: it is
skipped and reported, the next sweep tries again. If an intent is still pending when the wait
ends, files nobody claims are left alone this time (any of them may be that upload's).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_delix.api.errors import DelixApiError, DelixAuthError
from airflow_provider_delix.api.models import ErrorCode
from airflow_provider_delix.core.client import DelixClient
from airflow_provider_delix.core.key_registry import KeyRegistry, RegistryView

log = logging.getLogger(__name__)

FILE_LIFETIME_SECONDS = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class UnclaimedFile:
    """A file nobody on the key claims, left alone: first seen by a sweep, expired by Delix at the latest."""

    uuid: str
    first_seen: float  # epoch seconds
    expires_by: float  # first_seen + 24 h: Delix deletes it by then

    def to_dict(self) -> dict[str, Any]:
        return {"uuid": self.uuid, "first_seen": self.first_seen, "expires_by": self.expires_by}


@dataclass(slots=True)
class SweepReport:
    """What one sweep saw and did; ``describe()`` says whose files fill the account."""

    listed: int = 0  # files on the account at the snapshot
    mine: int = 0  # claimed by the writer that swept
    live_others: int = 0  # claimed by other live writers on the key
    live_writers: int = 0  # those other live writers
    dead_claimed: int = 0  # claimed by writers that are gone (crashed, killed): ours to delete
    unclaimed: int = 0  # nobody on the key claims them (lost answers, or foreign uploaders)
    deleted: list[str] = field(default_factory=list)
    reported: list[UnclaimedFile] = field(default_factory=list)  # unclaimed, not deleted
    busy: list[str] = field(default_factory=list)  # FILE_UNDER_PROCESSING: a queued extract uses it
    failed: list[str] = field(default_factory=list)  # delete failed otherwise: the next sweep retries
    would_delete: list[str] = field(default_factory=list)  # dry run: what a sweep would delete now
    gone: list[str] = field(default_factory=list)  # 404 on delete: gone since the snapshot
    pending_files: int = 0  # of intents still unanswered when the wait ended: nothing unclaimed deleted
    foreign_uploaders: bool = False
    dry_run: bool = False

    def describe(self) -> str:
        """Whose files fill the account, in one sentence (storage-full messages, logs)."""
        unclaimed = "foreign uploaders' or left by lost answers" if self.foreign_uploaders else "orphans"
        return (
            f"the account held {self.listed} file(s) at the last look: {self.mine} this task's, "
            f"{self.live_others} of {self.live_writers} other live task(s) on this key, "
            f"{self.dead_claimed} left by stopped tasks, {self.unclaimed} that no task on the key "
            f"claims ({unclaimed}); {len(self.deleted)} deleted, {len(self.reported)} reported, "
            f"{len(self.busy)} in use by queued extracts"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "listed": self.listed,
            "mine": self.mine,
            "live_others": self.live_others,
            "dead_claimed": self.dead_claimed,
            "unclaimed": self.unclaimed,
            "deleted": list(self.deleted),
            "reported": [f.to_dict() for f in self.reported],
            "busy": list(self.busy),
            "failed": list(self.failed),
            "would_delete": list(self.would_delete),
            "pending_files": self.pending_files,
            "foreign_uploaders": self.foreign_uploaders,
            "dry_run": self.dry_run,
        }


def wait_for_intents(
    registry: KeyRegistry,
    *,
    wait: float,
    poll: float,
    clock: Callable[[], float],
    sleep: Callable[[float], object],
    stopped: Callable[[], bool] = lambda: False,
) -> tuple[RegistryView, set[tuple[str, str]]]:
    """Read the registry; re-read until the intents pending at the first read are answered or dead.

    Intents recorded after the first read are not waited for: their files cannot be in a
    snapshot taken before it. Returns the last view and the intents still pending.
    """
    view = registry.read()
    pending = view.pending()
    deadline = clock() + wait
    while pending and clock() < deadline and not stopped():
        sleep(poll)
        view = registry.read()
        pending &= view.pending()
    return view, pending


def sweep_orphans(
    client: DelixClient,
    registry: KeyRegistry,
    *,
    me: str | None = None,
    exclude: Collection[str] = (),
    dry_run: bool = False,
    intent_wait: float = 60.0,
    poll: float = 0.25,
    delete_concurrency: int = 8,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], object] = time.sleep,
    stopped: Callable[[], bool] = lambda: False,
) -> SweepReport:
    """Apply the rule once; ``me`` is the sweeping writer's tag, ``exclude`` uuids never to touch.

    ``stopped`` ends the wait for intents early (the task is being stopped): files nobody
    claims are then left alone. Raises :class:`DelixAuthError` (a refused key refuses every
    delete too); any other failed delete is counted in ``failed`` and left for the next sweep.
    """
    # Claims read before the snapshot too: a file a live writer deletes between the listing and
    # the read below has left its claims already; without this read it would look unclaimed.
    earlier = registry.read()
    snapshot = [f.uuid for f in client.list_files()]
    view, pending = wait_for_intents(
        registry, wait=intent_wait, poll=poll, clock=clock, sleep=sleep, stopped=stopped
    )
    # A writer that finished in between (its records gone) deleted its files just as well; one
    # that died in between is dead now, and its files are swept as dead claims.
    gone_or_live = {t for t in earlier.writers if t not in view.writers or view.writers[t].live}
    live = view.claimed_by_live() | {
        u for w in earlier.writers.values() if w.live and w.tag in gone_or_live for u in w.claims
    }
    dead = view.claimed_by_dead() - live
    mine = view.writers[me].claims if me is not None and me in view.writers else frozenset()
    report = SweepReport(listed=len(snapshot), foreign_uploaders=registry.foreign_uploaders, dry_run=dry_run)
    report.mine = sum(1 for u in snapshot if u in mine)
    report.live_others = sum(1 for u in snapshot if u in live and u not in mine)
    report.live_writers = sum(1 for w in view.writers.values() if w.live and w.tag != me and w.claims)
    skip = set(exclude)
    dead_files = [u for u in snapshot if u in dead and u not in skip]
    unclaimed = [u for u in snapshot if u not in live and u not in dead and u not in skip]
    report.dead_claimed, report.unclaimed = len(dead_files), len(unclaimed)
    report.pending_files = sum(view.writers[t].intents.get(i, 0) for t, i in pending if t in view.writers)
    delete_unclaimed = not registry.foreign_uploaders and not pending
    doomed = dead_files + (unclaimed if delete_unclaimed else [])
    if not delete_unclaimed and unclaimed:
        seen = registry.first_seen(unclaimed, time.time())
        report.reported = [UnclaimedFile(u, seen[u], seen[u] + FILE_LIFETIME_SECONDS) for u in unclaimed]
    if pending:
        log.warning(
            "Key registry sweep: %d upload(s) of live tasks (up to %d file(s)) were still unanswered "
            "after %.0f s; files nobody claims are left for the next sweep.",
            len(pending),
            report.pending_files,
            intent_wait,
        )
    if dry_run:
        report.would_delete = doomed
        return report
    _delete(client, doomed, report, delete_concurrency)
    _forget_dead_writers(registry, view, set(snapshot) - set(report.deleted) - set(report.gone))
    return report


def _delete(client: DelixClient, uuids: list[str], report: SweepReport, concurrency: int) -> None:
    refused: list[DelixAuthError] = []

    def one(uuid: str) -> None:
        if refused:
            return  # the key was refused: every other delete would be too
        try:
            if client.delete_file(uuid):
                report.deleted.append(uuid)
            else:  # 404: gone meanwhile (its owner deleted it after the snapshot, or it expired)
                report.gone.append(uuid)
        except DelixAuthError as exc:
            refused.append(exc)
        except DelixApiError as exc:
            if exc.error == ErrorCode.FILE_UNDER_PROCESSING:
                report.busy.append(uuid)
            else:
                report.failed.append(uuid)
                log.warning("Could not delete orphaned Delix file %s: %s", uuid, exc)
        except Exception as exc:
            report.failed.append(uuid)
            log.warning("Could not delete orphaned Delix file %s (the next sweep tries again): %s", uuid, exc)

    if uuids:
        with ThreadPoolExecutor(
            max(1, min(concurrency, len(uuids))), thread_name_prefix="delix-sweep"
        ) as pool:
            list(pool.map(one, uuids))
    if refused:
        raise refused[0]


def _forget_dead_writers(registry: KeyRegistry, view: RegistryView, left: set[str]) -> None:
    """A dead writer none of whose files is left on the account has nothing more to say."""
    for writer in view.writers.values():
        if not writer.live and not writer.claims & left:
            registry.forget_writer(writer.tag)
