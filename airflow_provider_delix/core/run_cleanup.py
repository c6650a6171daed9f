"""The key registry during one run: claim every upload, and sweep orphans when they matter.

:class:`ClaimingClient` sits in front of the run's client: it records an intent in the
registry before each upload is sent and resolves it the moment the answer arrives (claims), or
as lost when the answer never came (timeout, dropped connection, 502/504, unreadable answer).
:class:`RunCleanup` decides when to sweep (:func:`~.orphan_sweep.sweep_orphans`):

* at the start of the run, before its first upload (after adoption): what earlier runs left. A
  run with nothing to upload sends nothing, not even ``GET /files``;
* in the background, right after an upload answer was lost: the slots of that upload stay held
  in the storage budget (they may be stored) until a sweep that started after the loss is done;
* in the background on a ``STORAGE_*`` refusal (at most every ``refusal_interval`` seconds):
  if the run's own leftovers fill the account, the sweep gives their slots back;
* at the end of the run, after the run's own deletes (if it swept at the start).

Without a registry (a client that names none, e.g. a test fake) nothing is recorded or swept.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Sequence

from airflow_provider_delix.api.errors import (
    DelixApiError,
    DelixAuthError,
    DelixNotFoundError,
    DelixResponseError,
    DelixStorageFullError,
    DelixTransientError,
    DelixValidationError,
)
from airflow_provider_delix.api.models import (
    RejectedFile,
    StoredFile,
)
from airflow_provider_delix.core.budget import StorageBudget
from airflow_provider_delix.core.client import DelixClient, ForwardingClient, UploadItem
from airflow_provider_delix.core.key_registry import KeyRegistry, RegistryWriter
from airflow_provider_delix.core.orphan_sweep import SweepReport, UnclaimedFile, sweep_orphans
from airflow_provider_delix.core.registry_share import ShareReader

log = logging.getLogger(__name__)

# A refused upload never stored anything; everything else may have been applied.
_DEFINITELY_REFUSED = (DelixApiError, DelixValidationError, DelixAuthError, DelixNotFoundError)


class RegistryUnavailableError(RuntimeError):
    """The key registry cannot be written: the run sends nothing rather than upload unclaimed."""


class RunCleanup:
    """This run's registry writer, its sweeps and what they found (thread-safe)."""

    def __init__(
        self,
        registry: KeyRegistry | None,
        budget: StorageBudget,
        *,
        tag: str,
        intent_wait: float = 60.0,
        poll: float = 0.25,
        refusal_interval: float = 5.0,
        delete_concurrency: int = 8,
        clock: Callable[[], float] = time.monotonic,
        stopped: Callable[[], bool] = lambda: False,
    ) -> None:
        self.registry = registry
        self.stopped = stopped  # a stop (SIGTERM, on_kill) cuts the wait for other tasks' uploads
        self.budget = budget
        self.tag = tag
        self.client: DelixClient | None = None  # set by the pipeline: its counting client
        self.writer: RegistryWriter | None = None
        self.intent_wait, self.poll, self.refusal_interval = intent_wait, poll, refusal_interval
        self.delete_concurrency = delete_concurrency
        self.clock = clock
        self.deleted = 0
        self.reported: dict[str, UnclaimedFile] = {}
        self.busy: set[str] = set()
        self.last: SweepReport | None = None
        self.exclude: set[str] = set()  # files of queued extracts adopted from earlier attempts
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._again = False
        self._last_start = float("-inf")
        self._holds: list[tuple[int, int]] = []  # (files, bytes) of lost uploads, not yet swept
        self._closed = False
        self._swept_at_start = False
        self._last_at = float("-inf")  # when the last sweep listed the account
        self.shares = (
            ShareReader(
                registry,
                tag,
                clock=clock,
                last_sweep=self._last_sweep,
                request_sweep=lambda: self._request(force=False),
            )
            if registry is not None
            else None
        )

    @property
    def active(self) -> bool:
        return self.registry is not None

    @property
    def sweeps_orphans(self) -> bool:
        """Whether a sweep deletes files no task claims (copies of lost uploads among them):
        not without a registry, nor when it only reports them (``foreign_uploaders``)."""
        return self.registry is not None and not self.registry.foreign_uploaders

    def start(self) -> None:
        """Join the registry (a lease with heartbeat); before the first upload."""
        if self.registry is not None and self.writer is None:
            try:
                self.writer = self.registry.writer(self.tag)
            except Exception as exc:
                raise RegistryUnavailableError(
                    f"Could not write to the key registry at {_where(self.registry)} ({type(exc).__name__}: "
                    f"{exc}): without it no upload can be claimed. Check the connection's registry_path "
                    "(docs/cleanup.md)."
                ) from exc

    def other_live_writers(self) -> int | None:
        """Live writers on the key besides this run, or None when the registry cannot tell: no
        registry, or files of uploaders it cannot see (``foreign_uploaders``, other hosts)."""
        if self.registry is None or not self.sweeps_orphans:
            return None
        try:
            view = self.registry.read()
        except Exception:  # the storage window only starts more cautiously
            return None
        return view.live_besides(self.tag)

    def fair_share(self) -> float | None:
        """The registry's equal share of the account for the storage window (:mod:`.registry_share`);
        None without a registry."""
        return self.shares.share() if self.shares is not None else None

    # ------------------------------------------------------------------ sweeps
    def before_first_upload(self) -> None:
        """The start sweep, once, just before the run first needs the account's storage."""
        if self.registry is None or self._swept_at_start:
            return
        self._swept_at_start = True
        self.sweep("start")

    def sweep(self, when: str) -> SweepReport | None:
        """One sweep now (start and end of the run). A refused key raises; anything else is logged."""
        if self.registry is None or self.client is None:
            return None
        started = self.clock()  # the listing is the sweep's first request
        try:
            report = sweep_orphans(
                self.client,
                self.registry,
                me=self.tag,
                exclude=self.exclude,
                intent_wait=self.intent_wait,
                poll=self.poll,
                delete_concurrency=self.delete_concurrency,
                stopped=self.stopped,
            )
        except DelixAuthError:
            raise
        except Exception as exc:
            log.warning(
                "The orphan sweep at the %s of the run failed (the next one tries again): %s", when, exc
            )
            return None
        self._take(report, when, started)
        return report

    def _last_sweep(self) -> tuple[SweepReport | None, float]:
        with self._lock:
            return self.last, self._last_at

    def _take(self, report: SweepReport, when: str, started: float) -> None:
        with self._lock:
            self.last, self._last_at = report, started
            self.deleted += len(report.deleted)
            self.busy |= set(report.busy)
            new = [item for item in report.reported if item.uuid not in self.reported]
            for item in new:
                self.reported[item.uuid] = item
        if report.deleted or new or report.busy:
            log.info("Orphan sweep (%s of the run): %s.", when, report.describe())
        for item in new:  # once per file: sweeps repeat while another host's files come and go
            log.warning(
                "Delix file %s is claimed by no task on this key (foreign_uploaders): left alone; "
                "first seen %s, deleted by Delix by %s at the latest.",
                item.uuid,
                _utc(item.first_seen),
                _utc(item.expires_by),
            )

    def lost_upload(self, files: int, nbytes: int) -> None:
        """An upload's answer was lost: keep its slots held until a sweep has looked."""
        if self.registry is None or files <= 0:
            return
        self.budget.hold(files, nbytes)
        with self._lock:
            self._holds.append((files, nbytes))
        self._request(force=True)

    def refused(self) -> None:
        """The account refused an upload (full): sweep, unless one ran moments ago."""
        if self.registry is not None:
            self._request(force=False)

    def _request(self, *, force: bool) -> None:
        with self._lock:
            if self._closed:
                return
            if self._thread is not None:
                self._again = self._again or force
                return
            if not force and self.clock() - self._last_start < self.refusal_interval:
                return
            self._thread = threading.Thread(target=self._background, name="delix-sweep", daemon=True)
            self._thread.start()

    def _background(self) -> None:
        while True:
            with self._lock:
                self._last_start = self.clock()
                covered, self._holds = self._holds, []  # lost before this sweep started
            try:
                self.sweep("middle")
            except DelixAuthError as exc:
                log.warning("The orphan sweep stopped: the key was refused (%s)", exc)
            finally:
                for files, nbytes in covered:
                    self.budget.release(files, nbytes)
            with self._lock:
                if not self._again or self._closed:
                    self._thread = None
                    return
                self._again = False

    def finish(self, *, sweep: bool) -> None:
        """End of the run: wait for a background sweep, sweep once more, leave the registry."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            thread.join()
        try:
            if sweep and self._swept_at_start:
                self.sweep("end")
        except DelixAuthError as exc:
            log.warning("The end-of-run orphan sweep stopped: the key was refused (%s)", exc)
        finally:
            with self._lock:
                holds, self._holds = self._holds, []
            for files, nbytes in holds:
                self.budget.release(files, nbytes)
            if self.writer is not None:
                try:
                    self.writer.close()
                except Exception as exc:  # the lease goes stale by itself: this writer is then dead
                    log.warning("Could not leave the key registry (its lease goes stale): %s", exc)

    def occupancy(self) -> str:
        """Whose files fill the account, from the last sweep (for storage-full messages)."""
        if self.registry is None:
            return "Without a key registry (registry_path) whose files they are is unknown."
        if self.last is None:
            return "No sweep has listed the account yet."
        return f"Whose files: {self.last.describe()}."


class ClaimingClient(ForwardingClient):
    """A :class:`DelixClient` that records every upload in the key registry (intent -> claims)."""

    def __init__(self, inner: DelixClient, cleanup: RunCleanup) -> None:
        super().__init__(inner)
        self._cleanup = cleanup

    def upload_files(self, files: Sequence[UploadItem]) -> list[StoredFile | RejectedFile]:
        cleanup, writer = self._cleanup, self._cleanup.writer
        if writer is None:
            return self._inner.upload_files(files)
        intent = writer.intend(len(files))
        try:
            results = self._inner.upload_files(files)
        except DelixStorageFullError as exc:
            writer.answered(intent, [])
            self._lost_sends(files, exc.lost_attempts)
            cleanup.refused()
            raise
        except _DEFINITELY_REFUSED as exc:
            writer.answered(intent, [])
            self._lost_sends(files, exc.lost_attempts)
            raise
        except BaseException as exc:
            named = exc.uuids if isinstance(exc, DelixResponseError) else ()
            writer.lost(intent, named)
            # A transient error's lost_attempts counts this send when it may have been applied
            # (at most 2: api/retry.py); an unreadable answer's counts only the sends before it.
            sends = max(exc.lost_attempts, 1) if isinstance(exc, DelixTransientError) else 1
            earlier = exc.lost_attempts if isinstance(exc, DelixResponseError) else 0
            unnamed = sends * len(files) - len(named) + earlier * len(files)
            cleanup.lost_upload(unnamed, (sends + earlier) * _size(files))
            raise
        writer.answered(intent, [r.uuid for r in results if isinstance(r, StoredFile)])
        self._lost_sends(files, getattr(results, "lost_attempts", 0))
        return results

    def _lost_sends(self, files: Sequence[UploadItem], sends: int) -> None:
        """Sends of this upload whose answer was lost before the one answered (or refused): each
        may have stored every file under a uuid nobody claims; their slots wait for a sweep."""
        if sends > 0:
            self._cleanup.lost_upload(sends * len(files), sends * _size(files))

    def delete_file(self, uuid: str) -> bool:
        gone = self._inner.delete_file(uuid)
        if self._cleanup.writer is not None:
            self._cleanup.writer.dropped([uuid])
        return gone


def _size(files: Collection[UploadItem]) -> int:
    total = 0
    for item in files:
        if isinstance(item, tuple):
            total += len(item[1])
        else:
            with contextlib.suppress(OSError):
                total += os.path.getsize(item)
    return total


def _where(registry: KeyRegistry) -> str:
    from airflow_provider_delix.core.fspath import location_text

    return location_text(registry.location)


def _utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))
