"""``StorageWindow``: how many files this task may hold stored, learnt from the shared account.

Every task that uses one Delix key shares the account's 30 files / 100 MB, and no task can see
the others: the only signal is the server refusing an upload (``STORAGE_COUNT_EXCEEDED`` /
``STORAGE_SIZE_EXCEEDED``). So each task runs congestion control on its own storage, the way
TCP shares a link without a coordinator:

* **window** -- the files this task may hold (upload started, delete not confirmed). The
  pipeline's :class:`~.budget.StorageBudget` follows it (``on_change``), so the dispatcher
  starts a chunk only when the window has room for all of it;
* **multiplicative decrease** on a refusal: the window shrinks by a random factor around
  ``decrease`` (the jitter keeps tasks refused at the same moment from shrinking in step and
  growing back in lock-step). Refusals of uploads sent before the last decrease do not shrink
  it again: they are the same overload, seen late (TCP's one cut per window);
* **additive increase** on every confirmed upload while the window is what limits the task:
  about one file per window's worth of uploads (one round trip). A task that is not using its
  window (input ran dry, tail of the run) does not grow it, or it would later burst;
* **start**: when nothing is known about the other tasks, ``initial`` files, doubling per round
  trip (slow start) until the first refusal, so a task alone reaches the whole account in a few
  round trips while a crowd of mapped tasks starting together does not flood it. When the key's
  registry says no other task is live, :func:`window_for` starts at the whole account instead;
* **probing speeds up while nothing is refused**: after ``quiet_rounds`` round trips without a
  refusal the increase per round doubles (up to ``max_step``). In a shared steady state tasks
  are refused every few rounds and stay at +1 file per round (fair, few refusals); a task left
  alone (the others finished) climbs back to the whole account in a few rounds instead of 20;
* **the registry's equal share**, when the key registry can name the live tasks on the key
  (:func:`fair_share`: the account, less the files no visible task claims, split among them):
  the window stays within one file above that share and rises to it when it rises (tasks
  finished); a task below it keeps its window on a refusal (the tasks above it make room), and
  one above 1.5 shares is cut hard. AIMD alone evens out shares only as fast as refusals reach
  the early tasks; with the share a late task gets its part within a round trip. Simulated
  (``tests/core/window_sim.py``, 8 seeds): slowest ÷ fastest of equal tasks started seconds
  apart is 1.01-1.29 with the share against 1.10-2.09 without, for at most 15 refusals per
  task per minute. A manual share below the account is the user's split and is kept as is.

Large windows are refused more often (they upload more often), and a cut takes more from a
large window than from a small one, so the windows converge to equal shares: AIMD's fairness.
The manual share (``max_stored_files``) is the ceiling; with shares that already fit the
account nothing is refused and the window sits at the ceiling.

Plain Python, thread-safe; randomness and the clock-free design make it testable with a seed.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

from airflow_provider_delix.api.models import MAX_FILES_PER_REQUEST, MAX_STORED_FILES


@dataclass(frozen=True, slots=True)
class WindowSettings:
    """The controller's constants; the defaults are what the simulations and the bench use."""

    initial: float = MAX_FILES_PER_REQUEST  # files at start: one full chunk
    floor: float = 1.0  # never below one file: a task always makes progress
    decrease: float = 0.7  # share of the window kept on a refusal (before jitter)
    above_half: float = 0.5  # kept instead when the task held more than half the account
    jitter: float = 0.15  # +- on the decrease factor, and +-50 % scaled by it on retry delays
    quiet_rounds: float = 5.0  # round trips without a refusal before the increase speeds up
    max_step: float = 8.0  # largest increase per round trip, in files
    increase: float = 1.0  # files per round trip in the shared steady state
    hard_above: float = 1.5  # held above this many equal shares: cut like above half the account
    share_slack: int = 1  # files a window may hold above the registry's equal share

    def __post_init__(self) -> None:
        for kept in (self.decrease, self.above_half):
            if not 0 < kept < 1 or not 0 <= self.jitter < min(kept, 1 - kept):
                raise ValueError("decrease and above_half must be in (0, 1) and jitter keep them there.")
        if self.floor < 1 or self.initial < self.floor or self.quiet_rounds < 0 or self.max_step < 1:
            raise ValueError("floor >= 1, initial >= floor, quiet_rounds >= 0 and max_step >= 1.")
        if self.hard_above < 1 or self.share_slack < 0:
            raise ValueError("hard_above must be at least 1 (one equal share), share_slack at least 0.")


