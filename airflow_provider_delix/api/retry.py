"""The hook's one retry policy: what is retried, how long to wait, when to give up.

:class:`DelixTransientError` is retried (429, 5xx, dropped connections, timeouts). 401/403,
404 and 422 are answers, not accidents: retrying them wastes time and, for 422, can never
succeed. One 422 is the exception: ``GENERAL_EXCEPTION`` is Delix's "unexpected server
failure", and the request it refuses was not applied. A free request (upload, read, delete)
refused with it is tried again under the same bounds; a paid extraction is not: the pipeline
sends its files again one by one, as the API's decisions say. The wait is exponential with
jitter, except that a ``Retry-After`` sent with a 429/503 is honoured: the next attempt waits
exactly that long (capped by the total-time bound) instead of the computed backoff. Attempts
and total time are both bounded. Built on tenacity so the policy is a declaration, not a
hand-written loop; the sleep function is injectable so tests prove the waits without
spending wall time.

Paid requests (the extraction POSTs) follow one more rule (docs/api.md, "Decisions where the
vendor is silent": retries against the credits rule): a failure that Delix may have applied
(``maybe_applied``: a read timeout, a connection dropped after sending, a gateway's 502/504,
a CDN's 524, any 5xx but 500/501/503: ``api/responses.py``) is
re-sent at most once per call (:data:`MAX_LOST_RESENDS`); the next such failure is raised at
once, with ``lost_attempts`` telling the caller how many sends may have been charged. Uploads
follow the same rule (``resend_once``): they cost no credits, but each applied send stores up
to 5 files that no answer names, on the 30 files every task on the key shares; unbounded
re-sends filled the account. Failures that never reached Delix, and 429/500/501/503, keep the
ordinary policy. The history is counted by the caller on the error (``lost_attempts``), so the
rule is a plain predicate and one ``Retrying`` serves every call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_base,
    stop_after_attempt,
    stop_after_delay,
)
from tenacity.wait import wait_base, wait_exponential, wait_random

from airflow_provider_delix.api.errors import DelixApiError, DelixTransientError
from airflow_provider_delix.api.models import ErrorCode

log = logging.getLogger(__name__)

# Connection extras (and hook arguments) that tune the policy; never sent as HTTP headers.
RETRY_EXTRAS = ("max_retries", "retry_wait_initial", "retry_wait_max", "retry_max_elapsed")

# How many times a paid request or an upload is re-sent after a failure Delix may have applied.
MAX_LOST_RESENDS = 1

# Up to this many seconds of random jitter on each backoff, so parallel tasks do not retry in step.
JITTER_SECONDS = 1.0


def connection_extra(extras: Mapping[str, Any], name: str) -> Any:
    """An extra by its plain name or the ``extra__delix__`` prefix older UIs store; None if blank."""
    value = extras.get(name, extras.get(f"extra__delix__{name}"))
    return None if value in (None, "") else value


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds of the retry loop; ``max_retries`` counts retries: at most ``1 + max_retries`` calls."""

    max_retries: int = 5
    retry_wait_initial: float = 1.0
    retry_wait_max: float = 60.0
    retry_max_elapsed: float = 600.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.retry_wait_initial < 0 or self.retry_wait_max < 0 or self.retry_max_elapsed < 0:
            raise ValueError("retry waits and retry_max_elapsed must be >= 0 seconds")

    @classmethod
    def from_extras(cls, extras: Mapping[str, Any], **overrides: Any) -> RetryPolicy:
        """Read the policy from connection extras; explicit (non-None) hook arguments win."""
        values: dict[str, Any] = {}
        for name in RETRY_EXTRAS:
            raw = connection_extra(extras, name)
            if raw is not None:
                try:
                    values[name] = int(raw) if name == "max_retries" else float(raw)
                except (TypeError, ValueError):
                    raise ValueError(f"Connection extra {name!r} must be a number, got {raw!r}.") from None
        policy = cls(**values)
        return replace(policy, **{k: v for k, v in overrides.items() if v is not None})

    def retrying(
        self, *, sleep: Callable[[float], None] = time.sleep, describe: str | Callable[[], str] = ""
    ) -> Retrying:
        """A tenacity ``Retrying`` under this policy; ``describe`` names the call in the retry log
        (a function when one ``Retrying`` serves several calls, one after the other)."""
        return Retrying(sleep=sleep, **self._rules(describe))

    def async_retrying(
        self, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, describe: str = ""
    ) -> AsyncRetrying:
        """The same policy for a coroutine (the async hook), waiting on the event loop."""
        return AsyncRetrying(sleep=sleep, **self._rules(describe))

    def _rules(self, describe: str | Callable[[], str]) -> dict[str, Any]:
        """What is retried, when to stop, how long to wait, what is logged: one set of rules."""
        return {
            "retry": _RetryTransient(describe),
            "stop": stop_after_attempt(self.max_retries + 1) | stop_after_delay(self.retry_max_elapsed),
            "wait": _RetryAfterOrBackoff(self),
            "reraise": True,
            "before_sleep": lambda state: _log_retry(state, self, describe),
        }


