"""Fault injection for ``/v1`` requests: 429, 500, 503, 422 GENERAL_EXCEPTION, dropped connections.

One seeded RNG draws once per ``/v1`` request, after the body is read and before anything
else (auth included), so a faulted request never stores, charges or deletes anything and the
same seed and request sequence give the same faults. Under concurrency the order of draws
follows the order requests arrive, which is as deterministic as the client makes it.
"""

from __future__ import annotations

import random
import threading

from airflow_provider_delix.api.models import ErrorCode
from airflow_provider_delix.emulator.apierrors import ApiError, enum_error
from airflow_provider_delix.emulator.config import EmulatorConfig

DROP = "drop"
GENERAL = "general_exception"


class FaultInjector:
    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)  # noqa: S311 (reproducible test faults, not crypto)
        self._lock = threading.Lock()

    def reseed(self, seed: int) -> None:
        with self._lock:
            self._rng = random.Random(seed)  # noqa: S311

    def draw(self, config: EmulatorConfig) -> str | None:
        """``"429"``, ``"500"``, ``"503"``, ``"drop"``, ``"general_exception"`` or None."""
        rates = (
            (DROP, config.rate_drop),
            ("429", config.rate_429),
            ("500", config.rate_500),
            ("503", config.rate_503),
            (GENERAL, config.rate_general_exception),
        )
        if not any(rate for _, rate in rates):
            return None
        with self._lock:
            roll = self._rng.random()
        for kind, rate in rates:
            if roll < rate:
                return kind
            roll -= rate
        return None


def fault_error(kind: str, config: EmulatorConfig) -> ApiError:
    """The answer of an HTTP fault, shaped like Laravel's / a proxy's."""
    if kind == "429":
        return ApiError(429, {"message": "Too Many Attempts."}, {"Retry-After": str(config.retry_after)})
    if kind == "500":
        return ApiError(500, {"message": "Server Error"})
    if kind == GENERAL:
        return enum_error(ErrorCode.GENERAL_EXCEPTION)
    return ApiError(503, {"message": "Service Unavailable"})
