"""RunManifest: the small summary of a run that the operator returns (and Airflow puts in XCom).

Why a separate object and not the rows: XCom lives in the metadata database, so what the task
returns must stay a few hundred bytes whatever the archive size. The texts are in the table;
the manifest says where the table is and what the run did (pages, credits, requests), enough
for a downstream task to decide whether to alert or to read the table.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_delix.core.table import SCHEMA_VERSION, PageRow, RowStatus


def _zero_counts() -> dict[str, int]:
    return {status.value: 0 for status in RowStatus}


@dataclass
class RunManifest:
    """Counters of one run. Updating methods are thread-safe (workers report in parallel)."""

    output_uri: str
    counts: dict[str, int] = field(default_factory=_zero_counts)  # rows written by this run, by status
    pages_total: int = 0  # pages accounted for: written by this run + resumed
    pages_resumed: int = 0  # skipped because an earlier run already stored them
    credits_charged: int = 0
    credits_refunded: int = 0
    requests: dict[str, int] = field(default_factory=dict)  # per endpoint, e.g. "POST /files"
    elapsed_seconds: float = 0.0
    schema_version: int = SCHEMA_VERSION
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _started: float = field(default_factory=time.monotonic, repr=False, compare=False)

    def add_rows(self, rows: Iterable[PageRow]) -> None:
        """Count rows just stored: status and credits (rows carry their share of the cost)."""
        with self._lock:
            for row in rows:
                self.counts[row.status.value] = self.counts.get(row.status.value, 0) + 1
                self.credits_charged += row.credits_charged
                self.credits_refunded += row.credits_refunded
                self.pages_total += 1

    def add_resumed(self, pages: int) -> None:
        with self._lock:
            self.pages_resumed += pages
            self.pages_total += pages

    def count_request(self, endpoint: str, n: int = 1) -> None:
        with self._lock:
            self.requests[endpoint] = self.requests.get(endpoint, 0) + n

    def finish(self) -> RunManifest:
        """Stamp the elapsed time; returns self so ``return manifest.finish().to_dict()`` reads well."""
        with self._lock:
            self.elapsed_seconds = round(time.monotonic() - self._started, 3)
        return self

    @property
    def credits_net(self) -> int:
        return self.credits_charged - self.credits_refunded

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (XCom serialises with json)."""
        with self._lock:
            return {
                "output_uri": self.output_uri,
                "counts": dict(self.counts),
                "pages_total": self.pages_total,
                "pages_resumed": self.pages_resumed,
                "credits_charged": self.credits_charged,
                "credits_refunded": self.credits_refunded,
                "requests": dict(sorted(self.requests.items())),
                "elapsed_seconds": self.elapsed_seconds,
                "schema_version": self.schema_version,
            }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunManifest:
        """Rebuild from :meth:`to_dict` output (e.g. in a downstream task reading the XCom)."""
        return cls(
            output_uri=str(data["output_uri"]),
            counts={**_zero_counts(), **{str(k): int(v) for k, v in dict(data.get("counts", {})).items()}},
            pages_total=int(data.get("pages_total", 0)),
            pages_resumed=int(data.get("pages_resumed", 0)),
            credits_charged=int(data.get("credits_charged", 0)),
            credits_refunded=int(data.get("credits_refunded", 0)),
            requests={str(k): int(v) for k, v in dict(data.get("requests", {})).items()},
            elapsed_seconds=float(data.get("elapsed_seconds", 0.0)),
            schema_version=int(data.get("schema_version", SCHEMA_VERSION)),
        )
