"""Answers lost *after* the request was applied: the files are stored or the extraction charged.

The HTTP faults of :mod:`.faults` hit a request before it is handled (nothing changes on the
account), which is what a refused or reset connection looks like. Real networks also lose
answers on the way back: a gateway times out waiting for Delix and answers 502, 504 or (a CDN
such as Cloudflare) 524, or the
connection breaks while the answer travels. The request was applied anyway, and a client that
re-sends it pays twice (an extraction) or leaves a file behind (an upload). One seeded RNG
draws once per successful upload or extraction; ``rate_lost_after_apply`` is the chance that its
answer is lost, in one of the ``lost_after_apply_kinds`` chosen at random:

* ``drop``: the connection is closed without a byte of the answer;
* ``502`` / ``504`` / ``524``: a gateway's error page (HTML, not JSON) instead of the answer
  (``524`` is not in the default kinds: it is opted into, to exercise a CDN's timeout status).

``lost_after_apply_on`` limits it to ``upload`` (``POST /files``) and/or ``extraction`` (both
extraction endpoints). ``lost_after_apply_every`` (n > 0) replaces the rate with a count: every
n-th applied answer of those endpoints is lost, in the first of the kinds, so a test knows
exactly how many answers were lost. An answer slower than the client's timeout is the other way an answer
is lost after apply: ``latency_extract_base`` (spent before the extraction is charged) and
``latency_extract_page`` (after) keep running when the client has given up, so a timed-out
extraction is still charged.
"""

from __future__ import annotations

import random
import threading

from airflow_provider_delix.emulator.config import EmulatorConfig

DROP = "drop"
KINDS = (DROP, "502", "504", "524")
ENDPOINTS: dict[str, tuple[str, ...]] = {
    "upload": ("POST /files",),
    "extraction": ("POST /image-extraction", "POST /document-extraction"),
}
GATEWAY_PAGE = b"<html><body><h1>Gateway error</h1><p>The upstream server did not answer.</p></body></html>"


def _parse(value: str, known: tuple[str, ...] | dict[str, tuple[str, ...]], name: str) -> tuple[str, ...]:
    items = tuple(k.strip() for k in value.split(",") if k.strip())
    unknown = [k for k in items if k not in known]
    if unknown or not items:
        raise ValueError(f"{name} must be a comma list of {', '.join(known)}; got {value!r}")
    return items


def check_settings(config: EmulatorConfig) -> None:
    """Raise ``ValueError`` for a rate outside [0, 1] or an unknown kind or endpoint."""
    if not 0.0 <= config.rate_lost_after_apply <= 1.0:
        raise ValueError("rate_lost_after_apply must be between 0 and 1")
    if config.lost_after_apply_every < 0:
        raise ValueError("lost_after_apply_every must be >= 0")
    _parse(config.lost_after_apply_kinds, KINDS, "lost_after_apply_kinds")
    _parse(config.lost_after_apply_on, ENDPOINTS, "lost_after_apply_on")


class LostAnswers:
    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed + 2)  # noqa: S311 (reproducible test faults, not crypto)
        self._lock = threading.Lock()
        self._applied = 0  # applied answers of the chosen endpoints, for lost_after_apply_every

    def reseed(self, seed: int) -> None:
        with self._lock:
            self._rng = random.Random(seed + 2)  # noqa: S311
            self._applied = 0

    def draw(self, endpoint: str, config: EmulatorConfig) -> str | None:
        """How the answer of this applied request is lost (``drop`` or a status), or None."""
        if config.rate_lost_after_apply <= 0 and config.lost_after_apply_every <= 0:
            return None
        on = _parse(config.lost_after_apply_on, ENDPOINTS, "lost_after_apply_on")
        if not any(endpoint in ENDPOINTS[name] for name in on):
            return None
        kinds = _parse(config.lost_after_apply_kinds, KINDS, "lost_after_apply_kinds")
        with self._lock:
            if config.lost_after_apply_every > 0:
                self._applied += 1
                return kinds[0] if self._applied % config.lost_after_apply_every == 0 else None
            if self._rng.random() >= config.rate_lost_after_apply:
                return None
            return self._rng.choice(kinds)