class _RetryTransient(retry_base):
    """Retry every :class:`DelixTransientError`, except the second lost answer of a paid request
    or an upload (``resend_once``), and a free request refused with ``GENERAL_EXCEPTION``."""

    def __init__(self, describe: str | Callable[[], str]) -> None:
        self._describe = describe

    def __call__(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, DelixApiError) and error.error == ErrorCode.GENERAL_EXCEPTION:
            return not error.paid
        if not isinstance(error, DelixTransientError):
            return False
        if error.resend_once and error.lost_attempts > MAX_LOST_RESENDS:
            log.error(
                "%s: the answer was lost again after sending (%s); not re-sent: Delix may have %s (%d).",
                _name(self._describe),
                error,
                "charged both sends" if error.paid else "stored the files of both sends",
                error.lost_attempts,
            )
            return False
        return True


class _RetryAfterOrBackoff(wait_base):
    """Exponential backoff with jitter, replaced by the server's ``Retry-After`` when it sent one.

    Retry *n* waits ``retry_wait_initial * 2**(n-1)`` plus up to :data:`JITTER_SECONDS`, at most
    ``retry_wait_max``: what tenacity's ``wait_exponential_jitter`` computes, composed here from
    ``wait_exponential`` and ``wait_random`` because that class renamed its first argument
    (``initial``, deprecated in tenacity 9.2 and warning whenever it is not 1, became
    ``multiplier``, which 9.1 and older lack): no one spelling of it works on every tenacity the
    package allows (>= 8.2), and raising that bound would refuse environments whose Airflow
    constraints pin an older tenacity. ``min(min(e, max) + j, max)`` is ``min(e + j, max)``.
    """

    def __init__(self, policy: RetryPolicy) -> None:
        self._backoff: wait_base = wait_exponential(
            multiplier=policy.retry_wait_initial, max=policy.retry_wait_max
        ) + wait_random(0, JITTER_SECONDS)
        self._max = policy.retry_wait_max
        self._cap = policy.retry_max_elapsed

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            return float(min(max(float(retry_after), 0.0), self._cap))
        return float(min(self._backoff(retry_state), self._max))


def _name(describe: str | Callable[[], str]) -> str:
    return (describe() if callable(describe) else describe) or "Delix call"


def _log_retry(state: RetryCallState, policy: RetryPolicy, describe: str | Callable[[], str]) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    wait = state.next_action.sleep if state.next_action is not None else 0.0
    # Only our own message: it names the status and the connection, never a body or the key.
    if isinstance(error, DelixTransientError) and error.resend_once and error.maybe_applied:
        log.warning(
            "%s: answer lost after sending (%s); re-sending once, the first may have been %s; "
            "retry %d of %d in %.1f s.",
            _name(describe),
            error,
            "charged" if error.paid else "stored",
            state.attempt_number,
            policy.max_retries,
            wait,
        )
        return
    log.warning(
        "%s failed (%s); retry %d of %d in %.1f s.",
        _name(describe),
        error,
        state.attempt_number,
        policy.max_retries,
        wait,
    )
