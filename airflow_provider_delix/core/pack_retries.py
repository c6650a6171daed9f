"""Pages that failed inside a pack an earlier attempt paid for, sent again as images.

With ``retry_packed_failures`` a page that fails inside a pack (``page_failed``, ``no_result``)
is sent again on its own, as a plain image. A pack this run collects itself hands such pages
straight back to the planner (core/chunk_rows.py). A pack an earlier attempt sent and this one
collects (core/adopt.py: the earlier attempt was killed, or held the pack for the next one) has no files
to hand back, only the rows its pages answer. So adoption writes no row for such a page and
lists it here instead:

* when the archive brings the page, the planner sends its image unpacked (``pop``), with the
  pack's credits for it carried onto its row, as in the run that sent the pack. (If its bytes
  are already live or answered in this run under another source's hash -- two different files
  that prepare to the same image -- it takes that answer, and the pack's credits for it are
  not carried: a failed page's, charged and refunded alike);
* a page the archive never brought gets, at the end of a complete run, the failed row the pack
  gave it (``unsent``): no page is left without a row.

If the run stops before it has read its whole archive, the pages not reached yet get no row
here; the next attempt plans them like any page without a row. Nothing is paid twice: the
pack's charge for a failed page was refunded.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from airflow_provider_delix.core.table import PageRow


@dataclass(frozen=True, slots=True)
class PackFailure:
    """A page that failed inside a collected pack: its credits there, and the rows it got there."""

    carried: tuple[int, int]  # (charged, refunded) by the pack for this page
    rows: tuple[PageRow, ...]


class PackRetries:
    """The pages of collected packs to send again as images, by resume key. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, int], PackFailure] = {}

    def __bool__(self) -> bool:
        return bool(self._pending)  # read without the lock: the planner asks this for every page

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)

    def add(self, key: tuple[str, int], failure: PackFailure) -> None:
        with self._lock:
            known = self._pending.get(key)
            if known is not None:  # the same content failed in two collected packs
                failure = PackFailure(
                    (known.carried[0] + failure.carried[0], known.carried[1] + failure.carried[1]),
                    known.rows + failure.rows,
                )
            self._pending[key] = failure

    def pop(self, key: tuple[str, int]) -> PackFailure | None:
        """The archive brought this page: this run gives it its row (its failure is forgotten)."""
        with self._lock:
            return self._pending.pop(key, None)

    def unsent(self) -> list[PageRow]:
        """The failed rows of the pages the archive never brought (and forget them)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        return [row for failure in pending.values() for row in failure.rows]