@dataclass(frozen=True, slots=True)
class WindowState:
    """A snapshot for summaries, logs and tests."""

    window: float
    limit: int
    refusals: int
    decreases: int
    peak: int


class StorageWindow:
    """Additive-increase / multiplicative-decrease window of stored files for one task."""

    def __init__(
        self,
        ceiling: int,
        *,
        settings: WindowSettings | None = None,
        initial: float | None = None,
        rng: random.Random | None = None,
        on_change: Callable[[int], None] | None = None,
    ) -> None:
        if ceiling < 1:
            raise ValueError(f"A window needs a ceiling of at least 1 file, got {ceiling}.")
        self.settings = s = settings or WindowSettings()
        self.ceiling = ceiling
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not security)
        self._on_change = on_change
        self._lock = threading.Lock()
        start = s.initial if initial is None else initial
        self._window = min(float(ceiling), max(s.floor, start))
        self._slow_start = self._window < ceiling  # until the first refusal
        self._epoch = 0  # bumped by every decrease
        self._confirmed = 0.0  # files confirmed since the last decrease
        self._refusals = 0
        self._decreases = 0
        self._peak = self.limit
        self._share: float | None = None  # the registry's last equal share, for its rises

    # ------------------------------------------------------------------ reading

    @property
    def limit(self) -> int:
        """Whole files the task may hold now (the budget's effective limit)."""
        return max(1, math.floor(self._window + 1e-9))

    def state(self) -> WindowState:
        with self._lock:
            return WindowState(self._window, self.limit, self._refusals, self._decreases, self._peak)

    def sending(self) -> int:
        """Call before an upload; hand the token back to :meth:`stored` or :meth:`refused`."""
        with self._lock:
            return self._epoch

    # ------------------------------------------------------------------ signals

    def stored(self, token: int, files: int, *, limited: bool, share: float | None = None) -> None:
        """An upload of ``files`` was accepted; grow if the window is what holds the task back.

        ``limited`` is the caller's view: the budget had work waiting, or no room for another
        chunk. ``share`` is the registry's equal share (:func:`fair_share`), when known: the
        window never passes it by more than ``share_slack`` files, so a task that grew into an
        empty account gives way the moment another task joins the key, not after its own
        refusals; and when the share rises (other tasks finished) a window below it rises to it
        at once instead of growing into it round by round. The token is unused today but keeps
        the call symmetric with :meth:`refused`.
        """
        del token
        if files <= 0:
            return
        share = self._registry_share(share)
        with self._lock:
            self._confirmed += files
            cap = float(self.ceiling)
            if share is not None:
                cap = min(cap, max(self.settings.floor, math.ceil(share - 1e-9) + self.settings.share_slack))
                grew, self._share = self._share is not None and share > self._share, share
                if grew and self._window < math.floor(share):  # tasks left: take their part now
                    self._set(min(cap, float(math.floor(share))))
                    return
            if self._window > cap:
                self._epoch += 1  # refusals of uploads sent before are answered by this cut
                self._set(cap)
                return
            if not limited or self._window >= cap:
                return
            if self._slow_start:
                step = float(files)  # doubles per round trip
            else:
                extra = self._confirmed / self._window - self.settings.quiet_rounds
                per_round = min(self.settings.max_step, self.settings.increase * 2.0 ** max(extra, 0.0))
                step = per_round * files / self._window
            self._set(min(cap, self._window + step))

    def refused(self, token: int, held: int | None = None, share: float | None = None) -> None:
        """The account refused an upload sent under ``token``: shrink, once per overload.

        ``held`` is what the task held when refused. More than half the account means the
        others together hold less than this task: it is certainly above an equal share, so it
        is cut harder (``above_half``). This evens out a task that grew into an empty account
        before the others started (mapped tasks start seconds apart) much faster than AIMD's
        usual cuts.

        ``share`` is the equal share the key's registry names (:func:`fair_share`), when it can:
        a task holding less than it is not what fills the account and keeps its window (the
        refusal is the others' to answer), one holding more than ``hard_above`` times it is cut
        like a task above half the account. Without it, AIMD alone converges, more slowly:
        a task that started late waits for the early ones to be refused.
        """
        share = self._registry_share(share)
        with self._lock:
            self._refusals += 1
            if token != self._epoch:
                return  # sent before the last decrease: that overload is already answered
            s = self.settings
            if held is not None and share is not None and held < share:
                return  # below an equal share: the tasks above it make room
            above = held is not None and (
                held > MAX_STORED_FILES / 2 or (share is not None and held > s.hard_above * share)
            )
            kept = s.above_half if above else s.decrease
            factor = kept + self._rng.uniform(-s.jitter, s.jitter)
            self._epoch += 1
            self._decreases += 1
            self._confirmed = 0.0
            self._slow_start = False
            self._set(max(s.floor, self._window * factor))

    def retry_delay(self, attempt: int, base: float, longest: float) -> float:
        """Seconds to wait before re-queueing a refused chunk (attempt 1, 2, ...): jittered
        exponential back-off, at most 8x ``base`` -- the window, not the back-off, does the
        pacing, and a long back-off is what starved late tasks before."""
        step = base * 2.0 ** min(max(attempt - 1, 0), 3)
        spread = 0.5 * self.settings.jitter / 0.15  # +-50 % with the default jitter
        with self._lock:
            factor = 1.0 + self._rng.uniform(-spread, spread)
        return max(0.0, min(longest, step * factor))

    # ------------------------------------------------------------------ internals

    def _registry_share(self, share: float | None) -> float | None:
        """A manual share below the account (``max_stored_files``) is the user's split of it:
        the registry's equal share does not override it, in either direction."""
        return share if self.ceiling >= MAX_STORED_FILES else None

    def _set(self, window: float) -> None:
        before = self.limit
        self._window = window
        after = self.limit
        self._peak = max(self._peak, after)
        if after != before and self._on_change is not None:
            self._on_change(after)


