"""Run-time settings of the emulator: one frozen dataclass, changed only by replacing it.

Every knob the CLI, the in-process test helper and ``POST /_emulator/config`` can turn lives
here, so the three stay in sync by construction. The object is immutable: a request reads one
consistent snapshot even while the admin endpoint swaps in a new one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_delix.api.models import IMAGE_PAGE_PRICE, PDF_PAGE_PRICE, Engine

UNLIMITED_CREDITS = 10**15
"""'Effectively unlimited': a plain int, so the balance is always a number in the stats."""

OCR_BACKENDS = ("tesseract", "groundtruth")
DOCUMENT_MODES = ("auto", "sync", "async")

# Credits per processed page (docs/api.md, "Credits": "the examples suggest" these prices).
IMAGE_PAGE_COST = IMAGE_PAGE_PRICE
PDF_PAGE_COST = PDF_PAGE_PRICE
ENGINES = tuple(e.value for e in Engine)


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything that shapes the emulator's answers; see ``docs/emulator.md`` for each field."""

    api_key: str = "test-key"
    ocr: str = "groundtruth"
    credits: int = UNLIMITED_CREDITS
    latency_upload: float = 0.0
    latency_extract_base: float = 0.0
    latency_extract_page: float = 0.0
    latency_extract_answer: float = 0.0  # after the charge: an answer slower than the client's timeout
    latency_delete: float = 0.0
    latency_other: float = 0.0
    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_503: float = 0.0
    rate_drop: float = 0.0
    rate_general_exception: float = 0.0
    retry_after: int = 1
    fail_page_rate: float = 0.0
    seed: int = 0
    document_mode: str = "auto"
    per_page: int = 15
    fallback_text_bytes: int = 64
    async_workers: int = 2
    queue_delay: float = 0.0
    async_pages_per_second: float = 0.0
    log_requests: bool = False
    # Malformed answers to requests that were applied (see emulator/answer_faults.py).
    malformed_rate: float = 0.0
    malformed_every: int = 0
    malformed_kinds: str = (
        "upload_missing_entry,extract_not_json,page_without_status,page_number_out_of_range,image_processing"
    )
    # Answers lost after the request was applied (see emulator/lost_answers.py).
    rate_lost_after_apply: float = 0.0
    lost_after_apply_kinds: str = "drop,502,504"
    lost_after_apply_on: str = "upload,extraction"
    lost_after_apply_every: int = 0  # instead of the rate: every n-th applied answer (deterministic)

    def __post_init__(self) -> None:
        if self.ocr not in OCR_BACKENDS:
            raise ValueError(f"ocr must be one of {OCR_BACKENDS}, not {self.ocr!r}")
        if self.document_mode not in DOCUMENT_MODES:
            raise ValueError(f"document_mode must be one of {DOCUMENT_MODES}, not {self.document_mode!r}")
        rates = (self.rate_429, self.rate_500, self.rate_503, self.rate_drop, self.rate_general_exception)
        if any(not 0.0 <= r <= 1.0 for r in (*rates, self.fail_page_rate)):
            raise ValueError("rates must be between 0 and 1")
        if sum(rates) > 1.0 + 1e-9:
            raise ValueError("the fault rates (429, 500, 503, drop, general exception) must add up to <= 1")
        if self.per_page < 1 or self.fallback_text_bytes < 0 or self.async_workers < 1:
            raise ValueError("per_page and async_workers must be >= 1, fallback_text_bytes >= 0")
        if self.credits < 0 or self.retry_after < 0:
            raise ValueError("credits and retry_after must be >= 0")
        latencies = (
            self.latency_upload,
            self.latency_extract_base,
            self.latency_extract_page,
            self.latency_extract_answer,
            self.latency_delete,
            self.latency_other,
        )
        if any(v < 0 for v in latencies):
            raise ValueError("latencies must be >= 0")
        if not 0.0 <= self.malformed_rate <= 1.0 or self.malformed_every < 0:
            raise ValueError("malformed_rate must be between 0 and 1, malformed_every >= 0")
        from airflow_provider_delix.emulator.answer_faults import parse_kinds

        parse_kinds(self.malformed_kinds)
        from airflow_provider_delix.emulator.lost_answers import check_settings

        check_settings(self)
        if self.queue_delay < 0 or self.async_pages_per_second < 0:
            raise ValueError("queue_delay and async_pages_per_second must be >= 0")

    def replace(self, changes: Mapping[str, Any]) -> EmulatorConfig:
        """A copy with ``changes`` applied; unknown names or wrong types raise ``ValueError``.

        Values are coerced to the field's type so JSON numbers (``1`` for a float) and CLI
        strings both work.
        """
        fields = {f.name: f for f in dataclasses.fields(self)}
        coerced: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in fields:
                raise ValueError(f"unknown emulator setting {name!r}")
            kind = type(getattr(self, name))
            try:
                if kind is bool:
                    coerced[name] = value if isinstance(value, bool) else str(value).lower() in {"1", "true"}
                else:
                    coerced[name] = kind(value)
            except (TypeError, ValueError):
                raise ValueError(f"setting {name!r} must be a {kind.__name__}, not {value!r}") from None
        return dataclasses.replace(self, **coerced)

    def as_dict(self) -> dict[str, Any]:
        """The settings as JSON, with the API key left out (it is a secret even in a test double)."""
        data = dataclasses.asdict(self)
        data.pop("api_key")
        return data
