"""Checks on the emulator's account that the end-to-end tests share: money and storage."""

from __future__ import annotations

from collections import Counter
from typing import Any

# Hook retries that keep fault-injection tests fast (the backoff is tested elsewhere).
FAST_RETRIES = {"retry_wait_initial": 0.05, "retry_wait_max": 0.3, "max_retries": 10}


def assert_charged_once(stats: dict[str, Any], pages: int) -> None:
    """The emulator's charge ledger holds exactly ``pages`` distinct pages, each paid once."""
    charges = stats["charges"]
    assert len(charges) == pages, f"{len(charges)} distinct pages charged, expected {pages}"
    assert set(charges.values()) == {1}, f"pages charged more than once: {Counter(charges.values())}"