def window_for(
    max_stored_files: int, *, on_change: Callable[[int], None], others: int | None = None
) -> StorageWindow:
    """The pipeline's window, started from what is known about the other tasks on the key.

    * a manual share below the account's 30 files is trusted and used at once (the user divided
      the account);
    * ``others == 0``: the key's registry knows no other live writer, so the task starts at the
      whole account: nothing to share, no ramp;
    * otherwise (others live, or no registry to ask) it starts at one chunk and doubles per round
      trip until the first refusal: safe when a crowd of mapped tasks starts together. Starting a
      known crowd at an equal share was simulated too (``tests/core/window_sim.py``): it was no
      fairer than slow start, whose first refusals sort the shares out within a few round trips.
    """
    ceiling = max_stored_files
    initial = float(ceiling) if ceiling < MAX_STORED_FILES or others == 0 else None
    window = StorageWindow(ceiling, initial=initial, on_change=on_change)
    on_change(window.limit)
    return window


def fair_share(live_writers: int, foreign_files: int = 0) -> float:
    """One equal share of the account: what the files no registered writer claims leave, split
    among the key's live writers (this one included).

    ``foreign_files`` are the account's files the last sweep found claimed by no writer it can
    see: other hosts' tasks when the registry is not shared, other programs on the key.
    """
    room = max(0, MAX_STORED_FILES - foreign_files)
    return max(1.0, room / max(1, live_writers))
