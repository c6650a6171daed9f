"""From a paid extract to per-page outcomes: wait while it is queued, read every page, split credits.

Shared by the chunk workers and by re-attachment (:mod:`.adopt`), so a page's outcome and its
credits are computed one way whether the run that paid for the extract is still alive or not.

Credits: the API charges ``initial_cost`` per request and refunds ``returned_credits`` for
failed pages; the table is per page, so the charge is split over the requested pages and the
refund over the failed ones, and summing the columns gives back exactly what was spent. An
extract that does not say its cost (``initial_cost`` missing or null) or, once processed, its
refund, is still collected: the table records the vendor's example price per page instead
(:func:`extract_charge`, :func:`extract_refund`) and a warning says it is an estimate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from airflow_provider_delix.api.models import Extract, ExtractFilePage, PageStatus, page_price
from airflow_provider_delix.core.client import DelixClient
from airflow_provider_delix.core.codes import PageError
from airflow_provider_delix.core.planning import FileOutcome
from airflow_provider_delix.core.table import RowStatus, split_credits

log = logging.getLogger(__name__)


class ExtractWaitTimeout(Exception):
    """A queued extract was still processing after the configured time."""


class WaitAborted(Exception):
    """The run is stopping while an extract is queued; the ledger keeps it for the next attempt."""


@dataclass(slots=True)
class PageResult:
    """What became of one requested page of one stored file."""

    outcome: FileOutcome
    charged: int = 0
    refunded: int = 0
    lost_sends: int = 0  # sends of its request whose answer was lost (core.lost_answers)


def wait_processed(
    client: DelixClient,
    extract: Extract,
    *,
    poll_interval: float,
    timeout: float,
    clock: Callable[[], float],
    sleep: Callable[[float], object],
    aborting: Callable[[], bool],
) -> Extract:
    """Poll ``GET /extracts/{uuid}`` until processed (the vendor suggests about once a minute)."""
    start = clock()
    while not extract.is_processed:
        if aborting():
            raise WaitAborted(extract.uuid)
        if clock() - start > timeout:
            raise ExtractWaitTimeout(
                f"Delix extract {extract.uuid} was still processing after {timeout:.0f} s; it stays on "
                "record and a re-run collects it without paying again."
            )
        sleep(poll_interval)
        if aborting():
            raise WaitAborted(extract.uuid)
        extract = client.get_extract(extract.uuid)
    return extract


def file_pages(client: DelixClient, extract: Extract) -> dict[str, list[ExtractFilePage]]:
    """Every page of every file: inline (synchronous answer) or through the paginated contents."""
    pages: dict[str, list[ExtractFilePage]] = {}
    for f in extract.files:
        if f.pages is not None:
            pages[f.uuid] = list(f.pages)
        else:
            pages[f.uuid] = list(client.iter_extract_pages(extract.uuid, f.uuid))
    return pages


def extract_charge(extract: Extract, pages: int, kind: str) -> int:
    """The extract's ``initial_cost``; when its answer did not say, ``pages`` at the vendor's
    example price for ``kind`` (the text is kept: the request was paid all the same), and never
    less than the ``returned_credits`` it did say (a refund cannot exceed what was charged)."""
    if extract.initial_cost is not None:
        return extract.initial_cost
    estimate = max(page_price(kind) * pages, extract.returned_credits or 0)
    log.warning(
        "Extract %s did not say what it cost ('initial_cost' missing or null): the table records "
        "%d credits for its %d page(s), an estimate at the vendor's example price of %d per page.",
        extract.uuid,
        estimate,
        pages,
        page_price(kind),
    )
    return estimate


def _cover_refunds(results: list[PageResult]) -> None:
    """Move estimated charge from pages with some to spare to pages refunded more than they were
    charged; the request's total stays what it was (it is at least its refund)."""
    spare = [r for r in results if r.charged > r.refunded]
    for result in results:
        while result.refunded > result.charged and spare:
            donor = spare[-1]
            give = min(result.refunded - result.charged, donor.charged - donor.refunded)
            donor.charged -= give
            result.charged += give
            if donor.charged <= donor.refunded:
                spare.pop()


def extract_refund(extract: Extract, failed: int, kind: str, charge: int) -> int:
    """The processed extract's ``returned_credits``; when its answer did not say, its failed pages
    (``failed_pages``, else ``failed`` counted in the answer) at the vendor's example price,
    never more than ``charge``."""
    if extract.returned_credits is not None or not extract.is_processed:
        return extract.returned_credits or 0
    pages = extract.failed_pages if extract.failed_pages is not None else failed
    estimate = min(page_price(kind) * pages, charge)
    if estimate:
        log.warning(
            "Extract %s did not say what it refunded ('returned_credits' missing or null): the "
            "table records %d credits for %d failed page(s), an estimate at the vendor's example "
            "price of %d per page.",
            extract.uuid,
            estimate,
            pages,
            page_price(kind),
        )
    return estimate


