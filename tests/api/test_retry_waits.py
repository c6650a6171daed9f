"""The retry policy's waits: exponential with up to 1 s of jitter, capped; ``Retry-After`` wins.

Run on a bare ``Retrying`` (no network) whose sleep only records, with the jitter drawn from a
patched ``random.random`` (what tenacity's ``wait_random`` draws), so every wait is exact.
"""

from __future__ import annotations

import random
import warnings

import pytest

from airflow_provider_delix.api.errors import DelixTransientError
from airflow_provider_delix.api.retry import RetryPolicy


def _waits(policy: RetryPolicy, failures: list[DelixTransientError]) -> list[float]:
    sleeps: list[float] = []
    pending = iter(failures)

    def call() -> str:
        error = next(pending, None)
        if error is not None:
            raise error
        return "ok"

    assert policy.retrying(sleep=sleeps.append)(call) == "ok"
    return sleeps


def test_backoff_doubles_from_the_initial_wait_plus_jitter_up_to_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    jitters = iter([0.0, 1.0, 0.25, 0.5, 0.75, 0.0])
    monkeypatch.setattr(random, "random", lambda: next(jitters))  # what tenacity's wait_random draws
    policy = RetryPolicy(max_retries=6, retry_wait_initial=0.5, retry_wait_max=5.0)
    failures = [DelixTransientError("busy") for _ in range(5)]
    failures.insert(3, DelixTransientError("throttled", retry_after=7.0))  # the server's word wins
    assert _waits(policy, failures) == [0.5, 2.0, 2.25, 7.0, 5.0, 5.0]


def test_a_retry_after_longer_than_the_whole_retry_window_is_cut_to_it() -> None:
    policy = RetryPolicy(max_retries=1, retry_max_elapsed=30.0)
    assert _waits(policy, [DelixTransientError("throttled", retry_after=3600.0)]) == [30.0]


def test_building_the_policy_uses_no_deprecated_tenacity_argument() -> None:
    # tenacity 9.2 deprecates wait_exponential_jitter(initial=...) and warns whenever it is not 1;
    # the next tenacity may drop it. The policy must build without any warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        policy = RetryPolicy(retry_wait_initial=2.0)
        policy.retrying()
        policy.async_retrying()