def page_results(
    extract: Extract,
    pages: dict[str, list[ExtractFilePage]],
    requested: Sequence[tuple[str, Sequence[int], bool]],
    client: object = None,
    *,
    kind: str | None = None,
) -> dict[tuple[str, int], PageResult]:
    """Outcome and credit shares of each requested ``(file uuid, page)``.

    ``requested`` lists ``(file uuid, pages asked for, single_page)`` in request order. An
    answer that contradicts the request (a one-page image answered with page 7, a page without
    a status) fails only that page, as ``malformed_answer``: it is paid, so its share of the
    credits stays on its row. ``kind`` (``images`` or ``documents``; the extract's ``file_type``
    when None) prices the estimate of a cost or refund the answer does not say.
    """
    kind = kind or extract.file_type
    wanted = [(uuid, n, single) for uuid, numbers, single in requested for n in numbers]
    numbered = {uuid: _by_number(extract.uuid, uuid, answered) for uuid, answered in pages.items()}
    results: dict[tuple[str, int], PageResult] = {}
    failed: list[PageResult] = []
    charge = extract_charge(extract, len(wanted), kind)
    for (uuid, number, single), share in zip(wanted, split_credits(charge, len(wanted)), strict=True):
        answered = pages.get(uuid, [])
        page = numbered.get(uuid, {}).get(number)
        odd = _odd_answer(page, answered, single)
        if odd is not None:
            odd += f" (extract {extract.uuid}, {answer_source(client)})"
            out = FileOutcome(RowStatus.FAILED, None, PageError.MALFORMED_ANSWER, odd, uuid, extract.uuid)
        elif page is not None and page.status == PageStatus.PROCESSED:
            out = FileOutcome(RowStatus.PROCESSED, page.text, None, None, uuid, extract.uuid)
        elif page is None:
            out = FileOutcome(
                RowStatus.FAILED,
                None,
                PageError.NO_RESULT,
                "Delix returned no result for this page.",
                uuid,
                extract.uuid,
            )
        else:
            out = FileOutcome(
                RowStatus.FAILED,
                page.text,
                PageError.PAGE_FAILED,
                "Delix could not read this page; its credits are refunded.",
                uuid,
                extract.uuid,
            )
        result = PageResult(out, charged=share)
        results[(uuid, number)] = result
        if out.status != RowStatus.PROCESSED:
            failed.append(result)
    # The refund goes to the pages that failed. One with no failed page to hold it refunds pages
    # we did not ask for (Delix read more pages than we listed): the extract's pages share it as
    # they share its cost, so the table's sums stay what Delix charged.
    holders = failed or list(results.values())
    said_failed = sum(
        p.status == PageStatus.FAILED for entries in numbered.values() for p in entries.values()
    )
    refunded = extract_refund(extract, said_failed, kind, charge)
    for result, refund in zip(holders, split_credits(refunded, len(holders)), strict=True):
        result.refunded = refund
    if extract.initial_cost is None:  # an estimate spread evenly: no page refunded past its charge
        _cover_refunds(list(results.values()))
    unasked = sum(1 for uuid, answered in pages.items() for p in answered if (uuid, p.number) not in results)
    if unasked:
        log.warning(
            "Extract %s answered %d page(s) that were not requested; its cost (%s credits) is "
            "shared by the %d requested page(s), and its refund (%s) too unless one of them failed.",
            extract.uuid,
            unasked,
            charge,
            len(results),
            refunded,
        )
    return results


def _by_number(
    extract_uuid: str, file_uuid: str, answered: Sequence[ExtractFilePage]
) -> dict[int, ExtractFilePage]:
    """Each answered page by its number. An answer naming a page twice keeps its best entry:
    processed over failed over any other status, the first among equals. Keeping the last one
    lost the text of a processed page followed by a failed duplicate, with nothing said. The
    credits do not change: they are split over the requested pages, never over the entries."""
    rank: dict[str, int] = {PageStatus.PROCESSED: 0, PageStatus.FAILED: 1}
    chosen: dict[int, ExtractFilePage] = {}
    twice: set[int] = set()
    for page in answered:
        held = chosen.get(page.number)
        if held is not None:
            twice.add(page.number)
        if held is None or rank.get(page.status, 2) < rank.get(held.status, 2):
            chosen[page.number] = page
    if twice:
        log.warning(
            "Extract %s answered page(s) %s of file %s more than once; each keeps its processed "
            "entry if it has one (else the first).",
            extract_uuid,
            ", ".join(map(str, sorted(twice))),
            file_uuid,
        )
    return chosen


def _odd_answer(
    page: ExtractFilePage | None, answered: Sequence[ExtractFilePage], single: bool
) -> str | None:
    """Why the answer for a requested page cannot be trusted, or None when it can."""
    if page is None:
        others = sorted({p.number for p in answered})
        if single and others:
            numbers = ", ".join(map(str, others))
            return f"Delix answered page {numbers} for a one-page image; the text is not kept."
        return None  # not answered at all: no_result
    if page.status not in (PageStatus.PROCESSED, PageStatus.FAILED):
        return f"Delix answered this page with status {str(page.status) or 'missing'!r}."
    return None


def answer_source(client: object) -> str:
    """Which connection answered, for messages (a hook knows its connection id; a fake does not)."""
    conn_id = getattr(client, "delix_conn_id", None)
    return f"connection '{conn_id}'" if conn_id else "the Delix client"
